"""Retrieval on the request path: raw user values -> query vector -> top-N items.

The query vector comes from the numpy query tower (serving.tower), which reads a feature
row as training's `towers.raw_inputs` does (missing numeric -> 0, missing text -> '', lists
cut to their length and padded with ''); `tower_inputs` gives the same row in the
SavedModel's raw input format for the reference signature, and parity tests hold the three
together. The item index is exact inner-product search over the version's item vectors:
1,000 x 32 floats take microseconds; `training.index` measured where an ANN index starts
to pay.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.bundle import ModelBundle
from serving.tower import raw_inputs


@dataclass
class Candidates:
    item_ids: np.ndarray  # object, best first
    scores: np.ndarray  # float64 retrieval scores (cosine)
    rows: np.ndarray  # intp, each candidate's row in the model's items (`bundle.item_ids`)

    def __len__(self) -> int:
        return len(self.item_ids)


def tower_inputs(bundle: ModelBundle, row: dict[str, Any]) -> dict[str, np.ndarray]:
    """One user's raw query-tower inputs (batch of one), as the SavedModel takes them."""
    return raw_inputs(bundle.inputs, [row])


def retrieve(
    bundle: ModelBundle, row: dict[str, Any], n: int, exclude: Iterable[str] = ()
) -> Candidates:
    """The top `n` items for the user in `row`, leaving out `exclude`."""
    query = bundle.embed_row(row)
    scores = (bundle.item_vectors @ query).astype(np.float64)
    positions = bundle.item_positions
    dropped = [p for p in (positions.get(i) for i in exclude) if p is not None]
    if dropped:
        scores[dropped] = -np.inf
    return top_n(bundle.item_ids, scores, n)


def top_n(ids: np.ndarray, scores: np.ndarray, n: int) -> Candidates:
    """Best `n` of `scores` (ties by position), leaving out -inf scores."""
    n = min(n, int(np.isfinite(scores).sum()))
    if n <= 0:
        return Candidates(
            np.array([], dtype=object), np.array([], dtype=np.float64), np.zeros(0, np.intp)
        )
    part = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    order = part[np.lexsort((part, -scores[part]))]
    return Candidates(ids[order], scores[order], order)
