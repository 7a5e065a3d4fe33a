"""Quiet output: the listed third-party warnings are not shown, whoever reset the filters
since, and every other warning still is."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tailwise.quiet import (
    ABSL_LINE,
    ABSL_NOTICE,
    QUIETED,
    quiet_third_party,
    tensorflow_log_filter,
)

ROOT = Path(__file__).resolve().parents[1]
FEAST = "/venv/lib/python3.11/site-packages/feast/feature_store.py"
IBIS = "/venv/lib/python3.11/site-packages/ibis/backends/duckdb/__init__.py"


@pytest.mark.unit
def test_listed_warnings_are_hidden_and_others_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[str] = []
    monkeypatch.setattr(warnings, "showwarning", lambda m, *a, **k: shown.append(str(m)))
    with warnings.catch_warnings():
        quiet_third_party()
        warnings.simplefilter("once")  # what Feast does when it is imported
        show = warnings.showwarning
        show(
            RuntimeWarning("On demand feature view is an experimental feature."),
            RuntimeWarning,
            FEAST,
            1,
        )
        show(
            DeprecationWarning("fetch_arrow_table() is deprecated, use x"),
            DeprecationWarning,
            IBIS,
            1,
        )
        show(UserWarning("a warning of our own"), UserWarning, "/repo/tailwise/x.py", 1)
        show(RuntimeWarning("something else in Feast"), RuntimeWarning, FEAST, 1)
    assert shown == ["a warning of our own", "something else in Feast"]
    assert all(q.reason for q in QUIETED)


# What TensorFlow 2.21 writes to standard error while it loads on a machine without CUDA.
TF_LOAD = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796309589.223585   16093 port.cc:153] oneDNN custom operations are on.
I0000 00:00:1796309589.242591   16093 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1796309589.902138   16093 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.
W0000 00:00:1796309590.100000   16093 some_op.cc:10] a warning
E0000 00:00:1796309663.673787   16093 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error
E0000 00:00:1796309663.700000   16093 op_kernel.cc:1] a real error
/repo/training/x.py:3: UserWarning: ours
"""


@pytest.mark.unit
def test_tensorflow_load_lines_follow_the_log_level() -> None:
    assert tensorflow_log_filter(TF_LOAD, 2).splitlines() == [
        "E0000 00:00:1796309663.700000   16093 op_kernel.cc:1] a real error",
        "/repo/training/x.py:3: UserWarning: ours",
    ]
    at_one = tensorflow_log_filter(TF_LOAD, 1)
    assert "a warning" in at_one and "oneDNN" not in at_one and "To enable" not in at_one
    assert "oneDNN" in tensorflow_log_filter(TF_LOAD, 0)
    assert "a real error" not in tensorflow_log_filter(TF_LOAD, 3)
    with_driver = TF_LOAD.replace("Could not find cuda drivers", "Found a driver")
    assert "failed call to cuInit" in tensorflow_log_filter(with_driver, 2)  # a real error then


@pytest.mark.slow
def test_training_imports_of_tensorflow_print_no_cpp_noise() -> None:
    """The retriever's TensorFlow import and a tiny Keras fit, in a fresh process (as a DVC
    stage runs): standard error holds no TensorFlow C++ line below the error level."""
    code = (
        "import numpy as np\n"
        "from training.retrieval import _tensorflow\n"
        "tf = _tensorflow()\n"
        "import tensorflow_recommenders\n"
        "model = tf.keras.Sequential([tf.keras.layers.Dense(2)])\n"
        "model.compile('adam', 'mse')\n"
        "model.fit(np.zeros((8, 3)), np.zeros((8, 2)), verbose=0)\n"
        "print('fitted')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fitted"
    noise = [
        line
        for line in done.stderr.splitlines()
        if line == ABSL_NOTICE or ((m := ABSL_LINE.match(line)) and m.group(1) in "IW")
    ]
    assert noise == [], "\n".join(noise)
