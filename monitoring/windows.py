"""Loading a time window of what serving logged: served requests and incoming events.

    <served>/requests/date=YYYY-MM-DD/*.parquet        --load_requests(window)--> requests
    <served>/events/event_date=YYYY-MM-DD/*.parquet    --load_events(window)----> events
    (data/clean/events has the events layout too: the reference reads it the same way)

    requests --feature_rows--> one row per logged feature vector (the sampled requests)
             --served_items--> one row per served item: request_id, user_id, ts, item_id,
                               rank (1-based), score, cold_start

Only the day partitions a window touches are opened, and rows are filtered on their own
timestamps. Windows are half-open, [start, end). Files starting with '.' or '_' are a
writer's temporary files and are skipped. A file without a needed column is an error
naming the file and the column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

REQUEST_COLUMNS = ("request_id", "ts", "user_id", "model_version", "items", "features", "extra")
EVENT_COLUMNS = ("event_id", "user_id", "item_id", "event_type", "timestamp")
EVENT_OPTIONAL = ("value", "price", "weight", "session_id", "device", "channel", "country")


class WindowDataError(ValueError):
    """The served log or events cannot be read as expected; the message says where."""


@dataclass(frozen=True)
class Window:
    """[start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None:
                raise WindowDataError(f"window {name} {value} has no time zone; use UTC")
        if self.end <= self.start:
            raise WindowDataError(f"window end {self.end} is not after its start {self.start}")

    @classmethod
    def ending(cls, end: datetime, length: timedelta) -> Window:
        end = end.astimezone(UTC)
        return cls(end - length, end)

    def shift(self, by: timedelta) -> Window:
        return Window(self.start + by, self.end + by)

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC"


def load_requests(served: Path, window: Window, model_version: str | None = None) -> pd.DataFrame:
    """Served requests logged in `window` (optionally of one model version), sorted by ts."""
    frame = _read(served / "requests", "date", "ts", window, REQUEST_COLUMNS, ())
    if model_version is not None:
        frame = frame.loc[frame["model_version"] == model_version]
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def load_events(events_root: Path, window: Window) -> pd.DataFrame:
    """Events (clean events schema) whose timestamp is in `window`, sorted by time."""
    frame = _read(events_root, "event_date", "timestamp", window, EVENT_COLUMNS, EVENT_OPTIONAL)
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def first_served(served: Path, model_version: str) -> datetime | None:
    """When `model_version` served its first logged request (None: never)."""
    files = _files(served / "requests", "date", None)
    if not files:
        return None
    table = ds.dataset(files, format="parquet").to_table(
        columns=["ts"], filter=ds.field("model_version") == model_version
    )
    if table.num_rows == 0:
        return None
    first = pd.Timestamp(pc.min(table.column("ts")).as_py())
    return first.tz_convert(UTC).to_pydatetime()


def feature_rows(requests: pd.DataFrame) -> pd.DataFrame:
    """The logged feature vectors (one row per request that carried one), request_id first."""
    logged = requests.loc[requests["features"].notna(), ["request_id", "features"]]
    records = [_json_object(text, "features", rid) for rid, text in logged.itertuples(False)]
    if not records:
        return pd.DataFrame({"request_id": pd.Series(dtype=object)})
    frame = pd.DataFrame.from_records(records, index=logged["request_id"].to_numpy())
    return frame.rename_axis("request_id").reset_index()


def served_items(requests: pd.DataFrame) -> pd.DataFrame:
    """One row per served item with its rank, score and whether the list was a cold start."""
    ids, scores, cold = [], [], []
    for rid, items_text, extra_text in requests[["request_id", "items", "extra"]].itertuples(False):
        items = json.loads(items_text) if isinstance(items_text, str) else []
        extra = _json_object(extra_text, "extra", rid) if isinstance(extra_text, str) else {}
        if not isinstance(items, list):
            raise WindowDataError(f"request {rid}: items is not a JSON list: {items_text[:80]!r}")
        values = extra.get("scores") or [np.nan] * len(items)
        if len(values) != len(items):
            raise WindowDataError(
                f"request {rid}: {len(values)} scores for {len(items)} items in extra.scores"
            )
        ids.append(items)
        scores.append(values)
        cold.append(bool(extra.get("cold_start", False)))
    counts = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
    position = np.concatenate([np.arange(1, n + 1) for n in counts]) if len(ids) else np.zeros(0)
    repeat = requests.index.repeat(counts)
    return pd.DataFrame(
        {
            "request_id": requests.loc[repeat, "request_id"].to_numpy(),
            "user_id": requests.loc[repeat, "user_id"].to_numpy(),
            "ts": requests.loc[repeat, "ts"].to_numpy(),
            "item_id": [str(i) for items in ids for i in items],
            "rank": np.asarray(position, dtype=np.int64),
            "score": np.asarray([s for values in scores for s in values], dtype=np.float64),
            "cold_start": np.repeat(np.asarray(cold, dtype=bool), counts),
        }
    ).assign(ts=lambda f: pd.to_datetime(f["ts"], utc=True))


def _json_object(text: Any, column: str, request_id: Any) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise WindowDataError(f"request {request_id}: {column} is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise WindowDataError(f"request {request_id}: {column} is not a JSON object")
    return value


def _files(root: Path, partition: str, window: Window | None) -> list[str]:
    if not root.exists():
        return []
    days = None
    if window is not None:
        last = window.end - timedelta(microseconds=1)
        days = {
            (window.start.date() + timedelta(days=d)).isoformat()
            for d in range((last.date() - window.start.date()).days + 1)
        }
    files = []
    for folder in sorted(root.glob(f"{partition}=*")):
        if days is not None and folder.name.split("=", 1)[1] not in days:
            continue
        files += [str(p) for p in sorted(folder.glob("*.parquet")) if p.name[0] not in "._"]
    return files


def _read(
    root: Path,
    partition: str,
    time_column: str,
    window: Window,
    required: tuple[str, ...],
    optional: tuple[str, ...],
) -> pd.DataFrame:
    files = _files(root, partition, window)
    tables = []
    for path in files:
        names = pq.read_schema(path).names
        missing = [c for c in required if c not in names]
        if missing:
            raise WindowDataError(f"{path} lacks column(s) {missing}; it has {names}")
        columns = [*required, *(c for c in optional if c in names)]
        table = pq.read_table(path, columns=columns)
        times = pc.cast(table.column(time_column), pa.timestamp("us", tz="UTC"))
        keep = pc.and_(
            pc.greater_equal(times, pa.scalar(window.start, pa.timestamp("us", "UTC"))),
            pc.less(times, pa.scalar(window.end, pa.timestamp("us", "UTC"))),
        )
        tables.append(table.set_column(columns.index(time_column), time_column, times).filter(keep))
    if not tables:
        return _empty(required, optional, time_column)
    frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    for column in optional:
        if column not in frame.columns:
            frame[column] = None
    return frame


def _empty(required: tuple[str, ...], optional: tuple[str, ...], time_column: str) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in (*required, *optional)})
    frame[time_column] = pd.Series(dtype="datetime64[us, UTC]")
    return frame
