"""Ranker features of a candidate union: one definition for training (batch) and serving.

    fitted sources + user histories (user_id, item_id, timestamp[, weight, event_type])
      --source_frames(n)--> {source: (user_id, item_id, source, score, rank)}
    + frames given by the caller (a source that lives elsewhere, e.g. the two-tower
      retriever, passed in the same shape)
      --candidate_features(frames, item_stats, history, at, n)--> one row per (user, item):
        <source>_score, <source>_norm  (NaN when the source did not propose the item)
        <source>_rank                  (n + 1 when it did not: "further than any proposed")
        n_sources                      how many sources proposed it
        fused_score, fused_rank        reciprocal-rank fusion (sum of 1 / (FUSION_K + rank)),
                                       the union's own order (the ranker's fallback)
        item_seen_days (since its first event), item_pop_<w>d, item_pop_all, item_trend   (ItemStats as of the cut)
        user_events, user_items, user_events_7d, user_days_since_last,
        user_days_since_first, user_purchase_share                (the user's history)

ItemStats is fitted like a source (events strictly before the cut) and saved with the
sources (`artifact()`), so serving reads the same table; everything else is computed from
the history passed in, which serving keeps per user. Pure functions: no I/O, vectorised
over users.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Self

import numpy as np
import pandas as pd

from tailwise.candidates.base import (
    DAY_SECONDS,
    CandidateSource,
    as_instant,
    before,
    check_events,
    positive_int,
)
from tailwise.candidates.union import KEYS, union_candidates

FUSION_K = 60.0
POPULARITY_DAYS = (1, 7, 28)
ITEM_FEATURES = (
    "item_seen_days",
    *(f"item_pop_{d}d" for d in POPULARITY_DAYS),
    "item_pop_all",
    "item_trend",
)
USER_FEATURES = (
    "user_events",
    "user_items",
    "user_events_7d",
    "user_days_since_last",
    "user_days_since_first",
    "user_purchase_share",
)
PURCHASE = "purchase"
NEW_USER = "user_events"  # 0: the user had no event before the request (or the cut)


def new_user_scores(
    scores: np.ndarray, user_events: np.ndarray, order_ranks: np.ndarray | None
) -> np.ndarray:
    """A version's scores of union rows: the ranker's, except in the lists of people with
    no event before the request, which follow a rank column (lower first) when the
    version's check on such people chose one (training.reranker; `order_ranks` None: it
    did not). Every row of a list belongs to one user, so lists are never mixed."""
    scores = np.asarray(scores, dtype=np.float64)
    if order_ranks is None:
        return scores
    new = np.nan_to_num(np.asarray(user_events, dtype=np.float64)) == 0
    return np.where(new, -np.asarray(order_ranks, dtype=np.float64), scores)


class ItemStats:
    """Per-item popularity over several windows ending at the cut, and first-seen time."""

    name = "item_stats"

    def fit(self, events: pd.DataFrame, cut: pd.Timestamp | str) -> Self:
        self.cut = as_instant(cut, "item_stats: cut")
        events = before(check_events(events, self.name), self.cut)
        grouped = events.groupby("item_id", sort=True)
        table = pd.DataFrame(
            {
                "first_seen": grouped["timestamp"].min(),
                "pop_all": grouped["weight"].sum(),
            }
        )
        for days in POPULARITY_DAYS:
            recent = events[events["timestamp"] >= self.cut - pd.Timedelta(days=days)]
            table[f"pop_{days}d"] = recent.groupby("item_id")["weight"].sum()
        self.table = table.fillna(0.0).rename_axis("item_id").reset_index()
        return self

    def artifact(self) -> dict[str, pd.DataFrame]:
        return {"item_stats": self.table}


def source_frames(
    sources: Iterable[CandidateSource],
    histories: pd.DataFrame,
    n: int,
    users: Iterable[str] | None = None,
    at: pd.Timestamp | None = None,
    exclude_seen: bool = True,
    context: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Every fitted source's top-`n` for `users` from their histories before `at`."""
    users = None if users is None else list(users)
    return {
        source.name: source.candidates(histories, n, users, at, exclude_seen, context)
        for source in sources
    }


