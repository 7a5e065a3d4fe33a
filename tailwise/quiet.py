"""Third-party warnings a Tailwise user cannot act on, silenced once at the entry point.

`quiet_third_party()` runs first in `tailwise.cli.main` (every command, so every DVC stage
and the demo) and in each serving replica. Each silenced warning is listed in QUIETED
with the reason it says nothing the user can act on; anything else still shows.

Feast calls `warnings.simplefilter("once", ...)` when it is imported, which puts its own
filters in front of any set earlier; so besides the filters, the warning display itself
(`warnings.showwarning`) skips what QUIETED names, whoever reset the filters since.
TensorFlow's C++ logs are cut by TF_CPP_MIN_LOG_LEVEL=2 (errors only), read when
TensorFlow loads; its Python and absl loggers are set to errors. The lines TensorFlow's
shared libraries log while they load and look for a GPU come before that setting is read
(absl logs everything until absl::InitializeLog); `load_tensorflow` imports TensorFlow
with standard error captured and passes on only what the setting lets through
(`tensorflow_log_filter`), so an error line, a traceback or a Python warning still shows.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Quieted:
    category: type[Warning]
    package: str  # the third-party package whose code the warning points at
    message: str  # regular expression, matched at the start of the message
    reason: str


QUIETED = (
    Quieted(
        RuntimeWarning,
        "feast",
        r"On demand feature view is an experimental feature",
        "Feast repeats it on every apply, materialise and lookup; Tailwise pins Feast and"
        " its tests cover the two on-demand views feature_repo/ defines",
    ),
    Quieted(
        DeprecationWarning,
        "ibis",
        r"fetch_(arrow_table|record_batch|arrow_reader)\(\) is deprecated",
        "ibis 12 calls DuckDB 2.0's old method names inside Feast's offline store; no"
        " Tailwise code calls them, and a newer ibis drops it",
    ),
    Quieted(
        DeprecationWarning,
        "evidently",
        r"",
        "Evidently's own modules use its deprecated APIs internally (its legacy renderers,"
        " text descriptors); monitoring/ calls only the current API and its pinned version",
    ),
    Quieted(
        DeprecationWarning,
        "litestar",
        r"",
        "litestar is imported by Evidently's UI modules, which Tailwise does not serve",
    ),
    Quieted(
        DeprecationWarning,
        "",
        r"numpy\.core is deprecated",
        "raised when pickled numpy objects from older libraries are loaded inside"
        " dependencies; Tailwise itself imports numpy's public API only",
    ),
    Quieted(
        UserWarning,
        "keras",
        r"",
        "Keras 2 (tf_keras, TF_USE_LEGACY_KERAS=1) warns about its own saving formats and"
        " layer options the two-tower export relies on; the exported model is tested",
    ),
    Quieted(
        DeprecationWarning,
        "tensorflow",
        r"",
        "TensorFlow's deprecations of its own internals; the training code is tested on"
        " the pinned version",
    ),
)
NOISY_LOGGERS = ("absl", "tensorflow", "h5py")

# An absl C++ log line: severity, MMDD, time (seconds since the epoch before absl is
# initialised), thread, file:line]
ABSL_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]+\] ")
ABSL_NOTICE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
)
# Lines that continue the log record before them (cpu_feature_guard's second line).
CONTINUATIONS = ("To enable the following instructions:",)
NO_CUDA_DRIVER = "Could not find cuda drivers on your machine"
SEVERITIES = "IWEF"  # TF_CPP_MIN_LOG_LEVEL 0..3: the lowest severity shown


def _silenced(category: type[Warning], filename: str, message: str) -> bool:
    path = filename.replace("\\", "/")
    return any(
        issubclass(category, q.category)
        and (not q.package or f"/{q.package}/" in path or f"/tf_{q.package}/" in path)
        and re.match(q.message, message)
        for q in QUIETED
    )


def quiet_third_party() -> None:
    """Silence QUIETED and the TensorFlow/absl logs (call once, before the heavy imports)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for q in QUIETED:
        module = rf"({q.package}|tf_{q.package})(\.|$)" if q.package else ""
        warnings.filterwarnings("ignore", message=q.message, category=q.category, module=module)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    show = warnings.showwarning
    if getattr(show, "_tailwise", False):
        return

    def showwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if not _silenced(category, filename, str(message)):
            show(message, category, filename, lineno, file, line)

    showwarning._tailwise = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning


def tensorflow_log_filter(text: str, min_level: int) -> str:
    """The part of `text` (standard error while TensorFlow loads) that TF_CPP_MIN_LOG_LEVEL
    = `min_level` lets through: absl lines below that severity and absl's notice that it
    logs before initialisation go, with their continuation lines; everything else stays.

    One error line goes too, for a reason: "failed call to cuInit" when the same load said
    there is no CUDA driver on the machine (TensorFlow then runs on the CPU, as Tailwise's
    training and serving expect; with a driver, a failed cuInit is a real error and shows).
    """
    no_driver = NO_CUDA_DRIVER in text
    kept: list[str] = []
    keep = True
    for line in text.splitlines(keepends=True):
        if line.rstrip("\r\n") == ABSL_NOTICE:
            continue
        if found := ABSL_LINE.match(line):
            severity = SEVERITIES.index(found.group(1))
            cuda = no_driver and "failed call to cuInit" in line
            keep = severity >= min_level and not cuda
        elif not line.startswith(CONTINUATIONS):
            keep = True
        if keep:
            kept.append(line)
    return "".join(kept)


def _min_log_level() -> int:
    value = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return int(value) if value.strip() in {"0", "1", "2", "3"} else 0


def load_tensorflow() -> Any:
    """`import tensorflow` (and tf_keras under TF_USE_LEGACY_KERAS=1) with its devices
    looked up, the C++ lines logged meanwhile held to TF_CPP_MIN_LOG_LEVEL (default 2:
    errors only). Call it before the first TensorFlow import of a process; later it
    only returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    level = _min_log_level()
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe logs here, once
            if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
                import tf_keras  # noqa: F401  (loads TensorFlow's second set of libraries)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            sys.stderr.write(tensorflow_log_filter(sink.read().decode(errors="replace"), level))
            sys.stderr.flush()
    return tf
