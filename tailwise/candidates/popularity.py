"""Popularity sources: what many people chose, overall, in a context, or lately more than usual.

events before the cut --Popularity(days, by).fit--> table (context, item_id, score):
    score = sum of event weights over the last `days` before the cut (all, when None),
    per value of the context column `by` (device, country, ...) or overall (by=None)
--candidates--> each user's context value (the request `context` when given, else the
    latest value in their history) picks its list; users without one, or whose value
    was never seen, get the overall list

events before the cut --Trending(short_days, long_days, smoothing).fit--> (item_id, score):
    score = (short rate + smoothing) / (long rate + smoothing), rates in weight per day
    over the short and long windows ending at the cut, for items seen in the short one

items (item_id, created_at) --NewArrivals(items, keep).fit--> (item_id, score): the
    `keep` items that entered the catalogue last before the cut, newest first,
    score = 1 / (1 + days in the catalogue at the cut); no events needed, so items too
    new (or too rarely chosen) for the other sources to propose can be candidates
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tailwise.candidates.base import (
    DAY_SECONDS,
    CandidateSource,
    broadcast,
    positive_float,
    positive_int,
)

OVERALL = "__overall__"


class Popularity(CandidateSource):
    """Most event weight before the cut, overall or per context value."""

    def __init__(self, days: float | None = None, by: str | None = None, keep: int = 500) -> None:
        self.days = None if days is None else positive_float(days, "popularity: days")
        if by is not None and (not isinstance(by, str) or not by):
            raise ValueError(f"popularity: by must be a context column name or None, got {by!r}")
        self.by = by
        self.keep = positive_int(keep, "popularity: keep")
        self.name = "popularity" + ("" if by is None else f"_{by}")
        self.name += "" if self.days is None else f"_{self.days:g}d"

    def _fit(self, events: pd.DataFrame) -> None:
        if self.days is not None:
            events = events[events["timestamp"] >= self.cut - pd.Timedelta(days=self.days)]
        tables = [_ranked(events, OVERALL, self.keep)]
        if self.by is not None and self.by in events.columns:
            known = events[events[self.by].notna()]
            for value, group in known.groupby(self.by, sort=True):
                tables.append(_ranked(group, str(value), self.keep))
        self.table = pd.concat(tables, ignore_index=True)

    def artifact(self) -> dict[str, pd.DataFrame]:
        return {"popularity": self.table}

    def _score(
        self,
        history: pd.DataFrame,
        users: np.ndarray,
        at: pd.Timestamp,
        context: pd.DataFrame | None,
    ) -> pd.DataFrame:
        groups = pd.Series(OVERALL, index=pd.Index(users, name="user_id"), dtype=object)
        if self.by is not None:
            value = _context_values(history, context, self.by).reindex(groups.index)
            known = value.isin(set(self.table["context"]))
            groups[known] = value[known].astype(str)
        frames = [
            broadcast(groups.index[groups == g].to_numpy(), self.table[self.table.context == g])
            for g in groups.unique()
        ]
        return pd.concat(frames, ignore_index=True) if frames else broadcast(users, self.table)


class FixedList(CandidateSource):
    """A source whose fitted table (item_id, score) is everyone's list: its artifact is
    that table under the source's name, and every user gets it (Trending, NewArrivals)."""

    table: pd.DataFrame
    keep: int

    def _keep_best(self, table: pd.DataFrame) -> None:
        """The `keep` highest scores of (item_id, score) rows as the table (ties: item id)."""
        table = table.sort_values(["score", "item_id"], ascending=[False, True], kind="stable")
        self.table = table.head(self.keep).reset_index(drop=True)

    def artifact(self) -> dict[str, pd.DataFrame]:
        return {self.name: self.table}

    def _score(
        self,
        history: pd.DataFrame,
        users: np.ndarray,
        at: pd.Timestamp,
        context: pd.DataFrame | None,
    ) -> pd.DataFrame:
        return broadcast(users, self.table)


class Trending(FixedList):
    """Items whose rate over the last `short_days` before the cut beats their rate over
    the last `long_days` (smoothed, so a handful of events does not make a trend)."""

    name = "trending"

    def __init__(
        self, short_days: float = 3, long_days: float = 28, smoothing: float = 1.0, keep: int = 500
    ) -> None:
        self.short_days = positive_float(short_days, "trending: short_days")
        self.long_days = positive_float(long_days, "trending: long_days")
        if self.long_days <= self.short_days:
            raise ValueError(
                f"trending: long_days ({long_days}) must be greater than short_days ({short_days})"
            )
        self.smoothing = positive_float(smoothing, "trending: smoothing")
        self.keep = positive_int(keep, "trending: keep")

    def _fit(self, events: pd.DataFrame) -> None:
        ts = events["timestamp"]
        short = _weights(events[ts >= self.cut - pd.Timedelta(days=self.short_days)])
        long = _weights(events[ts >= self.cut - pd.Timedelta(days=self.long_days)])
        rates = pd.DataFrame({"short": short}).join(long.rename("long"), how="left")
        score = (rates["short"] / self.short_days + self.smoothing) / (
            rates["long"] / self.long_days + self.smoothing
        )
        self._keep_best(score.rename("score").rename_axis("item_id").reset_index())


class NewArrivals(FixedList):
    """The catalogue's newest items at the cut (items.created_at), the same for everyone.
    Items without created_at, and catalogues without the column, give no candidates."""

    name = "new_arrivals"

    def __init__(self, items: pd.DataFrame, keep: int = 500) -> None:
        if not isinstance(items, pd.DataFrame) or "item_id" not in items.columns:
            raise ValueError("new_arrivals: items must be a DataFrame with an item_id column")
        self.keep = positive_int(keep, "new_arrivals: keep")
        created = (
            pd.to_datetime(items["created_at"], utc=True, errors="coerce")
            if "created_at" in items.columns
            else pd.Series(pd.NaT, index=items.index, dtype="datetime64[ns, UTC]")
        )
        self._items = pd.DataFrame(
            {"item_id": items["item_id"].astype(str), "created_at": created}
        ).dropna(subset=["created_at"])

    def _fit(self, events: pd.DataFrame) -> None:
        known = self._items[self._items["created_at"] < self.cut]
        days = (self.cut - known["created_at"]).dt.total_seconds() / DAY_SECONDS
        self._keep_best(
            pd.DataFrame(
                {"item_id": known["item_id"].to_numpy(), "score": 1.0 / (1.0 + days.to_numpy())}
            )
        )


def _weights(events: pd.DataFrame) -> pd.Series:
    return events.groupby("item_id", sort=True)["weight"].sum()


def _ranked(events: pd.DataFrame, context: str, keep: int) -> pd.DataFrame:
    weights = _weights(events).rename("score").rename_axis("item_id").reset_index()
    weights = weights.sort_values(["score", "item_id"], ascending=[False, True], kind="stable")
    return weights.head(keep).assign(context=context)[["context", "item_id", "score"]]


def _context_values(history: pd.DataFrame, context: pd.DataFrame | None, by: str) -> pd.Series:
    """Each user's value of `by`: from the request context first, else their latest event."""
    values = pd.Series(dtype=object)
    if by in history.columns:
        known = history[history[by].notna()].sort_values("timestamp", kind="stable")
        values = known.groupby("user_id")[by].last()
    if context is not None and by in context.columns:
        given = context[context[by].notna()].drop_duplicates("user_id", keep="last")
        request = pd.Series(given[by].to_numpy(), index=given["user_id"].astype(str))
        values = request.combine_first(values)
    return values
