"""Temporal train / validation / test split of clean events, and each window's ground truth.

    clean events --temporal_split--> Split(train | validation | test, cut instants)
                                       `-- per window: relevant (user_id, item_id) and
                                           evaluated users flagged new / returning

Windows are cut by time, ending at the last event:

    train      timestamp <  validation_start
    validation validation_start <= timestamp < test_start
    test       test_start <= timestamp <= end          (end = last event)

A model evaluated on a window is fitted on everything before the window's start
(`Split.history`). An item is relevant to a user in a window when the user had a positive
event on it there (SplitParams.positive_event_types; rated types only at value >=
min_rating) and no event at all on it before the window: recommenders exclude what a user
has already seen, so the ground truth must too. When repeats are allowed
(`allow_repeats=True`, recommend.allow_repeats decided in tailwise.repeats) an item the
user had before is relevant too: recommenders may then return it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

from tailwise.candidates.base import as_utc
from training.config import SplitParams

WINDOWS = ("validation", "test")
REQUIRED_EVENT_COLUMNS = ("user_id", "item_id", "event_type", "timestamp")


@dataclass(frozen=True)
class WindowTruth:
    """What a window expects: relevant pairs and the users they are measured on.

    relevant: user_id, item_id (distinct). users: user_id, status ('new' when the user
    has no event before the window, else 'returning'), n_relevant."""

    relevant: pd.DataFrame
    users: pd.DataFrame


@dataclass(frozen=True)
class Split:
    """Three time windows of one event log and the ground truth of the later two."""

    params: SplitParams
    validation_start: pd.Timestamp
    test_start: pd.Timestamp
    end: pd.Timestamp
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    items: pd.DataFrame | None
    validation_truth: WindowTruth
    test_truth: WindowTruth
    allow_repeats: bool = False

    def start(self, window: str) -> pd.Timestamp:
        """First instant of `window` ('validation' or 'test')."""
        return self.validation_start if _check(window) == "validation" else self.test_start

    def events(self, window: str) -> pd.DataFrame:
        """The events inside `window`."""
        return self.validation if _check(window) == "validation" else self.test

    def history(self, window: str) -> pd.DataFrame:
        """Every event before `window` starts: what a model evaluated on it may see."""
        if _check(window) == "validation":
            return self.train
        return pd.concat([self.train, self.validation], ignore_index=True)

    def truth(self, window: str) -> WindowTruth:
        """Relevant items and evaluated users of `window`."""
        return self.validation_truth if _check(window) == "validation" else self.test_truth

    def candidate_items(self, window: str) -> pd.DataFrame:
        """Catalogue rows that exist when `window` starts (no created_at: always)."""
        if self.items is None:
            raise ValueError("this Split was made without an items table")
        if "created_at" not in self.items.columns:
            return self.items
        created = as_utc(self.items["created_at"], "items.created_at")
        return self.items[created.isna() | (created < self.start(window))]


def temporal_split(
    events: pd.DataFrame,
    params: SplitParams,
    items: pd.DataFrame | None = None,
    allow_repeats: bool = False,
) -> Split:
    """Cut `events` into train / validation / test by time (see the module docstring)."""
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events lack required column(s) {missing}; got {list(events.columns)}")
    if events.empty:
        raise ValueError("cannot split an empty event log")
    events = events.assign(timestamp=as_utc(events["timestamp"], "events.timestamp"))
    if events["timestamp"].isna().any():
        raise ValueError("events have a missing timestamp; clean events never do")
    end = events["timestamp"].max()
    test_start = days_before(end, params.test_days)
    validation_start = days_before(test_start, params.validation_days)
    ts = events["timestamp"]
    train = events[ts < validation_start].reset_index(drop=True)
    validation = events[(ts >= validation_start) & (ts < test_start)].reset_index(drop=True)
    test = events[ts >= test_start].reset_index(drop=True)
    history_test = pd.concat([train, validation], ignore_index=True)
    return Split(
        params=params,
        validation_start=validation_start,
        test_start=test_start,
        end=end,
        train=train,
        validation=validation,
        test=test,
        items=items,
        validation_truth=window_truth(validation, train, params, allow_repeats),
        test_truth=window_truth(test, history_test, params, allow_repeats),
        allow_repeats=allow_repeats,
    )


def window_truth(
    window: pd.DataFrame,
    history: pd.DataFrame,
    params: SplitParams,
    allow_repeats: bool = False,
) -> WindowTruth:
    """Relevant (user, item) pairs of `window` given the events before it, and their users
    (items the user had before count only when `allow_repeats`)."""
    kind = window["event_type"].str.lower()
    positive = kind.isin(params.positive_event_types)
    rated = kind.isin(params.rated_event_types)
    if rated.any():
        if "value" not in window.columns:
            raise ValueError(f"events of types {params.rated_event_types} need a 'value' column")
        positive &= ~rated | (window["value"] >= params.min_rating)
    pairs = window.loc[positive, ["user_id", "item_id"]].drop_duplicates()
    if allow_repeats:
        seen = history.iloc[:0][["user_id", "item_id"]]
    else:
        seen = history[["user_id", "item_id"]].drop_duplicates()
    merged = pairs.merge(seen, on=["user_id", "item_id"], how="left", indicator=True)
    relevant = (
        merged.loc[merged["_merge"] == "left_only", ["user_id", "item_id"]]
        .sort_values(["user_id", "item_id"])
        .reset_index(drop=True)
    )
    users = relevant.groupby("user_id", sort=True).size().rename("n_relevant").reset_index()
    returning = users["user_id"].isin(history["user_id"].unique())
    users.insert(1, "status", returning.map({True: "returning", False: "new"}))
    return WindowTruth(relevant=relevant, users=users)


def read_events(clean_dir: Path) -> pd.DataFrame:
    """Clean events of `clean_dir/events/` (hive-partitioned parquet) in time order."""
    folder = Path(clean_dir) / "events"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: run `tailwise ingest --out {clean_dir}`")
    table = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
    frame = table.to_pandas().drop(columns=["event_date"], errors="ignore")
    order = ["timestamp", "event_id"] if "event_id" in frame.columns else ["timestamp"]
    return frame.sort_values(order, kind="stable").reset_index(drop=True)


def read_items(clean_dir: Path) -> pd.DataFrame:
    """The clean catalogue `clean_dir/items.parquet`."""
    path = Path(clean_dir) / "items.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `tailwise ingest --out {clean_dir}`")
    return pd.read_parquet(path)


def _check(window: str) -> str:
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}; expected one of {WINDOWS}")
    return window


def days_before(instant: pd.Timestamp, days: float) -> pd.Timestamp:
    """`days` before `instant` (after it when negative), to the microsecond: the clean
    data's precision and what Feast's offline store takes. Windows recorded as fractional
    days then cut the same instant in every stage, never one a nanosecond off."""
    return (instant - pd.Timedelta(days=days)).round("us")
