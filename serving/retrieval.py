"""Retrieval on the request path: raw user values -> query vector -> top-N items.

The query vector comes from the version's query tower (serving.tower, or the SavedModel
for a version trained before its export), fed a feature row encoded as training encodes
its examples: both go through tailwise.features.tower_inputs (missing numeric -> 0,
missing text -> '', lists cut to their length and padded with ''). `tower_inputs` gives
one row in that format, which is also what the SavedModel's signature takes. The item
index is exact inner-product search over the version's item vectors; `training.index`
measured where an ANN index starts to pay.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from serving.bundle import ModelBundle
from tailwise.features.tower_inputs import encode_rows


@dataclass
class Candidates:
    """Best first. Item ids are looked up only for what is asked (`catalogue[rows]` for
    a response's k of the N)."""

    catalogue: np.ndarray  # object: the model's item ids (`bundle.item_ids`)
    scores: np.ndarray  # float64 retrieval scores (cosine)
    rows: np.ndarray  # intp, each candidate's row in `catalogue`

    def __len__(self) -> int:
        return len(self.rows)


def tower_inputs(bundle: ModelBundle, row: dict[str, Any]) -> dict[str, np.ndarray]:
    """One user's raw query-tower inputs (batch of one), as the SavedModel takes them."""
    return encode_rows(bundle.inputs, [row])


def retrieve(
    bundle: ModelBundle,
    row: dict[str, Any],
    n: int,
    exclude: Iterable[str] = (),
    include: Iterable[str] = (),
) -> Candidates:
    """The top `n` items for the user in `row`, leaving out `exclude`, plus the items of
    `include` (e.g. the user's past items when repeats are allowed, as training adds its
    buy-again candidates) that are not excluded, all ordered by retrieval score."""
    query = bundle.embed_row(row)
    positions = bundle.item_positions
    dropped = np.array(
        [p for p in (positions.get(i) for i in exclude) if p is not None], dtype=np.int64
    )
    scores = np.empty(len(bundle.item_vectors), dtype=np.float64)
    rows = _best_rows(bundle.vector_columns, query, dropped, n, scores)
    wanted = [p for p in (positions.get(i) for i in include) if p is not None]
    if not wanted:  # the usual case (no repeats): nothing to add, nothing to sort again
        return Candidates(bundle.item_ids, scores[rows], rows)
    extra = np.setdiff1d(np.array(wanted, dtype=np.int64), rows)
    extra = extra[np.isfinite(scores[extra])]  # excluded ones were set to -inf
    if len(extra):
        rows = np.concatenate([rows, extra])
        rows = rows[np.argsort(-scores[rows], kind="stable")]
    return Candidates(bundle.item_ids, scores[rows], rows)


@njit(cache=True, nogil=True)
def _best_rows(
    columns: np.ndarray, query: np.ndarray, dropped: np.ndarray, n: int, scores: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """Every item's score (its vector . `query`, float64 sums over the dimensions in
    order) into `scores`, then the best `n` rows (`_top_rows`). `columns`: the item
    vectors transposed (dimensions x items), so the inner loop runs over items, which do
    not depend on each other, and vectorises (a loop per item is one chain of dependent
    additions), with the same sums bit for bit as the loop per item."""
    scores[:] = 0.0
    for j in range(columns.shape[0]):
        q = np.float64(query[j])
        for i in range(columns.shape[1]):
            scores[i] += np.float64(columns[j, i]) * q
    return _top_rows(scores, dropped, n)


@njit(cache=True, nogil=True)
def _top_rows(scores: np.ndarray, dropped: np.ndarray, n: int) -> np.ndarray:  # pragma: no cover
    """The rows of the best `n` `scores` (ties by position), `dropped` rows set to -inf
    first, in one compiled loop: the n-th best score by partition, the rows better than
    it and the ties at it in item order, then those sorted, ties by position."""
    for i in dropped:
        scores[i] = -np.inf
    finite = 0
    for i in range(scores.shape[0]):
        if np.isfinite(scores[i]):
            finite += 1
    n = min(n, finite)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    worst = -np.partition(-scores, n - 1)[n - 1]  # the n-th best score
    chosen = np.empty(n, dtype=np.int64)
    found = 0
    for i in range(scores.shape[0]):
        if scores[i] > worst:
            chosen[found] = i
            found += 1
    for i in range(scores.shape[0]):
        if found == n:
            break
        if scores[i] == worst:
            chosen[found] = i
            found += 1
    order = np.argsort(-scores[chosen], kind="mergesort")  # stable: ties keep item order
    return chosen[order]
