"""Co-visitation and EASE neighbours: known neighbours, time decay, windows, seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tailwise.candidates import CoVisitation, EaseNeighbours, ease_weights
from tests.candidates.conftest import CUT, events, items_of


def neighbours_of(source, item: str) -> dict[str, float]:
    rows = source.table[source.table["item_id"] == item]
    return dict(zip(rows["neighbour_id"], rows["score"], strict=True))


def test_covisitation_counts_pairs_of_one_users_items() -> None:
    log = events(("u1", "a", 19), ("u1", "b", 19), ("u2", "a", 19), ("u2", "b", 19),
                 ("u2", "c", 19), ("u3", "c", 19), ("u3", "d", 19))  # fmt: skip
    source = CoVisitation(half_life_days=1e9).fit(log, CUT)
    assert neighbours_of(source, "a") == pytest.approx({"b": 2.0, "c": 1.0})
    assert neighbours_of(source, "c") == pytest.approx({"a": 1.0, "b": 1.0, "d": 1.0})
    assert "a" not in neighbours_of(source, "a")
    found = source.candidates(events(("me", "a", 19)), 5)
    assert items_of(found, "me") == ["b", "c"]


def test_covisitation_decays_older_pairs() -> None:
    log = events(("u1", "a", 5), ("u1", "old", 5), ("u2", "a", 19), ("u2", "recent", 19))
    source = CoVisitation(half_life_days=7).fit(log, CUT)
    scores = neighbours_of(source, "a")
    assert list(scores) == ["recent", "old"]
    assert scores["recent"] == pytest.approx(0.5 ** (0.5 / 7))
    assert scores["old"] == pytest.approx(0.5 ** (14.5 / 7))


def test_covisitation_window_and_seed_recency() -> None:
    log = events(("u1", "a", 1), ("u1", "far", 10), ("u2", "b", 19), ("u2", "y", 19),
                 ("u3", "a", 19), ("u3", "x", 19))  # fmt: skip
    source = CoVisitation(half_life_days=2, window_days=1).fit(log, CUT)
    assert "far" not in neighbours_of(source, "a")
    assert "far" in neighbours_of(CoVisitation(window_days=None).fit(log, CUT), "a")
    # The user saw b lately and a long ago: b's neighbour comes first.
    found = source.candidates(events(("me", "a", 2), ("me", "b", 19)), 5)
    assert items_of(found, "me") == ["y", "x"]


def test_covisitation_cosine_damps_popular_neighbours() -> None:
    rows = [(f"p{i}", "hub", 19) for i in range(6)] + [(f"p{i}", "z", 19) for i in range(6)]
    rows += [("q", "a", 19), ("q", "hub", 19), ("q", "niche", 19)]
    log = events(*rows)
    plain = neighbours_of(CoVisitation(half_life_days=1e9).fit(log, CUT), "a")
    assert plain["hub"] == plain["niche"]
    cosine = neighbours_of(CoVisitation(half_life_days=1e9, normalize="cosine").fit(log, CUT), "a")
    assert cosine["niche"] > cosine["hub"]


def test_ease_neighbours_are_the_positive_ease_weights() -> None:
    log = events(("u1", "a", 1), ("u1", "b", 1), ("u2", "a", 2), ("u2", "b", 2),
                 ("u2", "c", 2), ("u3", "c", 3), ("u3", "d", 3))  # fmt: skip
    source = EaseNeighbours(lambda_=0.5, neighbours=10).fit(log, CUT)
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1]], dtype=np.float32))
    b = ease_weights(x, 0.5)
    gram = x.T.toarray() @ x.toarray() + 0.5 * np.eye(4)
    p = np.linalg.inv(gram)
    assert b == pytest.approx(np.where(np.eye(4) == 1, 0.0, -p / np.diag(p)), abs=1e-5)
    names = ["a", "b", "c", "d"]
    expected = {(names[i], names[j]): b[i, j] for i in range(4) for j in range(4) if b[i, j] > 0}
    table = source.table
    got = {(r.item_id, r.neighbour_id): r.score for r in table.itertuples(index=False)}
    assert got == pytest.approx(expected, abs=1e-5)
    found = source.candidates(events(("me", "a", 4)), 3)
    ranked = sorted((-b[0, j], names[j]) for j in (1, 2, 3) if b[0, j] > 0)
    assert items_of(found, "me") == [name for _, name in ranked]


def test_ease_weights_of_the_same_matrix_are_made_once() -> None:
    """The same X'X and lambda (rows in another order too) give the kept B, read-only;
    another lambda or matrix gives a new one."""
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=np.float32))
    first = ease_weights(x, 2.0)
    assert ease_weights(x[[2, 0, 1]], 2.0) is first
    assert not first.flags.writeable
    other = ease_weights(x, 3.0)
    assert other is not first and not np.allclose(other, first)
    assert ease_weights(x[:2], 3.0) is not other


def test_ease_keeps_only_the_top_neighbours() -> None:
    log = events(*[(f"u{i}", item, 1) for i in range(4) for item in "abcde"])
    source = EaseNeighbours(lambda_=1.0, neighbours=2).fit(log, CUT)
    assert source.table.groupby("item_id").size().max() <= 2


def test_ease_refuses_too_many_items() -> None:
    log = events(("u1", "a", 1), ("u1", "b", 1), ("u1", "c", 1))
    with pytest.raises(ValueError, match="max_items=2"):
        EaseNeighbours(max_items=2).fit(log, CUT)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: CoVisitation(half_life_days=0), "half_life_days"),
        (lambda: CoVisitation(window_days=-1), "window_days"),
        (lambda: CoVisitation(neighbours=0), "neighbours"),
        (lambda: CoVisitation(recent_items=1.5), "recent_items"),
        (lambda: CoVisitation(normalize="l2"), "normalize"),
        (lambda: EaseNeighbours(lambda_=0), "lambda_"),
        (lambda: EaseNeighbours(neighbours=-3), "neighbours"),
    ],
)
def test_bad_parameters_are_named(make, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        make()


def test_candidates_before_fit_and_bad_n() -> None:
    with pytest.raises(RuntimeError, match="fit"):
        CoVisitation().candidates(events(("u", "a", 1)), 5)
    source = CoVisitation().fit(events(("u", "a", 1)), CUT)
    with pytest.raises(ValueError, match="n must be"):
        source.candidates(events(("u", "a", 1)), 0)
    with pytest.raises(ValueError, match="lack column"):
        source.candidates(pd.DataFrame({"user_id": ["u"]}), 5)
