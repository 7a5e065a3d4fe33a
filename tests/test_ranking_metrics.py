"""Ranking metrics against hand-computed values, slices and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tailwise.ranking_metrics import catalogue_coverage, per_user_metrics, summarise, user_slices

L3 = 1 / math.log2(3)  # discount of rank 2


def recs(*rows: tuple[str, str, int]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rank"])


def relevant(*rows: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


RECS = recs(
    ("A", "a", 1), ("A", "x", 2), ("A", "b", 3),
    ("B", "d", 2),  # one recommendation, at rank 2: fewer than K
    ("D", "a", 1),  # D has no relevant item: not measured
)  # fmt: skip
RELEVANT = relevant(("A", "a"), ("A", "b"), ("A", "c"), ("B", "d"), ("C", "e"))


def metrics_of(user: str, k: int) -> dict[str, float]:
    table = per_user_metrics(RECS, RELEVANT, [2, 3])
    row = table[(table.user_id == user) & (table.k == k)]
    assert len(row) == 1
    return row.iloc[0].drop(["user_id", "k"]).to_dict()


def test_hand_computed_user_with_several_relevant_items() -> None:
    at2 = metrics_of("A", 2)
    assert at2["precision"] == pytest.approx(1 / 2)
    assert at2["recall"] == pytest.approx(1 / 3)
    assert at2["ndcg"] == pytest.approx(1 / (1 + L3))  # ideal over min(2, 3) = 2 items
    assert at2["map"] == pytest.approx(1 / 2)  # (P@1) / min(2, 3)
    assert at2["hit_rate"] == 1.0
    at3 = metrics_of("A", 3)
    assert at3["precision"] == pytest.approx(2 / 3)
    assert at3["recall"] == pytest.approx(2 / 3)
    assert at3["ndcg"] == pytest.approx((1 + 0.5) / (1 + L3 + 0.5))
    assert at3["map"] == pytest.approx((1 + 2 / 3) / 3)


def test_fewer_recommendations_than_k_still_divide_precision_by_k() -> None:
    at3 = metrics_of("B", 3)
    assert at3["precision"] == pytest.approx(1 / 3)
    assert at3["recall"] == 1.0
    assert at3["ndcg"] == pytest.approx(L3)  # ideal: the one item at rank 1
    assert at3["map"] == pytest.approx(1 / 2)  # P@2 / min(3, 1)
    assert at3["hit_rate"] == 1.0


def test_users_without_recommendations_score_zero_and_without_relevant_are_excluded() -> None:
    assert set(metrics_of("C", 2).values()) == {0.0}
    table = per_user_metrics(RECS, RELEVANT, [2, 3])
    assert set(table.user_id) == {"A", "B", "C"}
    assert len(table) == 6


def test_only_the_top_k_count() -> None:
    table = per_user_metrics(recs(("A", "x", 1), ("A", "a", 2)), relevant(("A", "a")), [1, 2])
    assert (
        table.set_index("k").loc[1, ["precision", "recall", "ndcg", "map", "hit_rate"]].sum() == 0
    )
    assert table.set_index("k").loc[2, "ndcg"] == pytest.approx(L3)


def test_order_of_rows_does_not_matter() -> None:
    shuffled = RECS.sample(frac=1.0, random_state=3)
    a = per_user_metrics(RECS, RELEVANT, [2, 3])
    b = per_user_metrics(shuffled, RELEVANT, [2, 3])
    pd.testing.assert_frame_equal(a, b)


def test_duplicates_are_rejected_naming_the_user() -> None:
    with pytest.raises(ValueError, match="duplicate recommendation item for user 'A'"):
        per_user_metrics(recs(("A", "a", 1), ("A", "a", 2)), RELEVANT, [2])
    with pytest.raises(ValueError, match="duplicate recommendation rank for user 'B'"):
        per_user_metrics(recs(("B", "a", 1), ("B", "b", 1)), RELEVANT, [2])
    with pytest.raises(ValueError, match="user 'A' has rank 0"):
        per_user_metrics(recs(("A", "a", 0)), RELEVANT, [2])
    with pytest.raises(ValueError, match="ks"):
        per_user_metrics(RECS, RELEVANT, [0])


def test_catalogue_coverage_counts_distinct_items_in_the_top_k() -> None:
    assert catalogue_coverage(RECS, [1, 2, 3], 10) == {1: 0.1, 2: 0.3, 3: 0.4}
    assert catalogue_coverage(RECS, [3], 10, users=["B"]) == {3: 0.1}


def test_summarise_averages_per_slice() -> None:
    users = pd.DataFrame({"user_id": ["A", "B", "C"], "status": ["returning", "new", "new"]})
    slices = user_slices(users, {"A": "s1", "B": "s1"})
    assert {k: sorted(v) for k, v in slices.items()} == {
        "all": ["A", "B", "C"],
        "new": ["B", "C"],
        "returning": ["A"],
        "segment=s1": ["A", "B"],
        "segment=unassigned": ["C"],
    }
    per_user = per_user_metrics(RECS, RELEVANT, [2, 3])
    table = summarise(per_user, RECS, slices, catalogue_size=10).set_index(["slice", "k", "metric"])
    assert table.loc[("all", 2, "precision"), "value"] == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert table.loc[("new", 3, "recall"), "value"] == pytest.approx(0.5)
    assert table.loc[("new", 3, "recall"), "users"] == 2
    assert table.loc[("segment=s1", 3, "coverage"), "value"] == pytest.approx(0.4)
    assert table.loc[("segment=s1", 2, "coverage"), "value"] == pytest.approx(0.3)
    assert np.isfinite(table["value"]).all()
