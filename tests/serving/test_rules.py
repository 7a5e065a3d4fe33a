"""Business rules after ranking, and the reasons shown with each item."""

from __future__ import annotations

import numpy as np

from serving.config import RulesConfig
from serving.rules import FALLBACK_REASON, apply_rules, reasons, text_missing

IDS = np.array(["a", "b", "c", "d", "e", "f"], dtype=object)
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
CATS = ["Home/Kitchen", "Home/Kitchen", "Home/Kitchen", "Sports/Run", None, "Fashion/Shoes"]


def test_k_respected_and_score_order_kept() -> None:
    ranked = apply_rules(RulesConfig(max_per_category=10), IDS, SCORES, CATS, 4)
    assert ranked.item_ids == ["a", "b", "c", "d"]
    assert ranked.scores == sorted(ranked.scores, reverse=True)


def test_at_most_m_per_category() -> None:
    ranked = apply_rules(RulesConfig(max_per_category=2), IDS, SCORES, CATS, 6)
    assert ranked.item_ids == ["a", "b", "d", "e", "f"]  # c is the third Home/Kitchen item


def test_excluded_items_and_categories_never_returned() -> None:
    rules = RulesConfig(max_per_category=10, exclude_categories=["Sports"])
    ranked = apply_rules(rules, IDS, SCORES, CATS, 6, exclude=["a", "unknown-item"])
    assert ranked.item_ids == ["b", "c", "e", "f"]


def test_boost_lifts_a_category_without_reordering_the_rest() -> None:
    rules = RulesConfig(max_per_category=10, boosts={"Fashion": 3.0})
    ranked = apply_rules(rules, IDS, np.log(SCORES), CATS, 3)
    assert ranked.item_ids == ["f", "a", "b"]  # 0.4 * 3 = 1.2 beats 0.9


def test_fewer_items_when_fewer_qualify() -> None:
    ranked = apply_rules(RulesConfig(), IDS[:2], SCORES[:2], CATS[:2], 10, exclude=["a"])
    assert ranked.item_ids == ["b"] and ranked.positions == [1]


def test_reason_names_the_strongest_readable_feature() -> None:
    names = ["retrieval_score", "x_same_rt_category", "age", "x_brand_match"]
    contributions = np.array(
        [
            [0.1, 0.5, 0.9, 0.0, 0.0],  # age is strongest but has no wording: next is category
            [0.0, -0.2, 0.0, 0.3, 0.0],
            [-0.1, -0.1, -0.1, -0.1, 0.0],  # nothing positive
            [0.0, 0.0, 0.0, 0.4, 0.0],  # brand wanted but unknown: falls through
        ]
    )
    items = {
        "category": np.array(["Sports/Run", "Home", "Home", "Home"], dtype=object),
        "brand": np.array(["b1", "Acme", None, None], dtype=object),
    }
    want = [
        "more from Sports/Run, which you are browsing now",
        "a brand you like: Acme",
        FALLBACK_REASON,
        FALLBACK_REASON,
    ]
    assert reasons(contributions, names, items) == want
    # The request path passes the catalogue's `text_missing`, gathered for the rows.
    catalogue = {k: np.concatenate([v, v]) for k, v in items.items()}
    rows = np.array([4, 5, 2, 7])
    chosen = {k: v[rows] for k, v in catalogue.items()}
    assert reasons(contributions, names, chosen, text_missing(catalogue, 8)[rows]) == want
