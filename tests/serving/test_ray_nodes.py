"""The app on a 3-node Ray cluster on this host: replicas on distinct nodes, and traffic
recovering after a worker node hosting one is lost (every process of it SIGKILLed).

It runs bench/ray_nodes.py over the session's served world in a process of its own: that
process joins the cluster as its driver, which the test process cannot while the served
app fixture holds a local Ray instance. The cluster's nodes are that script's children on
free ports with temp dirs of their own, stopped by it; no other Ray instance is touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.feast_project import ROOT
from tests.serving.conftest import ServedWorld

pytestmark = pytest.mark.slow


@pytest.mark.timeout(1800)  # trains, starts 3 Ray nodes and 2 TensorFlow replicas on 2 cores
def test_replicas_spread_over_nodes_and_recover_from_a_lost_node(
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
    }
    out = tmp_path / "ray_nodes.json"
    args = ["--models", str(world.models), "--clean", str(world.clean)]
    args += ["--features", str(world.features), "--out", str(out), "--no-save"]
    args += ["--rate", "20", "--before", "10", "--after", "10", "--final", "5"]
    args += ["--recover-timeout", "150", "--start-timeout", "600"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ray_nodes.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert out.exists(), f"no result:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    figures = json.loads(out.read_text())["figures"]
    print(
        f"errors after the node loss: {figures['errors_after_loss']} "
        f"{figures['errors_after_loss_by_status']} of {figures['sent']} sent; replicas "
        f"{figures['replicas_before']} -> {figures['replicas_after']}; node dead after "
        f"{figures['node_dead_s']} s, replaced after {figures['replaced_s']} s, last error "
        f"{figures['last_error_s']} s after the loss"
    )
    assert figures["distinct_nodes_before"] >= 2, figures["replicas_before"]
    assert figures["lost_node"] in figures["replicas_before"]
    assert figures["replaced_s"] is not None, "no replacement replica on a live node"
    assert figures["lost_node"] not in figures["replicas_after"]
    assert figures["final_window_sent"] > 0
    assert figures["final_window_errors"] == 0, figures
    assert done.returncode == 0, done.stderr[-3000:]
