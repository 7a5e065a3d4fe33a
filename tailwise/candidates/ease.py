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

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp

from tailwise.candidates.base import positive_float, positive_int
from tailwise.candidates.neighbours import NEIGHBOUR_COLUMNS, NeighbourSource

ROW_BLOCK = 2_000  # rows of B searched for their top neighbours at once


def ease_weights(x: sp.spmatrix, lambda_: float) -> np.ndarray:
    """EASE's item x item weight matrix B (float32) for a binary users x items matrix."""
    x = sp.csr_matrix(x, dtype=np.float32)
    n = x.shape[1]
    gram = (x.T @ x).toarray()
    gram[np.diag_indices(n)] += np.float32(lambda_)
    p = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
    b = p / -np.diag(p)
    b[np.diag_indices(n)] = 0.0
    return b


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
    """The `m` largest positive entries of each row of `b` as neighbour rows."""
    m = min(m, max(len(items) - 1, 0))
    frames = []
    for start in range(0, len(items), ROW_BLOCK):
        block = b[start : start + ROW_BLOCK]
        if m == 0:
            break
        top = np.argpartition(-block, m - 1, axis=1)[:, :m]
        scores = np.take_along_axis(block, top, axis=1)
        keep = scores > 0
        rows = np.repeat(np.arange(start, start + len(block)), m).reshape(top.shape)
        frames.append(
            pd.DataFrame(
                {
                    "item_id": items[rows[keep]],
                    "neighbour_id": items[top[keep]],
                    "score": scores[keep].astype(np.float64),
                }
            )
        )
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in NEIGHBOUR_COLUMNS})
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(
        ["item_id", "score", "neighbour_id"], ascending=[True, False, True], kind="stable"
    ).reset_index(drop=True)
