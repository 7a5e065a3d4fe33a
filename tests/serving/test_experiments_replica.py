"""A real replica (trained version, Feast, private Redis) with an experiment: every
variant's change is applied (a pinned version loaded once, a rules override, the holdout's
popular list) and every exposure is logged. (Two processes assigning alike is checked in
tests/experiments/test_assignment.py; a second replica here would double the test's time.)"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import redis
import yaml

from serving.config import ServingConfig
from serving.keys import Keys
from tests.serving.conftest import ServedWorld
from tests.serving.experiment_replica import answers

pytestmark = pytest.mark.slow


def test_a_replica_applies_each_variants_change_and_logs_exposures(
    served_world: ServedWorld, tmp_path: Path
) -> None:
    world = served_world
    (tmp_path / "experiments").mkdir()
    experiment = {
        "name": "home",
        "salt": "home-e2e",
        "layer": "home",
        "start": "2026-01-01",
        "variants": [
            {"name": "champion", "weight": 0.3},
            {"name": "one_per_category", "weight": 0.3, "rules": {"max_per_category": 1}},
            {"name": "pinned", "weight": 0.2, "model_version": world.version},
            {"name": "popular", "type": "holdout", "weight": 0.2},
        ],
    }
    (tmp_path / "experiments" / "home.yaml").write_text(yaml.safe_dump(experiment))
    (tmp_path / "params.yaml").write_text("experiments: {dir: experiments}\n")
    config = ServingConfig(
        models_dir=world.models,
        clean_dir=world.clean,
        spill_dir=tmp_path / "spill",
        params_path=tmp_path / "params.yaml",
        cache_ttl_seconds=0,
    ).resolved()
    profile = pd.read_parquet(world.features / "user_profile.parquet")
    users = sorted(profile["user_id"].astype(str))[:40]
    here = answers(config, world.settings, users)

    weights = {v["name"]: v["weight"] for v in experiment["variants"]}
    assert {a["variant"] for a in here} == set(weights)
    for a in here:
        assert a["experiment"] == "home" and a["propensity"] == weights[a["variant"]]
        assert a["model_version"] == world.version
    by_variant = {v: [a for a in here if a["variant"] == v] for v in weights}
    # The holdout: the one popular list (no context sent), with popular reasons only.
    holdout = by_variant["popular"]
    assert all(a["items"] == holdout[0]["items"] for a in holdout)
    assert all(r.startswith("popular") for a in holdout for r in a["reasons"])
    personal = [a for v in ("champion", "pinned") for a in by_variant[v]]
    assert any(not r.startswith("popular") for a in personal for r in a["reasons"])
    items = pd.read_parquet(world.clean / "items.parquet", columns=["item_id", "category"])
    category = dict(zip(items["item_id"], items["category"], strict=True))
    for a in by_variant["one_per_category"]:  # the variant's rule: one item per category
        shown = [category[i] for i in a["items"]]
        assert len(set(shown)) == len(shown), a
    client = redis.Redis.from_url(world.redis.url)
    try:
        entries = client.xrange(Keys(str(world.settings.feast_project)).exposures, "-", "+")
    finally:
        client.close()
    logged = {json.loads(f[b"x"])["request_id"]: json.loads(f[b"x"]) for _, f in entries}
    for a in here:
        assert logged[a["request_id"]]["variant"] == a["variant"]
        assert logged[a["request_id"]]["slot"] == "home"
