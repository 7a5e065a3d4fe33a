"""Replica autoscaling on ongoing requests: under closed-loop load the app grows from 1 to
2 replicas, answers every request meanwhile, and shrinks back once the load stops.

It runs bench/autoscale.py over the session's served world in a process of its own: that
process starts its own local Ray instance and app (the served app fixture holds another
one in this process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tailwise.ports import free_port
from tests.feast_project import ROOT
from tests.serving.conftest import ServedWorld

pytestmark = pytest.mark.slow


@pytest.mark.timeout(1200)  # a Ray instance and up to 2 TensorFlow replicas on 2 cores
def test_replicas_follow_the_ongoing_requests_up_and_back_down(
    served_world: ServedWorld, tmp_path: Path
) -> None:
    world = served_world
    settings = world.settings
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": world.redis.url,
        "TAILWISE_FEATURE_REPO": str(ROOT / "feature_repo"),
        "TAILWISE_FEATURES_DIR": str(world.features),
        "TAILWISE_FEAST_PROJECT": str(settings.feast_project),
        "TAILWISE_FEAST_REGISTRY": str(world.root / "registry.db"),
        # HAProxy's side listeners: not the ports the session's served app holds (its
        # fixture sets these variables in this process while it runs).
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
    }
    out = tmp_path / "autoscale.json"
    args = ["--models", str(world.models), "--clean", str(world.clean)]
    args += ["--features", str(world.features), "--out", str(out), "--no-save"]
    args += ["--clients", "3", "--after", "5", "--up-timeout", "300", "--down-timeout", "180"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "autoscale.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1100,
    )
    assert out.exists(), f"no result:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    figures = json.loads(out.read_text())["figures"]
    print(
        f"2 replicas after {figures['scale_up_s']} s of load, back to 1 after "
        f"{figures['scale_down_s']} s; {figures['sent']} sent, {figures['statuses']}"
    )
    assert figures["scale_up_s"] is not None, figures
    assert figures["max_replicas"]["requests"] > 0  # requests answered with 2 replicas
    assert figures["scale_down_s"] is not None, figures
    assert figures["errors"] == 0, figures["statuses"]
    assert done.returncode == 0, done.stderr[-3000:]
