"""Non-learned baselines every trained model must beat, behind one recommender interface.

    fit(train_events, items) -> self
    recommend(user_ids, k, exclude_seen=True) -> DataFrame[user_id, item_id, rank, score]

`BaseRecommender` owns what all of them share: the catalogue index (items as given, in
item_id order), the users x items matrix of what each user touched in training, the
all-time weighted popularity, and ranking. A subclass only turns known users into a
dense users x items score block (`_scores`). Unknown (cold-start) users get `_cold_scores`
(popularity by default). Ties are broken by all-time popularity, then item_id, so results
are deterministic and a user whose model scores are all zero still gets k popular items.

    MostPopular       sum of event weights per item over the whole training log
    RecentlyPopular   the same over the last `days` of it
    ItemCooccurrence  item x item co-occurrence in users' histories (sparse), scored from
                      each user's latest `recent_items` distinct items
    EASE              closed-form item x item ridge model (Steck 2019), small catalogues
    BuyAgain          the user's own past items, most events first, then the most recent,
                      then popularity (the baseline of re-buy domains: run with
                      exclude_seen=False, when recommend.allow_repeats allows repeats)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tailwise.candidates.ease import ease_weights

SCORE_BLOCK = 2_000_000  # cells of one dense users x items score block


class BaseRecommender:
    """Catalogue index, seen-items matrix, popularity and top-k ranking."""

    name = "base"
    score_block = SCORE_BLOCK

    def fit(self, train_events: pd.DataFrame, items: pd.DataFrame | None) -> Self:
        """Index the catalogue and the training log, then fit the model."""
        for column in ("user_id", "item_id", "timestamp", "weight"):
            if column not in train_events.columns:
                raise ValueError(f"{self.name}: train events lack column {column!r}")
        catalogue = train_events["item_id"] if items is None else items["item_id"]
        self.item_ids = np.sort(pd.unique(catalogue.astype(str)))
        self._items = pd.Index(self.item_ids)
        col = self._items.get_indexer(train_events["item_id"].astype(str))
        events = train_events[col >= 0].assign(_col=col[col >= 0])
        self.user_ids = np.sort(events["user_id"].astype(str).unique())
        self._users = pd.Index(self.user_ids)
        self._events = events.assign(_row=self._users.get_indexer(events["user_id"].astype(str)))
        # Binary: an event of weight 0 still makes the item seen.
        self.seen = self._matrix(self._events, np.ones(len(self._events)))
        self.seen.data[:] = 1.0
        self.popularity = np.bincount(
            self._events["_col"],
            weights=self._events["weight"].to_numpy(np.float64),
            minlength=len(self.item_ids),
        )
        # Column order used for ranking: popularity desc, then item_id (stable sort).
        self._tie_order = np.lexsort((np.arange(len(self.item_ids)), -self.popularity))
        self._fit_model()
        return self

    def recommend(self, user_ids: Iterable[str], k: int, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-k items per user (rank 1 first); fewer when fewer items are left."""
        if not hasattr(self, "item_ids"):
            raise RuntimeError(f"{self.name}: call fit() before recommend()")
        if k < 1:
            raise ValueError(f"{self.name}: k must be >= 1, got {k}")
        users = pd.unique(pd.Series(list(user_ids), dtype=object).astype(str))
        k = min(k, len(self.item_ids))
        block = max(1, self.score_block // max(1, len(self.item_ids)))
        frames = [
            self._recommend_block(users[i : i + block], k, exclude_seen)
            for i in range(0, len(users), block)
        ]
        if not frames:
            return pd.DataFrame({"user_id": [], "item_id": [], "rank": [], "score": []})
        return pd.concat(frames, ignore_index=True)

    def _recommend_block(self, users: np.ndarray, k: int, exclude_seen: bool) -> pd.DataFrame:
        rows = self._users.get_indexer(users)
        known = rows >= 0
        scores = self._block_scores(users, rows)
        if known.any() and exclude_seen:
            r, c = self.seen[rows[known]].nonzero()
            scores[np.flatnonzero(known)[r], c] = -np.inf
        ordered = scores[:, self._tie_order]
        top = np.argsort(-ordered, axis=1, kind="stable")[:, :k]
        top_scores = np.take_along_axis(ordered, top, axis=1)
        keep = np.isfinite(top_scores)
        return pd.DataFrame(
            {
                "user_id": np.repeat(users, k)[keep.ravel()],
                "item_id": self.item_ids[self._tie_order[top]][keep],
                "rank": np.tile(np.arange(1, k + 1), len(users))[keep.ravel()],
                "score": top_scores[keep],
            }
        )

    def _block_scores(self, users: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Dense scores of `users` (rows: their training index, -1 when unknown)."""
        known = rows >= 0
        scores = np.empty((len(users), len(self.item_ids)))
        scores[~known] = self._cold_scores()
        if known.any():
            scores[known] = self._scores(rows[known])
        return scores

    def _matrix(self, events: pd.DataFrame, values: np.ndarray) -> sp.csr_matrix:
        shape = (len(self.user_ids), len(self.item_ids))
        coo = sp.coo_matrix((values, (events["_row"], events["_col"])), shape=shape)
        return coo.tocsr()  # duplicates are summed

    def _fit_model(self) -> None:
        """Fit model state from self._events / self.seen (nothing for popularity)."""

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _cold_scores(self) -> np.ndarray:
        return self.popularity


class MostPopular(BaseRecommender):
    """Items by total event weight over the whole training log."""

    name = "most_popular"

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(rows), len(self.item_ids)))


class RecentlyPopular(BaseRecommender):
    """Items by total event weight over the last `days` of the training log."""

    name = "recently_popular"

    def __init__(self, days: float = 7) -> None:
        if days <= 0:
            raise ValueError(f"RecentlyPopular: days must be > 0, got {days}")
        self.days = days

    def _fit_model(self) -> None:
        ts = self._events["timestamp"]
        recent = self._events[ts >= ts.max() - pd.Timedelta(days=self.days)]
        weights = recent.groupby("_col")["weight"].sum()
        self.recent_popularity = np.zeros(len(self.item_ids))
        self.recent_popularity[weights.index.to_numpy()] = weights.to_numpy()

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.recent_popularity, (len(rows), len(self.item_ids)))

    def _cold_scores(self) -> np.ndarray:
        return self.recent_popularity


class ItemCooccurrence(BaseRecommender):
    """Sum of co-occurrence with the user's latest distinct items.

    normalize='cosine' divides the count of users who touched both i and j by
    sqrt(n_i * n_j), so very popular items do not dominate every list; 'none' keeps counts.
    """

    name = "item_cooccurrence"

    def __init__(self, recent_items: int = 20, normalize: str = "none") -> None:
        if recent_items < 1:
            raise ValueError(f"ItemCooccurrence: recent_items must be >= 1, got {recent_items}")
        if normalize not in ("cosine", "none"):
            raise ValueError(
                f"ItemCooccurrence: normalize must be 'cosine' or 'none', got {normalize!r}"
            )
        self.recent_items = recent_items
        self.normalize = normalize

    def _fit_model(self) -> None:
        x = self.seen
        co = (x.T @ x).tocsr().astype(np.float64)
        if self.normalize == "cosine":
            norm = 1.0 / np.sqrt(np.maximum(co.diagonal(), 1.0))
            co = sp.diags(norm) @ co @ sp.diags(norm)
        co = co.tolil()
        co.setdiag(0)
        self.cooccurrence = co.tocsr()
        self.cooccurrence.eliminate_zeros()
        last = self._events.groupby(["_row", "_col"], sort=False)["timestamp"].max().reset_index()
        last = last.sort_values(["_row", "timestamp", "_col"], ascending=[True, False, True])
        seeds = last.groupby("_row").head(self.recent_items)
        self.seeds = self._matrix(seeds, np.ones(len(seeds)))

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        return (self.seeds[rows] @ self.cooccurrence).toarray()


class EASE(BaseRecommender):
    """Embarrassingly Shallow Autoencoder: B = I - P / diag(P), P = (X'X + lambda I)^-1.

    Fitted on the items someone touched in training only: an untouched item's row and
    column of X'X are zero, so its weights are zero and its score is too, exactly as with
    the whole catalogue. The dense inverse is float32, about 8 * n^2 bytes at its peak
    (3.2 GB at 20k touched items); more touched items than `max_items` are refused."""

    name = "ease"

    def __init__(self, lambda_: float = 1000.0, max_items: int = 20_000) -> None:
        if lambda_ <= 0:
            raise ValueError(f"EASE: lambda_ must be > 0, got {lambda_}")
        self.lambda_ = lambda_
        self.max_items = max_items

    def _fit_model(self) -> None:
        self._active = np.flatnonzero(np.asarray(self.seen.sum(axis=0)).ravel() > 0)
        n = len(self._active)
        if n > self.max_items:
            raise ValueError(
                f"EASE: training touches {n:,} items, more than max_items={self.max_items:,}; "
                f"its dense inverse would need ~{8 * n * n / 1e9:.1f} GB. Use ItemCooccurrence "
                "or a two-tower model for large catalogues, or raise ease_max_items."
            )
        self._x = self.seen[:, self._active].astype(np.float32)
        self.weights = ease_weights(self._x, self.lambda_)

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        scores = np.zeros((len(rows), len(self.item_ids)))
        scores[:, self._active] = np.asarray(self._x[rows] @ self.weights)
        return scores


class BuyAgain(BaseRecommender):
    """The user's past items (most events first, ties: the most recent), then popularity.

    With exclude_seen=True (repeats not allowed) it is MostPopular."""

    name = "buy_again"

    def _fit_model(self) -> None:
        ones = np.ones(len(self._events))
        self.counts = self._matrix(self._events, ones)  # events per (user, item)
        ts = self._events["timestamp"]
        span = (ts.max() - ts.min()).total_seconds() or 1.0
        # The latest event per pair as a share of the log's span, in [0, 1].
        recency = ((ts - ts.min()).dt.total_seconds() / span).to_numpy()
        last = self._events.assign(_r=recency).groupby(["_row", "_col"])["_r"].max()
        rows, cols = zip(*last.index, strict=True) if len(last) else ((), ())
        shape = (len(self.user_ids), len(self.item_ids))
        self.recency = sp.csr_matrix((last.to_numpy(), (rows, cols)), shape=shape)
        self._pop_share = (
            self.popularity / max(float(self.popularity.max()), 1e-12)
            if len(self.popularity)
            else self.popularity
        )

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        counts = self.counts[rows].toarray()
        recency = self.recency[rows].toarray()
        # Past items score above 2 (count, then recency in [0, 0.5]); others their
        # popularity share in [0, 1].
        past = counts > 0
        scores = np.broadcast_to(self._pop_share, counts.shape).copy()
        scores[past] = 2.0 + counts[past] + 0.5 * recency[past]
        return scores
