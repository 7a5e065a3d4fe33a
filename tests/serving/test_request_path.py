"""The request path loads no training code and no Ray Tune.

import-linter (make lint) holds the imports between Tailwise's own packages; Ray Tune is
part of an external package, so whether serving pulls it in, directly or through a
library, is checked here where it counts: in a fresh interpreter that loads the app.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, sys
import serving.app
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "training"
                        or m == "ray.tune" or m.startswith("ray.tune."))))
"""


def test_loading_the_app_imports_neither_training_nor_ray_tune() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1"},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
