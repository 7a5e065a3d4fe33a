"""The feature store end to end on generated data: a real Feast repo, the real Redis.

Each session registers its own project in a temporary registry and tears it down
(deleting its Redis keys) at the end; nothing else in Redis is touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis

from tailwise.features.build import build_features
from tailwise.features.config import FeaturesParams
from tailwise.features.online import ItemTable, OnlineFeatures
from tailwise.features.point_in_time import entity_groups, historical_features
from tailwise.features.store import apply, materialize, teardown
from tailwise.ingest.pipeline import run_ingest
from tailwise.params import IngestParams
from tailwise.synthetic import GenerateConfig, generate
from tests.feast_project import (
    ROOT,
    isolated_feast_settings,
)

pytestmark = pytest.mark.integration  # a Feast repo of its own and the real Redis

USER_VIEWS = [
    "user_profile_demographics",
    "user_daily_engagement",
    "user_daily_rfm",
    "user_daily_affinity",
    "user_daily_context",
]


@pytest.fixture(scope="module")
def fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("feast")
    generate(GenerateConfig(users=1200, items=300, days=40, seed=3), root / "raw")
    run_ingest(
        root / "clean", IngestParams(duckdb_memory_limit="1GB"), b"k" * 40, source=root / "raw"
    )
    build_features(root / "clean", root / "features", FeaturesParams())
    settings = isolated_feast_settings(root / "features", root / "registry.db")
    store, _ = apply(settings)
    materialize(settings)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        yield {"root": root, "settings": settings, "store": store, "client": client}
    finally:
        teardown(settings, store)  # this project's keys only: the registry holds no other


def _features(store: Any, views: list[str]) -> list[str]:
    return [f"{v}:{f.name}" for v in views for f in store.get_feature_view(v).features]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | np.ndarray) or isinstance(b, list | np.ndarray):
        return (
            a is not None
            and b is not None
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    if a is None or b is None or (isinstance(a, float) and np.isnan(a)):
        return (a is None or pd.isna(a)) and (b is None or pd.isna(b))
    if isinstance(a, float) or isinstance(b, float):
        return bool(np.isclose(float(a), float(b), rtol=1e-6))
    return bool(a == b)


def test_training_set_is_point_in_time_correct(fs: dict[str, Any]) -> None:
    store, root = fs["store"], fs["root"]
    events = pd.read_parquet(root / "clean" / "events")
    examples = events.sample(300, random_state=1)[["user_id", "timestamp"]]
    examples = examples.rename(columns={"timestamp": "event_timestamp"}).reset_index(drop=True)
    training = store.get_historical_features(
        entity_df=examples,
        features=["user_daily_engagement:views_7d", "user_daily_affinity:recent_items"],
    ).to_df()
    assert len(training) == len(examples)
    views = events.loc[events["event_type"] == "product_view"]
    daily = pd.read_parquet(root / "features" / "user_daily.parquet")
    checked = 0
    for row in training.itertuples():
        t = row.event_timestamp
        snaps = daily.loc[(daily["user_id"] == row.user_id) & (daily["event_timestamp"] <= t)]
        if snaps.empty:
            assert pd.isna(row.views_7d)
            continue
        snap = snaps["event_timestamp"].max()
        mine = views.loc[
            (views["user_id"] == row.user_id)
            & (views["timestamp"] < snap)
            & (views["timestamp"] >= snap - timedelta(days=7))
        ]
        assert row.views_7d == len(mine)
        used = events.loc[
            (events["user_id"] == row.user_id) & events["item_id"].isin(list(row.recent_items))
        ]
        # Every item in the feature was interacted with before the example's time.
        assert (used.groupby("item_id")["timestamp"].min() < t).all()
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("service", ["retrieval_v1", "ranking_v1"])
def test_online_equals_offline_for_every_feature(fs: dict[str, Any], service: str) -> None:
    store, root = fs["store"], fs["root"]
    users = pd.read_parquet(root / "features" / "user_daily.parquet")["user_id"].drop_duplicates()
    items = pd.read_parquet(root / "features" / "item_daily.parquet")["item_id"].drop_duplicates()
    now = datetime.now(UTC)
    rows = pd.DataFrame(
        {
            "user_id": users.sample(40, random_state=2).to_numpy(),
            "item_id": items.sample(40, random_state=2, replace=True).to_numpy(),
            "request_device": (["mobile", "desktop", "tablet", "watch"] * 10),
            "request_country": (["DE", "US", None, "BR"] * 10),
            "request_ts": int(now.timestamp()) - np.arange(40) * 3607,
            "event_timestamp": now,
        }
    )
    if service == "retrieval_v1":
        rows = rows.drop(columns=["item_id"])
    keys = [c for c in ("user_id", "item_id") if c in rows]
    feature_service = store.get_feature_service(service)
    offline = store.get_historical_features(entity_df=rows, features=feature_service).to_df()
    offline = offline.set_index(keys)
    online = pd.DataFrame(
        store.get_online_features(
            features=feature_service,
            entity_rows=rows.drop(columns=["event_timestamp"]).to_dict("records"),
        ).to_dict()
    ).set_index(keys)
    names = [f.name for p in feature_service.feature_view_projections for f in p.features]
    assert len(names) > 50 and online.index.is_unique
    for key in online.index:
        for name in names:
            assert _same(online.at[key, name], offline.at[key, name]), (key, name)


def test_fast_reads_equal_the_sdk(fs: dict[str, Any]) -> None:
    store, settings = fs["store"], fs["settings"]
    views = [store.get_feature_view(v) for v in [*USER_VIEWS, "user_realtime_session"]]
    fast = OnlineFeatures(fs["client"], store.project, "user_id", views)
    users = [
        *pd.read_parquet(settings.features_dir / "user_profile.parquet")["user_id"][:25],
        "no-such-user",
    ]
    names = [f"{v.name}:{f.name}" for v in views for f in v.features]
    sdk = store.get_online_features(
        features=names, entity_rows=[{"user_id": u} for u in users]
    ).to_dict()
    for i, user in enumerate(users):
        got = fast.read(user)
        assert set(got) == {n.split(":")[1] for n in names}
        for name, value in got.items():
            assert _same(value, sdk[name][i]), (user, name)

    item_views = [
        store.get_feature_view(v) for v in ("item_profile_catalog", "item_daily_popularity")
    ]
    catalog = pd.read_parquet(settings.features_dir / "item_catalog.parquet")["item_id"]
    daily = set(pd.read_parquet(settings.features_dir / "item_daily.parquet")["item_id"])
    quiet = [i for i in catalog if i not in daily][:3]  # items nobody touched: no daily rows
    table = ItemTable.from_online(fs["client"], store.project, item_views, list(catalog))
    item_ids = [*catalog[:30], *quiet, "no-such-item"]
    looked = table.lookup(item_ids)
    item_names = [f"{v.name}:{f.name}" for v in item_views for f in v.features]
    sdk_items = store.get_online_features(
        features=item_names, entity_rows=[{"item_id": i} for i in item_ids]
    ).to_dict()
    assert table.stamp is not None
    for ref in item_names:
        name = ref.split(":")[1]
        for a, b in zip(looked[name], sdk_items[name], strict=True):
            assert _same(a, b), name


def test_push_and_fast_write_show_up_in_the_next_read(fs: dict[str, Any]) -> None:
    store = fs["store"]
    view = store.get_feature_view("user_realtime_session")
    now = datetime.now(UTC)
    state = {
        "user_id": ["u-live"],
        "rt_last_items": [["i1", "i2"]],
        "rt_last_category": ["A/B"],
        "rt_session_events": [2],
        "rt_hour_events": [2],
        "rt_hour_carts": [1],
        "event_timestamp": [now],
        "created_timestamp": [now],
    }
    store.push("user_realtime_push", pd.DataFrame(state))
    names = _features(store, ["user_realtime_session"])
    got = store.get_online_features(features=names, entity_rows=[{"user_id": "u-live"}]).to_dict()
    assert got["rt_last_items"] == [["i1", "i2"]] and got["rt_hour_carts"] == [1]

    fast = OnlineFeatures(fs["client"], store.project, "user_id", [view])
    fast.write(
        "u-live",
        view.name,
        {
            "rt_last_items": ["i3", "i1", "i2"],
            "rt_last_category": "C/D",
            "rt_session_events": 3,
            "rt_hour_events": 3,
            "rt_hour_carts": 1,
        },
        now + timedelta(seconds=1),
    )
    got = store.get_online_features(features=names, entity_rows=[{"user_id": "u-live"}]).to_dict()
    assert got["rt_last_items"] == [["i3", "i1", "i2"]] and got["rt_session_events"] == [3]
    assert fast.read("u-live")["rt_last_category"] == "C/D"


def test_declared_extra_attributes_join_the_demographics_view(tmp_path: Path) -> None:
    """A mapping's extra user attributes reach the Feast view (read from the build manifest)."""
    import json
    import subprocess
    import sys

    manifest = {
        "tables": {
            "user_profile": {
                "columns": [
                    {"name": "user_id", "type": "string"},
                    {"name": "age", "type": "int64"},
                    {"name": "loyalty_tier", "type": "string"},
                    {"name": "lifetime_value", "type": "double"},
                ]
            }
        }
    }
    (tmp_path / "features_manifest.json").write_text(json.dumps(manifest))
    code = (
        "import sys; sys.path.insert(0, 'feature_repo');"
        "from user_views import user_profile_demographics as v;"
        "print({f.name: str(f.dtype) for f in v.features})"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"TAILWISE_FEATURES_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    assert "'loyalty_tier': 'String'" in out and "'lifetime_value': 'Float64'" in out


def test_rebuilt_tables_reach_redis_and_unchanged_ones_load_incrementally(
    fs: dict[str, Any],
) -> None:
    import json

    settings, store = fs["settings"], fs["store"]
    path = settings.features_dir / "user_profile.parquet"
    manifest_path = settings.features_dir / "features_manifest.json"
    original, manifest = pd.read_parquet(path), json.loads(manifest_path.read_text())
    user = original["user_id"].iat[0]
    try:
        # A corrected value with the same event time, as a rebuild after a data fix gives.
        original.assign(
            country=original["country"].where(original["user_id"] != user, "ZZ")
        ).to_parquet(path, index=False)
        manifest_path.write_text(json.dumps({**manifest, "built_at": "2099-01-01T00:00:00"}))
        assert materialize(settings)["mode"] == "full"
        got = store.get_online_features(
            features=["user_profile_demographics:country"], entity_rows=[{"user_id": user}]
        ).to_dict()
        assert got["country"] == ["ZZ"]
        assert materialize(settings)["mode"] == "incremental"
    finally:
        original.to_parquet(path, index=False)
        manifest_path.write_text(json.dumps(manifest))


def test_applying_a_second_feature_dir_in_one_process_points_at_it(tmp_path: Path) -> None:
    """Feast imports the repo as cached modules; a second project over other tables must
    still read its own tables (regression: the first import's paths were reused)."""
    from tests.features.conftest import build_small, event, item, user

    stores = []
    for n in (1, 2):
        features = build_small(
            tmp_path / f"w{n}",
            [user("u1")],
            [item("i1")],
            [event("u1", "i1", "2026-10-01 10:00:00")],
        )
        settings = isolated_feast_settings(features, tmp_path / f"w{n}" / "registry.db", "tw_two")
        store, _ = apply(settings)
        stores.append((settings, store, features))
    try:
        for _, store, features in stores:
            paths = [s.path for s in store.list_data_sources() if getattr(s, "path", None)]
            assert paths and all(p.startswith(str(features.resolve())) for p in paths), paths
    finally:
        for settings, store, _ in stores:
            teardown(settings, store)


def test_fetch_by_entity_equals_one_call_over_every_row(fs: dict[str, Any]) -> None:
    """historical_features asks Feast once per entity over the distinct keys: the same
    values, row for row, as one get_historical_features call over all rows (a ranker's
    examples: each user with many items, each item with many users, two times, contexts
    with blanks and an unknown device)."""
    store, root = fs["store"], fs["root"]
    users = pd.read_parquet(root / "features" / "user_daily.parquet")["user_id"].drop_duplicates()
    items = pd.read_parquet(root / "features" / "item_daily.parquet")["item_id"].drop_duplicates()
    users = users.sample(12, random_state=4).to_numpy()
    items = items.sample(15, random_state=4).to_numpy()
    now = datetime.now(UTC).replace(microsecond=0)
    grid = pd.MultiIndex.from_product([users, items, [0, 1]], names=["user_id", "item_id", "t"])
    rows = grid.to_frame(index=False)
    stamps = now - pd.to_timedelta(rows["t"] * 9, unit="D")
    rows = pd.DataFrame(
        {
            "user_id": rows["user_id"].astype(str),
            "item_id": rows["item_id"].astype(str),
            "event_timestamp": stamps,
            "request_device": np.where(rows.index % 3 == 0, "", "watch"),
            "request_country": np.where(rows.index % 2 == 0, "DE", ""),
            "request_ts": (stamps.astype("int64") // 10**9).astype("int64"),
            "_row": np.arange(len(rows)),
        }
    ).sample(frac=1.0, random_state=1)
    rows["request_device"] = np.where(rows["user_id"] == users[0], "mobile", rows["request_device"])
    service = store.get_feature_service("ranking_v1")
    whole = store.get_historical_features(entity_df=rows, features=service).to_df()
    split = historical_features(store, rows, "ranking_v1")
    whole = whole.sort_values("_row").reset_index(drop=True)
    split = split.sort_values("_row").reset_index(drop=True)
    names = [f.name for p in service.feature_view_projections for f in p.features]
    assert len(split) == len(rows) and len(names) > 50
    assert len(entity_groups(store, "ranking_v1")) == 2
    filled = 0
    for name in names:
        for a, b in zip(whole[name], split[name], strict=True):
            assert _same(a, b), name
            filled += not _same(a, None)
    assert filled > len(rows) * 20  # most features have values, not only nulls
