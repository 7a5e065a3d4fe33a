"""item_daily ranks and conversion, item_catalog bands, on hand-made data."""

from __future__ import annotations

import pandas as pd

from tests.features.conftest import build_small, event, item, user

MIDNIGHT = pd.Timestamp("2026-03-02", tz="UTC")


def test_popularity_rank_and_conversion(tmp_path):
    items = [item("a"), item("b"), item("c"), item("d")]
    events = (
        [event("u1", "a", f"2026-03-01T10:0{i}:00") for i in range(3)]
        + [
            event("u2", "a", "2026-03-01T11:00:00"),
            event("u2", "a", "2026-03-01T11:05:00", "purchase"),
        ]
        + [event("u1", "b", "2026-03-01T12:00:00"), event("u2", "b", "2026-03-01T12:30:00")]
        + [event("u1", "c", "2026-03-01T13:00:00", "add_to_cart")]
        + [event("u1", "d", "2026-02-20T13:00:00")]  # viewed 9 days before: not in 7d
    )
    out = build_small(tmp_path, [user("u1"), user("u2")], items, events)
    daily = pd.read_parquet(out / "item_daily.parquet")
    at = daily.loc[daily["event_timestamp"] == MIDNIGHT].set_index("item_id")
    assert at.loc["a", "views_1d"] == 4 and at.loc["a", "purchases_7d"] == 1
    assert at.loc["a", "conversion_7d"] == 0.25 and at.loc["a", "unique_users_7d"] == 2
    assert at.loc["a", "popularity_rank_7d"] == 1 and at.loc["b", "popularity_rank_7d"] == 2
    # No views in 7 days: ranked after every viewed item, conversion 0.
    assert at.loc["c", "popularity_rank_7d"] == 3 and at.loc["c", "conversion_7d"] == 0.0
    d = daily.loc[daily["item_id"] == "d"].set_index("event_timestamp")
    # d's D+8 snapshot (02-28) has no 7-day views; on 02-21 it was the only viewed item.
    assert d.loc[pd.Timestamp("2026-02-21", tz="UTC"), "popularity_rank_7d"] == 1
    assert d.loc[pd.Timestamp("2026-02-28", tz="UTC"), "views_7d"] == 0
    assert d.loc[pd.Timestamp("2026-02-28", tz="UTC"), "views_30d"] == 1


def test_catalog_price_bands_and_categories(tmp_path):
    items = [
        item("a", "Home/Kitchen|Toys/Dolls", price=1),
        item("b", "Home/Decor", price=2),
        item("c", "Home/Decor", price=3),
        item("d", "Toys/Dolls", price=100),
    ]
    out = build_small(
        tmp_path,
        [user("u1"), user("u2")],
        items,
        [event("u1", "a", "2026-03-01T10:00:00"), event("u2", "d", "2026-03-01T11:00:00")],
    )
    cat = pd.read_parquet(out / "item_catalog.parquet").set_index("item_id")
    assert list(cat["price_band"]) == ["low", "mid", "high", "high"]
    assert cat.loc["a", "category"] == "Home/Kitchen"
    assert list(cat.loc["a", "categories"]) == ["Home/Kitchen", "Toys/Dolls"]
