"""Outcome attribution and the window's KPIs, exact on hand-made lists."""

from __future__ import annotations

import math
from datetime import timedelta

import pandas as pd
import pytest

from monitoring.quality import attribute, outcome_kpis, ranking_kpis, relevant_after

T0 = pd.Timestamp("2026-11-01 10:00", tz="UTC")
HOUR = timedelta(hours=1)
CLICKS = ("product_view", "add_to_cart", "purchase")
BUYS = ("purchase",)


def served(*rows: tuple[str, str, str, int, float]) -> pd.DataFrame:
    """(request, user, item, rank, hours after T0 of the serve)."""
    return pd.DataFrame(
        [
            {"request_id": r, "user_id": u, "item_id": i, "rank": k, "ts": T0 + h * HOUR}
            for r, u, i, k, h in rows
        ]
    )


def events(*rows: tuple[str, str, str, float]) -> pd.DataFrame:
    """(user, item, type, hours after T0)."""
    return pd.DataFrame(
        [
            {"user_id": u, "item_id": i, "event_type": t, "timestamp": T0 + h * HOUR}
            for u, i, t, h in rows
        ],
        columns=["user_id", "item_id", "event_type", "timestamp"],
    )


def test_clicks_and_purchases_within_the_window_after_the_serve_are_attributed() -> None:
    lists = served(
        ("r1", "u1", "a", 1, 0),
        ("r1", "u1", "b", 2, 0),
        ("r1", "u1", "c", 3, 0),
        ("r2", "u2", "a", 1, 0),
        ("r2", "u2", "b", 2, 0),
    )
    later = events(
        ("u1", "b", "product_view", 0.5),  # clicked
        ("u1", "c", "purchase", 23.9),  # bought, inside 24 h
        ("u2", "a", "product_view", -0.1),  # before the serve: not credited
        ("u2", "b", "add_to_cart", 24.5),  # too late
        ("u2", "a", "page_view", 1.0),  # not a click type
        ("u3", "a", "purchase", 1.0),  # another user
    )
    out = attribute(lists, later, timedelta(hours=24), CLICKS, BUYS)
    assert list(out["clicked"]) == [False, True, True, False, False]
    assert list(out["converted"]) == [False, False, True, False, False]


def test_an_event_at_the_serve_time_counts_and_every_earlier_serve_in_the_window_gets_it() -> None:
    lists = served(("r1", "u1", "a", 1, 0), ("r2", "u1", "a", 1, 2), ("r3", "u1", "a", 1, 3))
    out = attribute(lists, events(("u1", "a", "PRODUCT_VIEW", 2)), 24 * HOUR, CLICKS, BUYS)
    assert list(out["clicked"]) == [True, True, False]


def test_ctr_and_conversion_at_k_are_shares_of_lists() -> None:
    attributed = pd.DataFrame(
        {
            "request_id": ["r1", "r1", "r1", "r2", "r2", "r3"],
            "rank": [1, 2, 3, 1, 2, 1],
            "clicked": [False, False, True, True, False, False],
            "converted": [False, False, True, False, False, False],
        }
    )
    kpis = outcome_kpis(attributed, [1, 3])
    assert kpis == pytest.approx(
        {"ctr@1": 1 / 3, "conversion@1": 0.0, "ctr@3": 2 / 3, "conversion@3": 1 / 3}
    )
    empty = outcome_kpis(attributed.iloc[0:0], [1])
    assert math.isnan(empty["ctr@1"])


def test_precision_and_ndcg_use_everything_the_user_clicked_after_the_serve() -> None:
    lists = served(
        ("r1", "u1", "a", 1, 0),
        ("r1", "u1", "b", 2, 0),
        ("r2", "u2", "c", 1, 0),
        ("r2", "u2", "d", 2, 0),
        ("r3", "u3", "e", 1, 0),
    )
    later = events(
        ("u1", "b", "product_view", 1),  # served at rank 2
        ("u1", "z", "purchase", 2),  # not served: still relevant
        ("u2", "c", "product_view", 1),  # served at rank 1
        ("u3", "e", "product_view", 30),  # outside the window: r3 is not measured
    )
    relevant = relevant_after(lists, later, 24 * HOUR, CLICKS)
    assert sorted(map(tuple, relevant.to_numpy())) == [("r1", "b"), ("r1", "z"), ("r2", "c")]
    kpis, measured = ranking_kpis(lists, relevant, [2])
    assert measured == 2
    # r1: hit at rank 2, |R| = 2 -> precision 1/2, ndcg (1/log2 3) / (1 + 1/log2 3)
    # r2: hit at rank 1, |R| = 1 -> precision 1/2, ndcg 1
    ndcg_r1 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert kpis["precision@2"] == pytest.approx(0.5)
    assert kpis["ndcg@2"] == pytest.approx((ndcg_r1 + 1.0) / 2)


def test_no_relevant_event_means_not_measured_and_a_missing_column_is_named() -> None:
    lists = served(("r1", "u1", "a", 1, 0))
    kpis, measured = ranking_kpis(lists, relevant_after(lists, events(), 24 * HOUR, CLICKS), [5])
    assert measured == 0 and math.isnan(kpis["ndcg@5"])
    with pytest.raises(ValueError, match=r"lack column\(s\) \['event_type'\]"):
        attribute(lists, events().drop(columns="event_type"), 24 * HOUR, CLICKS, BUYS)
