"""What every candidate source shares: the fit/candidates contract, input checks, ranking.

    events before the cut --fit(events, cut)--> source (its `artifact()`: DataFrames)
    user histories (events) --candidates(histories, n, users, at)-->
        DataFrame[user_id, item_id, source, score, rank]   (rank 1 first, <= n per user)

A source sees only events strictly before its cut when fitted, and only history events
strictly before `at` (the cut by default; serving passes the request time) when it scores,
so nothing at or after the instant being predicted can reach a candidate's score. Ties
in score are broken by item_id, so output is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Self

import numpy as np
import pandas as pd

CANDIDATE_COLUMNS = ("user_id", "item_id", "source", "score", "rank")
EVENT_COLUMNS = ("user_id", "item_id", "timestamp")
DAY_SECONDS = 86_400.0


class CandidateSource:
    """Base of every source: checks, the cut, history filtering and top-n ranking.

    A subclass sets `name`, implements `_fit(events)` (events already before the cut)
    and `_score(history, users, at, context)` -> DataFrame[user_id, item_id, score] (any number of
    rows per user; ranking and the exclusion of seen items happen here)."""

    name = "source"

    def fit(self, events: pd.DataFrame, cut: pd.Timestamp | str) -> Self:
        """Fit on the events strictly before `cut`."""
        self.cut = as_instant(cut, f"{self.name}: cut")
        self._fit(before(check_events(events, self.name), self.cut))
        return self

    def candidates(
        self,
        histories: pd.DataFrame,
        n: int,
        users: Iterable[str] | None = None,
        at: pd.Timestamp | str | None = None,
        exclude_seen: bool = True,
        context: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Top-`n` candidates per user (default: every user in `histories`) from their
        history events before `at` (default: the fitted cut); items a user has already
        had are left out when `exclude_seen`. `context` (user_id + request context columns
        such as device, country) is read by the sources that use context."""
        if not hasattr(self, "cut"):
            raise RuntimeError(f"{self.name}: call fit() before candidates()")
        n = positive_int(n, f"{self.name}: n")
        at = self.cut if at is None else as_instant(at, f"{self.name}: at")
        history = before(check_events(histories, self.name), at)
        wanted = _users(history, users)
        history = history[history["user_id"].isin(wanted)]
        seen = history if exclude_seen else None
        return top_n(self._score_top(history, wanted, at, context, n, seen), n, self.name, seen)

    def artifact(self) -> dict[str, pd.DataFrame]:
        """The fitted state as named tables (each can be written as Parquet)."""
        raise NotImplementedError

    def _fit(self, events: pd.DataFrame) -> None:
        raise NotImplementedError

    def _score_top(
        self,
        history: pd.DataFrame,
        users: np.ndarray,
        at: pd.Timestamp,
        context: pd.DataFrame | None,
        n: int | None,
        seen: pd.DataFrame | None,
    ) -> pd.DataFrame:
        """The scored rows that go to top_n (`_score`'s); a source that scores many items
        per user may leave out rows that cannot be among a user's `n` best once the pairs
        of `seen` are left out."""
        return self._score(history, users, at, context)

    def _score(
        self,
        history: pd.DataFrame,
        users: np.ndarray,
        at: pd.Timestamp,
        context: pd.DataFrame | None,
    ) -> pd.DataFrame:
        raise NotImplementedError


def top_n(
    scored: pd.DataFrame, n: int, source: str, seen: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Each user's `n` highest scores (ties: item_id) as the candidate frame of `source`,
    leaving out the (user_id, item_id) pairs of `seen` when given.

    Sorting and the exclusion run on integer codes of the ids (a candidate frame holds
    millions of rows: every user times every item a source proposes); the codes follow
    the ids' text order, so the result is that of sorting by (user_id, -score, item_id)."""
    if scored.empty:
        return empty_candidates()
    n_seen = 0 if seen is None else len(seen)
    user_codes, users = text_codes(_concat(scored["user_id"], seen, "user_id"))
    item_codes, items = text_codes(_concat(scored["item_id"], seen, "item_id"))
    rows = len(scored)
    score = scored["score"].to_numpy(np.float64)
    if n_seen:
        keys = user_codes * len(items) + item_codes
        kept = ~np.isin(keys[:rows], keys[rows:])
        score, user_codes, item_codes = (
            score[kept],
            user_codes[:rows][kept],
            item_codes[:rows][kept],
        )
    contenders = _contenders(user_codes, score, n, len(users))
    if contenders is not None:
        score, user_codes, item_codes = (
            score[contenders],
            user_codes[contenders],
            item_codes[contenders],
        )
    order = _order(user_codes, score, item_codes, len(users), len(items))
    by_user = user_codes[order]
    starts = np.flatnonzero(np.r_[True, by_user[1:] != by_user[:-1]]) if len(order) else order
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)])) + 1
    keep = rank <= n
    order = order[keep]
    return pd.DataFrame(
        {
            "user_id": users[user_codes[order]],
            "item_id": items[item_codes[order]],
            "source": source,
            "score": score[order],
            "rank": rank[keep].astype(np.int64),
        }
    )


BINS = 256


