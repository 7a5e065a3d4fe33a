"""Popularity, trending and new arrivals: known orders, windows, context lists and
fallbacks."""

from __future__ import annotations

import pandas as pd
import pytest

from tailwise.candidates import NewArrivals, Popularity, Trending
from tests.candidates.conftest import CUT, events, items_of

LOG = events(
    ("u1", "a", 1, 5.0, "mobile"),
    ("u2", "a", 2, 5.0, "mobile"),
    ("u3", "b", 18, 3.0, "desktop"),
    ("u3", "b", 19, 3.0, "desktop"),
    ("u4", "c", 19, 1.0, "desktop"),
    ("u5", "a", 3, 1.0, "mobile"),
)


def test_popularity_sums_weights_and_leaves_out_seen_items() -> None:
    source = Popularity().fit(LOG, CUT)
    assert source.table["item_id"].tolist() == ["a", "b", "c"]
    assert source.table["score"].tolist() == [11.0, 6.0, 1.0]
    found = source.candidates(LOG, 5, users=["u1", "new"])
    assert items_of(found, "u1") == ["b", "c"]
    assert items_of(found, "new") == ["a", "b", "c"]
    assert found["source"].unique().tolist() == ["popularity"]
    assert items_of(source.candidates(LOG, 1, users=["new"]), "new") == ["a"]


def test_popularity_over_recent_days_only() -> None:
    source = Popularity(days=5).fit(LOG, CUT)
    assert source.name == "popularity_5d"
    assert source.table["item_id"].tolist() == ["b", "c"]
    assert Popularity(days=1.5, by="device").name == "popularity_device_1.5d"


def test_context_list_from_history_request_or_overall() -> None:
    source = Popularity(by="device").fit(LOG, CUT)
    assert source.name == "popularity_device"
    request = pd.DataFrame({"user_id": ["new"], "device": ["desktop"]})
    found = source.candidates(
        LOG, 3, users=["u4", "new", "other"], exclude_seen=False, context=request
    )
    assert items_of(found, "u4") == ["b", "c"]  # desktop, from the user's latest event
    assert items_of(found, "new") == ["b", "c"]  # desktop, from the request
    assert items_of(found, "other") == ["a", "b", "c"]  # no context: overall
    tablet = pd.DataFrame({"user_id": ["other"], "device": ["tablet"]})
    unseen = source.candidates(LOG, 3, users=["other"], context=tablet)
    assert items_of(unseen, "other") == ["a", "b", "c"]  # a value never seen: overall


def test_context_column_absent_gives_the_overall_list() -> None:
    source = Popularity(by="country").fit(LOG, CUT)
    assert items_of(source.candidates(LOG, 3, users=["x"]), "x") == ["a", "b", "c"]


def test_trending_prefers_a_rise_over_steady_volume() -> None:
    steady = [("s", "big", day, 2.0) for day in range(1, 20)]
    rising = [("r", "new", 18, 1.0), ("r", "new", 19, 1.0), ("q", "new", 19, 1.0)]
    source = Trending(short_days=3, long_days=19, smoothing=0.5).fit(events(*steady, *rising), CUT)
    assert source.table["item_id"].tolist() == ["new", "big"]
    short, long = 3 / 3, 3 / 19
    assert source.table["score"].iloc[0] == pytest.approx((short + 0.5) / (long + 0.5))


def test_trending_leaves_out_items_absent_from_the_short_window() -> None:
    source = Trending(short_days=2, long_days=10).fit(LOG, CUT)
    assert set(source.table["item_id"]) == {"b", "c"}


CATALOGUE = pd.DataFrame(
    {
        "item_id": ["old", "mid", "new", "later", "unknown", "twin"],
        "created_at": [
            "2026-01-01T00:00:00Z",
            "2026-10-01T00:00:00Z",
            "2026-10-18T00:00:00Z",
            "2026-10-25T00:00:00Z",  # after the cut
            None,
            "2026-10-01T00:00:00Z",
        ],
    }
)


def test_new_arrivals_are_the_newest_items_at_the_cut() -> None:
    source = NewArrivals(CATALOGUE).fit(LOG, CUT)
    # Entered before the cut only; no date, no candidate; ties by item id.
    assert source.table["item_id"].tolist() == ["new", "mid", "twin", "old"]
    assert source.table["score"].iloc[0] == pytest.approx(1 / (1 + 2.0))
    found = source.candidates(LOG, 2, users=["u1", "someone"])
    assert items_of(found, "u1") == ["new", "mid"]
    assert items_of(found, "someone") == ["new", "mid"]
    assert items_of(NewArrivals(CATALOGUE, keep=1).fit(LOG, CUT).candidates(LOG, 5), "u1") == [
        "new"
    ]


def test_new_arrivals_need_no_event_and_skip_seen_items() -> None:
    seen = events(("u1", "new", 19))
    found = NewArrivals(CATALOGUE).fit(seen, CUT).candidates(seen, 3, users=["u1"])
    assert items_of(found, "u1") == ["mid", "twin", "old"]


def test_a_catalogue_without_dates_gives_no_new_arrivals() -> None:
    source = NewArrivals(CATALOGUE[["item_id"]]).fit(LOG, CUT)
    assert source.table.empty
    assert source.candidates(LOG, 3, users=["u1"]).empty


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: Popularity(days=0), "days"),
        (lambda: Popularity(by=""), "by"),
        (lambda: Trending(short_days=-1), "short_days"),
        (lambda: Trending(short_days=7, long_days=7), "long_days"),
        (lambda: Trending(smoothing=0), "smoothing"),
        (lambda: NewArrivals(CATALOGUE, keep=0), "keep"),
        (lambda: NewArrivals(pd.DataFrame({"id": ["a"]})), "item_id"),
    ],
)
def test_bad_parameters_are_named(make, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        make()
