"""Top-K ranking metrics with binary relevance, per user and averaged over slices.

    recommendations (user_id, item_id, rank) --+
                                               +--> per_user_metrics --> summarise(slices)
    relevant (user_id, item_id) ---------------+        (user x K rows)     tidy table

Users are the ones in `relevant` (a user without a relevant item is not measured);
a measured user without recommendations scores 0. `rank` is the 1-based position shown
to the user, so discounts use it as given. Definitions for one user, K, relevant set R
and hits h_r (1 when the item at rank r is in R):

    precision@K = sum_{r<=K} h_r / K                (fewer than K recs still divide by K)
    recall@K    = sum_{r<=K} h_r / |R|
    ndcg@K      = sum_{r<=K} h_r / log2(r + 1)  /  sum_{i=1..min(K,|R|)} 1 / log2(i + 1)
    map@K       = sum_{r<=K} h_r * precision@r  /  min(K, |R|)
    hit_rate@K  = 1 if any h_r, r <= K
    coverage@K  = distinct items at rank <= K over the slice's users / catalogue size
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

USER_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")
METRICS = (*USER_METRICS, "coverage")
STATUS_SLICES = ("new", "returning")


def validate_recommendations(recs: pd.DataFrame) -> pd.DataFrame:
    """Check columns, ranks and duplicates; return user_id, item_id, rank (int) sorted."""
    missing = [c for c in ("user_id", "item_id", "rank") if c not in recs.columns]
    if missing:
        raise ValueError(f"recommendations lack column(s) {missing}; got {list(recs.columns)}")
    recs = recs[["user_id", "item_id", "rank"]]
    rank = pd.to_numeric(recs["rank"], errors="coerce")
    bad = recs[rank.isna() | (rank < 1) | (rank != np.floor(rank))]
    if len(bad):
        row = bad.iloc[0]
        raise ValueError(
            f"rank must be an integer >= 1; user {row['user_id']!r} has rank {row['rank']}"
        )
    for key, what in ((["user_id", "item_id"], "item"), (["user_id", "rank"], "rank")):
        dup = recs.duplicated(key, keep=False)
        if dup.any():
            row = recs[dup].iloc[0]
            raise ValueError(
                f"duplicate recommendation {what} for user {row['user_id']!r}: "
                f"{what} {row[key[1]]} appears more than once"
            )
    recs = recs.assign(rank=rank.astype(np.int64))
    return recs.sort_values(["user_id", "rank"], kind="stable").reset_index(drop=True)


def per_user_metrics(
    recommendations: pd.DataFrame, relevant: pd.DataFrame, ks: Sequence[int]
) -> pd.DataFrame:
    """One row per (measured user, K): user_id, k, precision, recall, ndcg, map, hit_rate."""
    ks = _check_ks(ks)
    recs = validate_recommendations(recommendations)
    relevant = relevant[["user_id", "item_id"]].drop_duplicates()
    users = np.sort(relevant["user_id"].unique())
    n_users = len(users)
    n_rel = relevant.groupby("user_id").size().reindex(users).to_numpy(np.int64)
    recs = recs[recs["rank"] <= max(ks)]
    recs = recs[recs["user_id"].isin(users)]
    merged = recs.merge(relevant, on=["user_id", "item_id"], how="left", indicator=True)
    hit = (merged["_merge"] == "both").to_numpy(bool)
    uidx = np.searchsorted(users, recs["user_id"].to_numpy())
    rank = recs["rank"].to_numpy(np.int64)
    # recs are sorted by (user, rank), so a running count per user is hits up to rank r.
    cum_hits = pd.Series(hit.astype(np.int64)).groupby(uidx).cumsum().to_numpy()
    discount = 1.0 / np.log2(np.arange(2, max(ks) + 2))
    ideal = np.concatenate([[0.0], np.cumsum(discount)])
    frames = []
    for k in ks:
        top = hit & (rank <= k)
        hits = np.bincount(uidx, weights=top, minlength=n_users)
        dcg = np.bincount(uidx, weights=top / np.log2(rank + 1), minlength=n_users)
        ap = np.bincount(uidx, weights=top * cum_hits / rank, minlength=n_users)
        depth = np.minimum(k, n_rel)
        frames.append(
            pd.DataFrame(
                {
                    "user_id": users,
                    "k": k,
                    "precision": hits / k,
                    "recall": hits / n_rel,
                    "ndcg": dcg / ideal[depth],
                    "map": ap / depth,
                    "hit_rate": (hits > 0).astype(np.float64),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def catalogue_coverage(
    recommendations: pd.DataFrame,
    ks: Sequence[int],
    catalogue_size: int,
    users: Iterable[str] | None = None,
) -> dict[int, float]:
    """Share of the catalogue recommended at rank <= K to `users` (default: everyone)."""
    if catalogue_size < 1:
        raise ValueError(f"catalogue_size must be >= 1, got {catalogue_size}")
    recs = recommendations
    if users is not None:
        recs = recs[recs["user_id"].isin(pd.Index(users))]
    return {
        k: recs.loc[recs["rank"] <= k, "item_id"].nunique() / catalogue_size for k in _check_ks(ks)
    }


def user_slices(
    users: pd.DataFrame, segments: Mapping[str, str] | pd.Series | None = None
) -> dict[str, np.ndarray]:
    """Slice name -> user ids: 'all', 'new' / 'returning' (from users.status) and
    'segment=<label>' per segment (users missing from the mapping: 'segment=unassigned')."""
    ids = users["user_id"].to_numpy()
    slices = {"all": ids}
    if "status" in users.columns:
        for status in STATUS_SLICES:
            slices[status] = ids[(users["status"] == status).to_numpy()]
    if segments is not None:
        label = users["user_id"].map(pd.Series(segments)).fillna("unassigned").astype(str)
        for name in sorted(label.unique()):
            slices[f"segment={name}"] = ids[(label == name).to_numpy()]
    return slices


def summarise(
    per_user: pd.DataFrame,
    recommendations: pd.DataFrame,
    slices: Mapping[str, np.ndarray],
    catalogue_size: int,
) -> pd.DataFrame:
    """Tidy means per slice: slice, k, metric, value, users (coverage included)."""
    ks = sorted(per_user["k"].unique())
    rows = []
    for name, ids in slices.items():
        part = per_user[per_user["user_id"].isin(ids)]
        n = int(part["user_id"].nunique())
        means = part.groupby("k")[list(USER_METRICS)].mean()
        coverage = catalogue_coverage(recommendations, ks, catalogue_size, ids)
        for k in ks:
            for metric in USER_METRICS:
                value = float(means.loc[k, metric]) if k in means.index else float("nan")
                rows.append((name, int(k), metric, value, n))
            rows.append((name, int(k), "coverage", coverage[k] if n else float("nan"), n))
    return pd.DataFrame(rows, columns=["slice", "k", "metric", "value", "users"])


def _check_ks(ks: Sequence[int]) -> list[int]:
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be a non-empty list of integers >= 1, got {ks}")
    return ks
