"""`tailwise recommend`: the serving graph over a file of users, written as CSV."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from tests.feast_project import ROOT
from tests.serving.conftest import ServedWorld

pytestmark = pytest.mark.slow


def test_recommend_writes_k_unseen_items_per_user(served_world: ServedWorld) -> None:
    world = served_world
    users = pd.read_parquet(world.features / "user_profile.parquet")["user_id"].astype(str)
    chosen = [*users.iloc[:20], "someone-new"]
    (world.root / "users.txt").write_text("# users\n" + "\n".join(chosen) + "\n\n")
    out = world.root / "recs.csv"
    env = {
        **os.environ,
        "TF_USE_LEGACY_KERAS": "1",
        "REDIS_URL": world.redis.url,
        "TAILWISE_FEATURE_REPO": str(ROOT / "feature_repo"),
        "TAILWISE_FEATURES_DIR": str(world.features),
        "TAILWISE_FEAST_PROJECT": str(world.settings.feast_project),
        "TAILWISE_FEAST_REGISTRY": str(world.root / "registry.db"),
    }
    command = [
        *(sys.executable, "-m", "tailwise.cli", "recommend"),
        *("--users-file", str(world.root / "users.txt"), "--k", "7"),
        *("--models", str(world.models), "--data", str(world.clean)),
        *("--at", "2026-12-01T12:00:00"),
    ]
    done = subprocess.run([*command, "--out", str(out)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "0 of 20 users with history got the cold-start list" in done.stderr, done.stderr
    recs = pd.read_csv(out, dtype={"user_id": str, "item_id": str})
    assert list(recs.columns) == ["user_id", "item_id", "rank", "score"]
    assert set(recs["user_id"]) == set(chosen)
    assert (recs.groupby("user_id").size() == 7).all()
    assert all(r == list(range(1, 8)) for r in recs.groupby("user_id")["rank"].apply(list))
    events = pd.read_parquet(world.clean / "events", columns=["user_id", "item_id"])
    seen = set(zip(events["user_id"], events["item_id"], strict=True))
    assert not any((u, i) in seen for u, i in zip(recs["user_id"], recs["item_id"], strict=True))

    # The same users as Ray tasks over two shards, each with a graph of its own: the same
    # rows in the same order (one request time for the whole batch).
    sharded = world.root / "recs_ray.csv"
    ray_env = {k: v for k, v in env.items() if k != "RAY_ADDRESS"}  # Ray of its own
    done = subprocess.run(
        [*command, "--out", str(sharded), "--workers", "2"],
        env=ray_env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "2 Ray workers" in " ".join(done.stderr.split()), done.stderr
    assert "0 of 20 users with history got the cold-start list" in done.stderr, done.stderr
    assert sharded.read_text() == out.read_text()
