"""Baselines: tiny fits, ordering, k, exclusion of seen items, cold start, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.training.conftest import events, items
from training.baselines import EASE, ItemCooccurrence, MostPopular, RecentlyPopular

CATALOGUE = items("a", "b", "c", "d", "e", "f")
TRAIN = events(
    ("u1", "a", "2026-10-01", "purchase"),
    ("u1", "b", "2026-10-01"),
    ("u2", "a", "2026-10-02", "purchase"),
    ("u2", "b", "2026-10-02"),
    ("u2", "c", "2026-10-02"),
    ("u3", "a", "2026-10-03"),
    ("u4", "d", "2026-10-09", "add_to_cart"),
    ("u4", "e", "2026-10-10"),
    ("u5", "e", "2026-10-10", "page_view"),
)
ALL = [
    MostPopular,
    RecentlyPopular,
    ItemCooccurrence,
    lambda: ItemCooccurrence(normalize="cosine"),
    lambda: EASE(lambda_=1.0),
]


def top(recs: pd.DataFrame, user: str) -> list[str]:
    return recs[recs.user_id == user].sort_values("rank")["item_id"].tolist()


@pytest.mark.parametrize("make", ALL)
def test_common_contract(make) -> None:
    model = make().fit(TRAIN, CATALOGUE)
    recs = model.recommend(["u1", "u2", "nobody"], k=3)
    assert list(recs.columns) == ["user_id", "item_id", "rank", "score"]
    assert recs.groupby("user_id").size().max() <= 3
    assert not set(top(recs, "u1")) & {"a", "b"}  # already seen
    assert not set(top(recs, "u2")) & {"a", "b", "c"}
    assert len(top(recs, "nobody")) == 3  # cold start still gets k items
    for _, part in recs.groupby("user_id"):
        assert part["rank"].tolist() == list(range(1, len(part) + 1))
        assert part["score"].is_monotonic_decreasing
    again = make().fit(TRAIN, CATALOGUE).recommend(["u1", "u2", "nobody"], k=3)
    pd.testing.assert_frame_equal(recs, again)


@pytest.mark.parametrize("make", ALL)
def test_fewer_items_than_k_when_the_catalogue_runs_out(make) -> None:
    recs = make().fit(TRAIN, CATALOGUE).recommend(["u2"], k=10)
    assert sorted(top(recs, "u2")) == ["d", "e", "f"]
    with_seen = make().fit(TRAIN, CATALOGUE).recommend(["u2"], k=10, exclude_seen=False)
    assert len(with_seen) == 6


def test_most_popular_is_weighted_by_event_weight() -> None:
    recs = MostPopular().fit(TRAIN, CATALOGUE).recommend(["nobody"], k=6)
    # a: 5+5+1, d: 3, b: 2, e: 1.1, c: 1, f: 0
    assert top(recs, "nobody") == ["a", "d", "b", "e", "c", "f"]


def test_recently_popular_uses_the_last_days_only() -> None:
    recs = RecentlyPopular(days=2).fit(TRAIN, CATALOGUE).recommend(["nobody"], k=3)
    # d and e happened in the last two days; ties and the rest by all-time popularity.
    assert top(recs, "nobody") == ["d", "e", "a"]


def test_item_cooccurrence_follows_the_users_recent_items() -> None:
    recs = ItemCooccurrence().fit(TRAIN, CATALOGUE).recommend(["u1", "u5"], k=1)
    assert top(recs, "u1") == ["c"]  # c was bought with a and b by u2
    assert top(recs, "u5") == ["d"]  # e co-occurs with d (u4)


def test_ease_learns_item_relations_and_refuses_large_catalogues() -> None:
    recs = EASE(lambda_=0.5).fit(TRAIN, CATALOGUE).recommend(["u5"], k=1)
    assert top(recs, "u5") == ["d"]
    # Five items are touched in training (f is not): the limit counts those.
    with pytest.raises(ValueError, match="touches 5 items, more than max_items=4"):
        EASE(max_items=4).fit(TRAIN, CATALOGUE)


def test_ease_on_touched_items_scores_as_on_the_whole_catalogue() -> None:
    """Untouched items add nothing to X'X but a lambda on the diagonal: same scores."""
    model = EASE(lambda_=2.0).fit(TRAIN, CATALOGUE)
    x = model.seen.toarray()
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(x.shape[1]))
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    rows = np.arange(len(model.user_ids))
    np.testing.assert_allclose(model._scores(rows), x @ b, atol=1e-5)


def test_recommend_before_fit_and_bad_k_are_errors() -> None:
    with pytest.raises(RuntimeError, match="fit"):
        MostPopular().recommend(["u1"], k=3)
    with pytest.raises(ValueError, match="k must be >= 1"):
        MostPopular().fit(TRAIN, CATALOGUE).recommend(["u1"], k=0)
