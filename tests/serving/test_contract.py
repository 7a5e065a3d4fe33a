"""The OpenAPI document tells the truth: `schemathesis run` (default checks plus
tests/serving/contract_checks.py, settings in tests/serving/schemathesis.toml) against the
running app, over every operation, with 0 failures and at least MIN_REQUESTS requests.

Examples are deterministic (the config's `deterministic = true`), so a failure reproduces;
`CONTRACT_MAX_EXAMPLES` raises the per-operation count for a longer run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving.conftest import ServedApp

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
MIN_REQUESTS = 1000


def test_schemathesis_finds_no_failure_in_1000_requests(served_app: ServedApp) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "SCHEMATHESIS_HOOKS": "tests.serving.contract_checks",
        "CONTRACT_WRITE_KEY": served_app.write_key,
        "CONTRACT_ADMIN_KEY": served_app.admin_key,
        "CONTRACT_MAX_BODY_BYTES": str(served_app.config.max_body_bytes),
        "NO_COLOR": "1",
    }
    examples = os.environ.get("CONTRACT_MAX_EXAMPLES", "110")
    command = [
        *(sys.executable, "-m", "schemathesis.cli"),
        *("--config-file", str(CONFIG), "run", f"{served_app.url}/openapi.json"),
        *("--max-examples", examples, "--request-timeout", "30"),
        *("--header", f"X-API-Key: {served_app.write_key}"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    tail = out[-6000:]
    generated = re.search(r"(\d+) generated", out)
    assert generated, f"no summary in schemathesis' output:\n{tail}"
    selected = re.search(r"Selected: (\d+)/(\d+)", out)
    tested = re.search(r"Tested: (\d+)", out)
    assert selected and tested, tail
    assert selected.group(1) == selected.group(2) == tested.group(1), tail  # all operations
    assert done.returncode == 0, f"schemathesis found failures:\n{tail}"
    assert int(generated.group(1)) >= MIN_REQUESTS, tail
