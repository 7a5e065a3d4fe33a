"""Top-k search over item embeddings: exact (numpy) and approximate (HNSW, optional).

    build(item_ids, vectors) --> index
    search(query_vectors, k, exclude=[set of item ids per query]) --> Neighbours
        ids    [n_queries, k] object, '' where fewer than k items are left
        scores [n_queries, k] float, -inf in those slots

Both indexes score by inner product (the towers emit L2-normalised vectors, so this is
cosine). `ExactIndex` is the reference; `HNSWIndex` has the same API and needs the
`hnswlib` package (not a project dependency: imported only when built).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

SCORE_BLOCK = 4_000_000  # cells of one dense queries x items score block


@dataclass(frozen=True)
class Neighbours:
    ids: np.ndarray
    scores: np.ndarray

    @property
    def found(self) -> np.ndarray:
        """True where a slot holds an item."""
        return np.isfinite(self.scores)


class _Index:
    def build(self, item_ids: Sequence[str] | np.ndarray, vectors: np.ndarray) -> Self:
        vectors = np.asarray(vectors, dtype=np.float32)
        ids = np.asarray([str(i) for i in item_ids], dtype=object)
        if vectors.ndim != 2 or len(ids) != len(vectors):
            raise ValueError(
                f"need one vector per item id: {len(ids)} ids, vectors of shape {vectors.shape}"
            )
        if len(set(ids)) != len(ids):
            raise ValueError("item ids must be unique")
        self.item_ids, self.vectors = ids, vectors
        self._position = {item: n for n, item in enumerate(ids)}
        self._build()
        return self

    def _build(self) -> None:
        pass

    def _check(self, queries: np.ndarray, k: int, exclude: Sequence[set[str]] | None) -> Any:
        if not hasattr(self, "item_ids"):
            raise RuntimeError("call build() before search()")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.vectors.shape[1]:
            raise ValueError(
                f"query vectors must be [n, {self.vectors.shape[1]}], got {queries.shape}"
            )
        if exclude is not None and len(exclude) != len(queries):
            raise ValueError(f"exclude has {len(exclude)} sets for {len(queries)} queries")
        return queries


class ExactIndex(_Index):
    """Brute force: queries @ items.T in blocks, excluded items at -inf, argpartition."""

    def search(
        self, query_vectors: np.ndarray, k: int, exclude: Sequence[set[str]] | None = None
    ) -> Neighbours:
        queries = self._check(query_vectors, k, exclude)
        n, kk = len(queries), min(k, len(self.item_ids))
        ids = np.full((n, k), "", dtype=object)
        scores = np.full((n, k), -np.inf)
        block = max(1, SCORE_BLOCK // max(1, len(self.item_ids)))
        for start in range(0, n, block):
            part = queries[start : start + block] @ self.vectors.T
            if exclude is not None:
                for row, seen in enumerate(exclude[start : start + block]):
                    cols = [self._position[i] for i in seen if i in self._position]
                    part[row, cols] = -np.inf
            top = np.argpartition(-part, kk - 1, axis=1)[:, :kk]
            top_scores = np.take_along_axis(part, top, axis=1)
            # Score descending, then item position: ties resolve the same way every run.
            order = np.lexsort((top, -top_scores), axis=1)
            top = np.take_along_axis(top, order, axis=1)
            top_scores = np.take_along_axis(top_scores, order, axis=1)
            ids[start : start + len(part), :kk] = self.item_ids[top]
            scores[start : start + len(part), :kk] = top_scores
        ids[~np.isfinite(scores)] = ""
        return Neighbours(ids, scores)


class HNSWIndex(_Index):
    """hnswlib graph (inner product); over-fetches k + |exclude| and filters."""

    def __init__(self, m: int = 16, ef_construction: int = 200, ef: int = 100, seed: int = 0):
        self.m, self.ef_construction, self.ef, self.seed = m, ef_construction, ef, seed

    def _build(self) -> None:
        import hnswlib  # optional: not a project dependency

        self._graph = hnswlib.Index(space="ip", dim=self.vectors.shape[1])
        self._graph.init_index(
            max_elements=len(self.vectors),
            ef_construction=self.ef_construction,
            M=self.m,
            random_seed=self.seed,
        )
        self._graph.set_num_threads(1)  # insertion order, hence the graph, stays fixed
        self._graph.add_items(self.vectors, np.arange(len(self.vectors)))

    def search(
        self, query_vectors: np.ndarray, k: int, exclude: Sequence[set[str]] | None = None
    ) -> Neighbours:
        queries = self._check(query_vectors, k, exclude)
        n = len(queries)
        extra = max((len(s) for s in exclude), default=0) if exclude is not None else 0
        fetch = min(len(self.item_ids), k + extra)
        self._graph.set_ef(max(self.ef, fetch))
        labels, distances = self._graph.knn_query(queries, k=fetch)
        ids = np.full((n, k), "", dtype=object)
        scores = np.full((n, k), -np.inf)
        for row in range(n):
            seen = exclude[row] if exclude is not None else set()
            kept = [
                (self.item_ids[label], 1.0 - dist)  # hnswlib 'ip' distance is 1 - dot
                for label, dist in zip(labels[row], distances[row], strict=True)
                if self.item_ids[label] not in seen
            ][:k]
            for col, (item, score) in enumerate(kept):
                ids[row, col], scores[row, col] = item, score
        return Neighbours(ids, scores)


def recall_at_k(approximate: Neighbours, exact: Neighbours) -> float:
    """Share of the exact top-k ids that the approximate search also returned."""
    hits = total = 0
    for a_row, e_row, found in zip(approximate.ids, exact.ids, exact.found, strict=True):
        truth = set(e_row[found])
        hits += len(truth & set(a_row))
        total += len(truth)
    return hits / total if total else 1.0