def _contenders(users: np.ndarray, score: np.ndarray, n: int, n_users: int) -> np.ndarray | None:
    """The rows that can be among their user's `n` best (None: all of them, when there
    are too few rows per user to gain from leaving any out).

    Each user's scores fall into BINS equal bins between their highest and lowest (NaN
    in one more, last); a user keeps the bins, best first, until they hold at least `n`
    rows. A row in a later bin has a lower score than every row kept, and at least `n`
    rows are kept, so it cannot be among the `n` best; ties share a bin. Sorting then
    runs on the rows kept: a source that scores thousands of items per user keeps a few
    hundred."""
    if len(score) <= 4 * n * max(n_users, 1) or not np.isfinite(score[~np.isnan(score)]).all():
        return None
    by_user = pd.Series(score).groupby(users)
    high = by_user.max().reindex(range(n_users)).to_numpy(np.float64)[users]
    low = by_user.min().reindex(range(n_users)).to_numpy(np.float64)[users]
    span = high - low
    spread = span > 0
    position = np.zeros(len(score), dtype=np.float64)
    np.divide(high - score, span, out=position, where=spread)
    missing = np.isnan(score)
    position[missing] = 0.0
    bins = np.clip(np.floor(position * (BINS - 1)).astype(np.int64), 0, BINS - 1)
    bins[missing] = BINS
    counts = np.bincount(users * (BINS + 1) + bins, minlength=n_users * (BINS + 1))
    held = counts.reshape(n_users, BINS + 1).cumsum(axis=1) >= n
    last = np.where(held.any(axis=1), held.argmax(axis=1), BINS)
    return bins <= last[users]


def _order(
    users: np.ndarray, score: np.ndarray, items: np.ndarray, n_users: int, n_items: int
) -> np.ndarray:
    """Row order by (user code, score high to low, item code), NaN scores last: one sort
    of a single integer key (three passes of np.lexsort cost twice as much here)."""
    levels, score_rank = np.unique(-score, return_inverse=True)  # NaN: the last level
    if max(n_users, 1) * max(len(levels), 1) * max(n_items, 1) >= 2**62:
        return np.lexsort((items, -score, users))
    key = (users * len(levels) + score_rank.reshape(-1)) * n_items + items
    return np.argsort(key, kind="stable")


def _concat(values: pd.Series, seen: pd.DataFrame | None, column: str) -> np.ndarray:
    """`values` then the `column` of `seen` (one array, so both share the same codes)."""
    head = values.to_numpy()
    if seen is None or not len(seen):
        return head
    return np.concatenate([head.astype(object), seen[column].to_numpy().astype(object)])


def text_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes of `values` as text, numbered in the text's sort order, and that text."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    text = np.asarray([str(v) for v in uniques], dtype=object)
    remap, ordered = pd.factorize(text, sort=True)  # two values may read the same
    return remap[codes].astype(np.int64), np.asarray(ordered, dtype=object)


def empty_candidates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.Series(dtype=str),
            "item_id": pd.Series(dtype=str),
            "source": pd.Series(dtype=str),
            "score": pd.Series(dtype=np.float64),
            "rank": pd.Series(dtype=np.int64),
        }
    )


def broadcast(users: np.ndarray, items: pd.DataFrame) -> pd.DataFrame:
    """The same scored items (item_id, score) for every user in `users`."""
    if not len(users) or items.empty:
        return pd.DataFrame({"user_id": [], "item_id": [], "score": []})
    return pd.DataFrame(
        {
            "user_id": np.repeat(users, len(items)),
            "item_id": np.tile(items["item_id"].to_numpy(), len(users)),
            "score": np.tile(items["score"].to_numpy(np.float64), len(users)),
        }
    )


def check_events(events: pd.DataFrame, owner: str) -> pd.DataFrame:
    """Events with string ids, UTC timestamps and a weight (1.0 when the column is absent)."""
    if not isinstance(events, pd.DataFrame):
        raise TypeError(f"{owner}: events must be a DataFrame, got {type(events).__name__}")
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"{owner}: events lack column(s) {missing}")
    out = events.assign(
        user_id=events["user_id"].astype(str),
        item_id=events["item_id"].astype(str),
        timestamp=as_utc(events["timestamp"], f"{owner}: events.timestamp"),
    )
    if "weight" not in out.columns:
        out["weight"] = 1.0
    out["weight"] = pd.to_numeric(out["weight"], errors="coerce").fillna(0.0)
    return out


def before(events: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    return events[events["timestamp"] < at]


def decay(ages_days: np.ndarray | pd.Series, half_life_days: float) -> np.ndarray:
    """Exponential decay weight of an age in days: 1 at age 0, 1/2 at one half-life."""
    return np.power(0.5, np.asarray(ages_days, dtype=np.float64) / half_life_days)


def age_days(timestamps: pd.Series, at: pd.Timestamp) -> np.ndarray:
    return ((at - timestamps).dt.total_seconds() / DAY_SECONDS).to_numpy(np.float64)


def as_utc(values: pd.Series, name: str) -> pd.Series:
    try:
        stamps = pd.to_datetime(values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} is not a timestamp column: {exc}") from exc
    if stamps.dt.tz is None:
        return stamps.dt.tz_localize("UTC")
    return stamps.dt.tz_convert("UTC")


def as_instant(value: pd.Timestamp | str, name: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} is not a timestamp: {value!r}") from exc
    if pd.isna(stamp):
        raise ValueError(f"{name} is not a timestamp: {value!r}")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def positive_float(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def _users(history: pd.DataFrame, users: Iterable[str] | None) -> np.ndarray:
    if users is None:
        return np.sort(history["user_id"].unique())
    return np.asarray(pd.unique(pd.Series(list(users), dtype=object).astype(str)), dtype=object)
