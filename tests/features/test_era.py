"""Data of another era: features of a 1990s dataset are retrievable point-in-time offline
and reach Redis in full; windows and segments are relative to the data, not to today."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from tailwise.features.build import build_features
from tailwise.features.config import FeaturesParams
from tailwise.features.store import apply, materialize, teardown
from tests.feast_project import isolated_feast_settings
from tests.features.conftest import event, item, user, write_clean

pytestmark = pytest.mark.integration  # a Feast repo of its own, materialised into Redis

USER_FEATURES = [
    "user_profile_demographics:age",
    "user_daily_engagement:views_30d",
    "user_daily_rfm:frequency",
    "user_daily_affinity:top_brands",
]
ITEM_FEATURES = ["item_profile_catalog:brand", "item_daily_popularity:item_views_30d"]


@pytest.fixture(scope="module")
def nineties(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("nineties")
    days = pd.date_range("1997-03-01T10:00", periods=40, freq="D", tz="UTC")
    events = [
        event(
            f"u{i}",
            f"i{(i * 7 + d) % 5}",
            str(days[d]),
            "purchase" if d % 4 == 0 else "product_view",
        )
        for i in range(6)
        for d in range(i % 3, 40, 3)
    ]
    users = [user(f"u{i}", signup=None) for i in range(6)]  # valid from their first event
    items = [{**item(f"i{j}"), "created_at": pd.NaT} for j in range(5)]
    clean = write_clean(root / "clean", users, items, events)
    build_features(clean, root / "features", FeaturesParams(n_segments=2))
    settings = isolated_feast_settings(root / "features", root / "registry.db")
    store, _ = apply(settings)
    try:
        yield {"root": root, "store": store, "settings": settings, "events": events}
    finally:
        teardown(settings, store)


def test_1990s_features_are_retrievable_point_in_time(nineties: dict[str, Any]) -> None:
    store = nineties["store"]
    at = [pd.Timestamp("1997-04-05", tz="UTC"), pd.Timestamp("1999-06-01", tz="UTC")]
    entities = pd.DataFrame(
        {
            "user_id": ["u1", "u1"],
            "item_id": ["i1", "i1"],
            "event_timestamp": at,
        }
    )
    got = store.get_historical_features(
        entity_df=entities, features=USER_FEATURES + ITEM_FEATURES
    ).to_df()
    got = got.sort_values("event_timestamp").reset_index(drop=True)
    for name in ("age", "views_30d", "frequency", "brand", "item_views_30d"):
        assert got[name].notna().all(), (name, got)
    assert got.loc[0, "views_30d"] > 0
    # Two years after the data ends, its last state (at the as-of time) is kept: no TTL
    # expiry, and no snapshot after the data's own "now".
    daily = pd.read_parquet(nineties["root"] / "features" / "user_daily.parquet")
    last = daily.loc[daily["user_id"] == "u1"].sort_values("event_timestamp").iloc[-1]
    assert got.loc[1, "views_30d"] == last["views_30d"]
    assert got.loc[1, "frequency"] == last["frequency"] >= 1
    assert list(got.loc[0, "top_brands"]) == ["Acme"]


def test_1990s_features_reach_redis(nineties: dict[str, Any]) -> None:
    materialize(nineties["settings"])
    online = (
        nineties["store"]
        .get_online_features(
            features=USER_FEATURES + ITEM_FEATURES,
            entity_rows=[{"user_id": "u2", "item_id": "i3"}],
        )
        .to_dict()
    )
    for name in ("age", "views_30d", "frequency", "brand", "item_views_30d"):
        assert online[name][0] is not None, (name, online)


def test_windows_and_segments_follow_the_data_as_of(nineties: dict[str, Any]) -> None:
    features = nineties["root"] / "features"
    record = json.loads((features / "data_version.json").read_text())
    newest = max(pd.Timestamp(e["timestamp"]) for e in nineties["events"])
    assert pd.Timestamp(record["as_of"]) == newest
    daily = pd.read_parquet(features / "user_daily.parquet")
    assert daily["event_timestamp"].max() == newest.floor("D") + pd.Timedelta(days=1)
    model = json.loads((features / "segments_model.json").read_text())
    assert model["n_fit"] == 6  # every user has a snapshot before the cutoff
    profile = pd.read_parquet(features / "user_profile.parquet").set_index("user_id")
    first = min(pd.Timestamp(e["timestamp"]) for e in nineties["events"] if e["user_id"] == "u0")
    assert profile.loc["u0", "event_timestamp"] == first
