"""Retrieval's compiled scores are the matrix product's, and its top-n the rows a full stable
sort would return."""

from __future__ import annotations

import numpy as np
import pytest

from serving.retrieval import _best_rows, _top_rows


def _expected(vectors: np.ndarray, query: np.ndarray, dropped: list[int], n: int) -> np.ndarray:
    scores = (vectors @ query).astype(np.float64)
    scores[dropped] = -np.inf
    order = np.lexsort((np.arange(len(scores)), -scores))  # best first, ties by position
    return order[np.isfinite(scores[order])][:n]


@pytest.mark.parametrize(
    ("n", "dropped"), [(5, []), (20, [3, 7, 7]), (200, [0]), (60, list(range(50))), (0, [])]
)
def test_top_rows_equal_a_stable_sort(n: int, dropped: list[int]) -> None:
    rng = np.random.default_rng(n)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    vectors[10:20] = vectors[0]  # ties: the same score eleven times
    vectors[30] = 0.0
    query = rng.normal(size=8).astype(np.float32)
    scores = (vectors @ query).astype(np.float64)
    got = _top_rows(scores, np.array(dropped, dtype=np.int64), n)
    np.testing.assert_array_equal(got, _expected(vectors, query, dropped, n))
    assert np.isneginf(scores[dropped]).all()


def test_best_rows_scores_are_the_products() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, 32)).astype(np.float32)
    vectors[100:110] = vectors[5]  # ties survive: the same vector, the same sum
    query = rng.normal(size=32).astype(np.float32)
    scores = np.full(300, np.nan)  # whatever it held before
    columns = np.ascontiguousarray(vectors.T)
    got = _best_rows(columns, query, np.array([2], dtype=np.int64), 50, scores)
    want = vectors.astype(np.float64) @ query.astype(np.float64)
    want[2] = -np.inf
    np.testing.assert_allclose(scores, want, rtol=1e-12, atol=1e-12)
    # Exactly each item's float64 sum over the dimensions in order.
    in_order = np.zeros(300)
    for j in range(32):
        in_order += vectors[:, j].astype(np.float64) * np.float64(query[j])
    in_order[2] = -np.inf
    np.testing.assert_array_equal(scores, in_order)
    np.testing.assert_array_equal(got, _top_rows(scores.copy(), np.zeros(0, np.int64), 50))
