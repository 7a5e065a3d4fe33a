"""EASE item-item neighbours (Steck 2019), the same closed form as training's EASE baseline.

    events before the cut --> X: binary users x touched-items matrix (float32)
    --ease_weights(X, lambda_)--> B = I - P / diag(P), P = (X'X + lambda I)^-1, diag(B) = 0
    --> the top `neighbours` j per item i by B[i, j] (positive weights only)
    user history --> score(user, j) = sum over the user's items i of B[i, j] (top neighbours)

Fitted on touched items only: an untouched item's row and column of X'X are zero, so its
weights are too. The dense inverse needs about 8 * n^2 bytes; more than `max_items` touched
items are refused with an error naming the parameter.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp

from tailwise.candidates.base import positive_float, positive_int
from tailwise.candidates.neighbours import NEIGHBOUR_COLUMNS, NeighbourSource

ROW_BLOCK = 2_000  # rows of B searched for their top neighbours at once


def ease_weights(x: sp.spmatrix, lambda_: float) -> np.ndarray:
    """EASE's item x item weight matrix B (float32, read-only) for a binary users x items
    matrix. The last B is kept with the digest of its X'X and lambda: training fits the
    candidate source and the EASE baseline on the same history before the test window,
    and the second gets the first's B instead of a second inverse (seconds at 10,000
    items)."""
    x = sp.csr_matrix(x, dtype=np.float32)
    n = x.shape[1]
    sparse_gram = (x.T @ x).tocsr()
    sparse_gram.sort_indices()
    key = _digest(sparse_gram, lambda_)
    if _LAST.get("key") == key:
        return _LAST["weights"]
    _LAST.clear()  # the old B's memory back before the new one is made
    gram = sparse_gram.toarray()
    gram[np.diag_indices(n)] += np.float32(lambda_)
    p = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
    b = p / -np.diag(p)
    b[np.diag_indices(n)] = 0.0
    b.flags.writeable = False
    _LAST.update(key=key, weights=b)
    return b


_LAST: dict[str, Any] = {}  # ease_weights' last B and its key


def _digest(gram: sp.csr_matrix, lambda_: float) -> str:
    hashed = hashlib.blake2b(repr((gram.shape, float(lambda_))).encode(), digest_size=20)
    for part in (gram.indptr, gram.indices, gram.data):
        hashed.update(np.ascontiguousarray(part).tobytes())
    return hashed.hexdigest()


class EaseNeighbours(NeighbourSource):
    """Top EASE neighbours per item, scored from every item in the user's history."""

    name = "ease"

    def __init__(
        self,
        lambda_: float = 1000.0,
        neighbours: int = 200,
        max_items: int = 20_000,
        recent_items: int | None = None,
    ) -> None:
        self.lambda_ = positive_float(lambda_, "ease: lambda_")
        self.max_items = positive_int(max_items, "ease: max_items")
        super().__init__(neighbours, recent_items, None)

    def _fit(self, events: pd.DataFrame) -> None:
        pairs = events[["user_id", "item_id"]].drop_duplicates()
        items = np.sort(pairs["item_id"].unique())
        if len(items) > self.max_items:
            raise ValueError(
                f"ease: the events before the cut touch {len(items):,} items, more than "
                f"max_items={self.max_items:,}; the dense inverse would need "
                f"~{8 * len(items) ** 2 / 1e9:.1f} GB. Use covisitation, or raise max_items."
            )
        users = pd.Index(np.sort(pairs["user_id"].unique()))
        cols = pd.Index(items).get_indexer(pairs["item_id"])
        rows = users.get_indexer(pairs["user_id"])
        x = sp.csr_matrix(
            (np.ones(len(pairs), np.float32), (rows, cols)), shape=(len(users), len(items))
        )
        self.table = _top_rows(ease_weights(x, self.lambda_), items, self.neighbours)


def _top_rows(b: np.ndarray, items: np.ndarray, m: int) -> pd.DataFrame:
    """The `m` largest positive entries of each row of `b` as neighbour rows, ordered by
    item, score (high first), neighbour; `items` is sorted, so positions order as ids do."""
    m = min(m, max(len(items) - 1, 0))
    rows, columns, scores = [], [], []
    for start in range(0, len(items) if m else 0, ROW_BLOCK):
        block = b[start : start + ROW_BLOCK]
        top = np.argpartition(-block, m - 1, axis=1)[:, :m]
        values = np.take_along_axis(block, top, axis=1)
        keep = values > 0
        rows.append(np.repeat(np.arange(start, start + len(block)), m).reshape(top.shape)[keep])
        columns.append(top[keep])
        scores.append(values[keep].astype(np.float64))
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in NEIGHBOUR_COLUMNS})
    row, column, score = (np.concatenate(parts) for parts in (rows, columns, scores))
    order = np.lexsort((column, -score, row))
    return pd.DataFrame(
        {"item_id": items[row[order]], "neighbour_id": items[column[order]], "score": score[order]}
    )