def candidate_features(
    frames: Mapping[str, pd.DataFrame],
    item_stats: pd.DataFrame,
    history: pd.DataFrame,
    at: pd.Timestamp | str,
    n: int,
    keep: int | None = None,
) -> pd.DataFrame:
    """The union of the sources' top-`n` with every feature of the module docstring;
    each user's `keep` best by fused rank when given (all otherwise)."""
    n = positive_int(n, "candidate_features: n")
    at = as_instant(at, "candidate_features: at")
    union = union_candidates(frames, n)
    ranks = [f"{source}_rank" for source in frames]
    fused = np.zeros(len(union))
    for column in ranks:
        values = union[column].to_numpy(np.float64)
        fused += np.where(np.isnan(values), 0.0, 1.0 / (FUSION_K + values))
        union[column] = np.where(np.isnan(values), n + 1.0, values)
    union["fused_score"] = fused
    union = union.sort_values(
        ["user_id", "fused_score", "item_id"], ascending=[True, False, True], kind="stable"
    )
    union["fused_rank"] = union.groupby("user_id", sort=False).cumcount() + 1.0
    if keep is not None:
        union = union[union["fused_rank"] <= positive_int(keep, "candidate_features: keep")]
    union = _with_items(union.reset_index(drop=True), item_stats, at)
    return _with_users(union, history, at)


def feature_names(sources: Iterable[str]) -> list[str]:
    """The columns candidate_features adds for these source names, in a fixed order."""
    per_source = [f"{s}_{part}" for s in sources for part in ("score", "rank", "norm")]
    return [
        *per_source,
        "n_sources",
        "fused_score",
        "fused_rank",
        *ITEM_FEATURES,
        *USER_FEATURES,
    ]


def _with_items(union: pd.DataFrame, item_stats: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    stats = item_stats.set_index("item_id").reindex(union["item_id"].to_numpy())
    first = pd.to_datetime(stats["first_seen"], utc=True)
    union["item_seen_days"] = ((at - first).dt.total_seconds() / DAY_SECONDS).to_numpy()
    for days in POPULARITY_DAYS:
        union[f"item_pop_{days}d"] = stats[f"pop_{days}d"].fillna(0.0).to_numpy()
    union["item_pop_all"] = stats["pop_all"].fillna(0.0).to_numpy()
    short, long = union["item_pop_7d"] / 7.0, union["item_pop_28d"] / 28.0
    union["item_trend"] = (short + 1.0) / (long + 1.0)
    return union


def _with_users(union: pd.DataFrame, history: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    events = before(check_events(history, "candidate_features"), at)
    events = events[events["user_id"].isin(set(union["user_id"]))]
    grouped = events.groupby("user_id", sort=True)
    kinds = (
        events["event_type"].astype(str).str.lower()
        if "event_type" in events.columns
        else pd.Series("", index=events.index)
    )
    recent = events["timestamp"] >= at - pd.Timedelta(days=7)
    stats = pd.DataFrame(
        {
            "user_events": grouped.size().astype(np.float64),
            "user_items": grouped["item_id"].nunique().astype(np.float64),
            "user_events_7d": recent.groupby(events["user_id"]).sum().astype(np.float64),
            "user_days_since_last": (at - grouped["timestamp"].max()).dt.total_seconds()
            / DAY_SECONDS,
            "user_days_since_first": (at - grouped["timestamp"].min()).dt.total_seconds()
            / DAY_SECONDS,
            "user_purchase_share": (kinds == PURCHASE).groupby(events["user_id"]).mean(),
        }
    ).reindex(union["user_id"].to_numpy())
    for name in USER_FEATURES:
        values = stats[name].to_numpy(np.float64)
        # No history: zero counts; recency and share stay unknown (NaN).
        if name in ("user_events", "user_items", "user_events_7d"):
            values = np.nan_to_num(values, nan=0.0)
        union[name] = values
    return union


__all__ = [
    "ITEM_FEATURES",
    "KEYS",
    "USER_FEATURES",
    "ItemStats",
    "candidate_features",
    "feature_names",
    "source_frames",
]
