"""Per-event session state: one definition for the offline table and the online path.

`realtime_state` is pure and vectorised (DataFrame in, DataFrame out): the offline
builder applies it to user-hash buckets of all events (`write_user_realtime`), the online
path to one user's recent events, taking the last row. Each output row is the user's
state right after an event, valid from the event's timestamp + 1 microsecond.

Events are ordered by (user_id, timestamp, event_id); ties on timestamp follow event_id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REALTIME_COLUMNS = (
    "user_id",
    "event_timestamp",
    "rt_last_items",
    "rt_last_category",
    "rt_session_events",
    "rt_hour_events",
    "rt_hour_carts",
)
REALTIME_TYPES = {
    "user_id": pa.string(),
    "rt_last_items": pa.list_(pa.string()),
    "rt_last_category": pa.string(),
    "rt_session_events": pa.int64(),
    "rt_hour_events": pa.int64(),
    "rt_hour_carts": pa.int64(),
}
_HOUR_US = 3_600_000_000
_ONE_US = pd.Timedelta(1, "us").as_unit("us")


def realtime_state(
    events: pd.DataFrame, item_category: pd.Series, n_items: int = 10
) -> pd.DataFrame:
    """State after each event of one or many users.

    `events` needs user_id, item_id, event_type, timestamp (UTC) and optionally event_id
    and session_id; `item_category` maps item_id -> category. Returns one row per event,
    sorted by (user_id, timestamp, event_id), with REALTIME_COLUMNS:
    rt_last_items (the last `n_items` distinct items, newest first, this one included),
    rt_last_category, rt_session_events (0 when the event has no session: no tracking
    consent), rt_hour_events and rt_hour_carts (events in (t - 1h, t], this one included).
    """
    missing = {"user_id", "item_id", "event_type", "timestamp"} - set(events.columns)
    if missing:
        raise ValueError(f"realtime_state needs columns {sorted(missing)}")
    ts = pd.to_datetime(events["timestamp"], utc=True).dt.as_unit("us")
    t0 = ts.to_numpy(dtype="datetime64[us]").view("i8")
    user0, users = pd.factorize(events["user_id"], sort=True)
    tie = (
        pd.factorize(events["event_id"], sort=True)[0]
        if "event_id" in events
        else np.zeros(len(events), np.int64)
    )
    order = np.lexsort((tie, t0, user0))
    t, user = t0[order], user0[order]
    n = len(order)
    first = np.r_[True, user[1:] != user[:-1]] if n else np.zeros(0, bool)
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    item, uniques = pd.factorize(events["item_id"].to_numpy()[order])
    last_items = _last_distinct(item, np.arange(n) - start, n_items)
    left = _window_start(user, t, _HOUR_US)
    carts = np.cumsum(events["event_type"].to_numpy()[order] == "add_to_cart", dtype=np.int64)
    carts_before = np.where(left > 0, carts[np.maximum(left - 1, 0)], 0)
    sessions = events["session_id"].to_numpy()[order] if "session_id" in events else None
    return pd.DataFrame(
        {
            "user_id": np.asarray(users, dtype=object)[user],
            "event_timestamp": pd.DatetimeIndex(t.view("datetime64[us]"), tz="UTC") + _ONE_US,
            "rt_last_items": _list_column(last_items, uniques),
            "rt_last_category": item_category.reindex(uniques).to_numpy()[item],
            "rt_session_events": _session_counts(user, sessions),
            "rt_hour_events": np.arange(n, dtype=np.int64) - left + 1,
            "rt_hour_carts": carts - carts_before,
        }
    )


def _last_distinct(item: np.ndarray, pos: np.ndarray, k: int) -> np.ndarray:
    """(n, k) item codes, newest first, -1 padded: L(i) = [x_i] + (L(i-1) without x_i)[:k-1].

    The recurrence runs over the position within the user, vectorised across users, so the
    loop is as long as the busiest user's history, and the result exact (no frame cut-off).
    """
    state = np.full((len(item), k), -1, dtype=np.int64)
    if not len(item):
        return state
    order = np.argsort(pos, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(pos))]
    state[order[: bounds[1]], 0] = item[order[: bounds[1]]]
    cols = np.arange(k - 1)[None, :]
    for p in range(1, len(bounds) - 1):
        rows = order[bounds[p] : bounds[p + 1]]
        prev, x = state[rows - 1], item[rows]
        hit = prev == x[:, None]
        # Position of x in the previous list (k - 1 when absent: the oldest entry drops).
        j = np.where(hit.any(axis=1), hit.argmax(axis=1), k - 1)
        state[rows, 1:] = np.where(cols < j[:, None], prev[:, :-1], prev[:, 1:])
        state[rows, 0] = x
    return state


def _window_start(user: np.ndarray, t: np.ndarray, width: int) -> np.ndarray:
    """Index of the first event of the same user with time > t - width (rows sorted)."""
    if not len(t):
        return np.zeros(0, np.int64)
    # Times replaced by their rank keep (user, rank) in one int64 without overflow.
    ut = np.unique(t)
    m = len(ut) + 1
    key = user.astype(np.int64) * m + np.searchsorted(ut, t)
    lower = user.astype(np.int64) * m + np.searchsorted(ut, t - width, side="right")
    return np.searchsorted(key, lower, side="left").astype(np.int64)


def _session_counts(user: np.ndarray, sessions: np.ndarray | None) -> np.ndarray:
    """Running count of events in the same (user, session); 0 without a session."""
    out = np.zeros(len(user), dtype=np.int64)
    if sessions is None:
        return out
    code, _ = pd.factorize(sessions)  # -1 for a missing session
    has = code >= 0
    key = user[has].astype(np.int64) * (int(code.max(initial=0)) + 1) + code[has]
    # Rows are in time order; a stable sort groups each session keeping that order.
    srt = np.argsort(key, kind="stable")
    ks = key[srt]
    first = np.r_[True, ks[1:] != ks[:-1]] if len(ks) else np.zeros(0, bool)
    pos = np.arange(len(ks)) - np.maximum.accumulate(np.where(first, np.arange(len(ks)), 0))
    counts = np.empty(len(ks), np.int64)
    counts[srt] = pos + 1
    out[has] = counts
    return out


def _list_column(codes: np.ndarray, uniques: np.ndarray) -> pd.arrays.ArrowExtensionArray:
    valid = codes >= 0
    offsets = np.r_[0, np.cumsum(valid.sum(axis=1))].astype(np.int32)
    values = pa.array(np.asarray(uniques, dtype=object), type=pa.string()).take(
        pa.array(codes[valid])
    )
    return pd.arrays.ArrowExtensionArray(pa.ListArray.from_arrays(pa.array(offsets), values))


def write_user_realtime(
    buckets: Sequence[Path | list[str]],
    item_category: pd.Series,
    out: Path,
    day_state: Path,
    created: pd.Timestamp,
    n_items: int,
    progress: Callable[[int], None] = lambda _n: None,
) -> int:
    """Apply `realtime_state` per user bucket (a Parquet file or folder, or a list of files
    holding every event of its users) into `out`; also write each user's state at the end
    of each active day (user_id, day, recent_items) to `day_state`."""
    rows = 0
    writer: pq.ParquetWriter | None = None
    day_writer: pq.ParquetWriter | None = None
    try:
        for path in buckets:
            events = pq.read_table(path).to_pandas(types_mapper=None)
            state = realtime_state(events, item_category, n_items)
            # Events at the same instant: only the state after the last of them is valid
            # from that instant (Feast could otherwise pick either row).
            state = state.drop_duplicates(["user_id", "event_timestamp"], keep="last")
            state.insert(2, "created_timestamp", created)
            table = to_arrow(state, REALTIME_TYPES)
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            days = _end_of_day(state)
            day_writer = day_writer or pq.ParquetWriter(day_state, days.schema)
            day_writer.write_table(days)
            rows += len(state)
            progress(len(state))
    finally:
        for w in (writer, day_writer):
            if w is not None:
                w.close()
    return rows


def to_arrow(df: pd.DataFrame, types: dict[str, pa.DataType] | None = None) -> pa.Table:
    """Arrow table with timestamps as timestamp[us, UTC] and no pandas metadata (readers
    would otherwise try to rebuild the ArrowDtype list columns and fail); columns named in
    `types` get exactly that type (an all-null column is a typed null, not type `null`)."""
    table = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata()
    types = types or {}
    fields = [
        pa.field(f.name, types[f.name])
        if f.name in types
        else pa.field(f.name, pa.timestamp("us", tz="UTC"))
        if pa.types.is_timestamp(f.type)
        else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def _end_of_day(state: pd.DataFrame) -> pa.Table:
    """The last row of each (user, UTC day): rows are sorted by user, then time."""
    day = (state["event_timestamp"] - _ONE_US).dt.floor("D").dt.tz_localize(None)
    user = pd.factorize(state["user_id"])[0]
    d = day.to_numpy(dtype="datetime64[D]")
    last = np.r_[(user[1:] != user[:-1]) | (d[1:] != d[:-1]), True] if len(d) else d == d
    return pa.table(
        {
            "user_id": pa.array(state["user_id"].to_numpy()[last], pa.string()),
            "day": pa.array(d[last]),
            "recent_items": pa.array(state["rt_last_items"].array[last]),
        }
    )
