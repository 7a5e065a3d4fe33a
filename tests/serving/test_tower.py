"""The numpy query tower of a trained version equals its SavedModel on real feature rows."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import redis

from serving.bundle import load_bundle, version_folder
from serving.features import FeatureReader
from serving.retrieval import tower_inputs
from tailwise.features.store import open_store
from tests.serving.conftest import ServedWorld

pytestmark = pytest.mark.slow


def test_numpy_tower_equals_the_saved_model_on_served_rows(served_world: ServedWorld) -> None:
    world = served_world
    bundle = load_bundle(version_folder(world.models, world.version))  # checks probe rows
    store = open_store(world.settings)
    reader = FeatureReader(
        store, redis.Redis.from_url(world.redis.url), bundle.ranking_service, bundle.item_ids
    )
    users = sorted(pd.read_parquet(world.features / "user_profile.parquet")["user_id"].astype(str))
    ts = int(datetime.now(UTC).timestamp())
    rows = []
    for n, user in enumerate([*users[:40], "never-seen-user"]):
        device, country = [("mobile", "DE"), ("desktop", None), (None, "ZZ")][n % 3]
        row = reader.with_context(reader.user(user), device, country, ts)
        rows.append({**row, "user_id": user})
    assert any(v is None for row in rows for v in row.values())  # missing values included
    want = np.concatenate([bundle.embed_reference(tower_inputs(bundle, row)) for row in rows])
    got = np.stack([bundle.embed_row(row) for row in rows])
    np.testing.assert_allclose(got, want, atol=1e-5)
