"""Ingestion of served traffic: Redis Streams into offline Parquet tables, exactly once.

events stream (field `e`)  -> out_dir/events/event_date=YYYY-MM-DD/served-<id>.parquet
served stream (field `r`)  -> out_dir/requests/date=YYYY-MM-DD/served-<id>.parquet
exposures stream (`x`)     -> out_dir/exposures/date=YYYY-MM-DD/served-<id>.parquet
                              (tailwise.experiments' exposures table; when the names have it)

The events may be spread over several stream keys (partitions, by a stable hash of the
user id: `partition_of`), so that on a Redis Cluster they spread over the masters; each
partition is a stream of its own with its own `offline` group, read one after the other.
Each stream is read by the consumer group `offline`. Entries left unacknowledged by a run
that crashed are handled first (this consumer's own, and others' idle ones are claimed),
then new ones. Rows whose id (event_id / request_id) is already in the target partition,
or repeated in the batch, are dropped (each partition's ids are read once per file and
kept: `_WrittenIds`); the file is written under a temporary name and
renamed, then the entries are acknowledged. A crash anywhere in between only means the
same entries are read again and found to be duplicates. Event files have the columns and
types of the clean events, so training reads data/clean and data/served alike, and a
re-ingest joins them to the clean events (served.py); after them come the links an API
event may carry (request_id, slot, position; null when not sent), which experiment
attribution reads (tailwise.experiments.attribution).

Once a batch is committed (written and acknowledged), the stream is trimmed up to the
oldest entry some consumer group still needs (`trim_committed`: XTRIM MINID), so a stream
holds only what is not yet in Parquet and its length stays bounded while a consumer runs.
`stream_state` (length, pending, lag) is what /metrics shows of it.

The serving app writes the streams (serving.events, serving.graph) and names them
(serving.keys.Keys); this module only reads them, so it needs the two names, not serving.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import redis
from redis.exceptions import ResponseError

from tailwise.ingest.contract import parse_timestamp
from tailwise.ingest.events import CLEAN_COLUMNS

logger = logging.getLogger(__name__)

GROUP = "offline"
DEFAULT_OUT = Path("data/served")
# What an API event may carry besides the clean columns: the response it follows, where
# the item was shown (tailwise.experiments.attribution reads them; null when not sent).
EVENT_LINKS = ("request_id", "slot", "position")
EVENTS_SCHEMA = pa.schema(
    [
        pa.field(c, pa.timestamp("us", tz="UTC"))
        if c == "timestamp"
        else pa.field(c, pa.float64() if c in ("value", "price", "weight") else pa.string())
        for c in CLEAN_COLUMNS
    ]
    + [("request_id", pa.string()), ("slot", pa.string()), ("position", pa.int64())]
)
EXPOSURES_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("user_id", pa.string()),
        ("experiment", pa.string()),
        ("variant", pa.string()),
        ("propensity", pa.float64()),
        ("slot", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("exposure_id", pa.string()),  # "<request_id>:<experiment>", the dedup key
    ]
)
REQUESTS_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("user_id", pa.string()),
        ("model_version", pa.string()),
        ("degraded", pa.bool_()),
        ("latency_ms", pa.float64()),
        ("items", pa.string()),  # JSON
        ("features", pa.string()),  # JSON
        ("extra", pa.string()),  # JSON of any other fields of the log entry
    ]
)


# user_id Series -> boolean Series: which rows belong to erased people.
Erased = Callable[[pd.Series], pd.Series]


def partition_of(user_id: str, partitions: int) -> int:
    """The event partition of `user_id`: CRC-32 of its UTF-8 bytes modulo `partitions`
    (the same in every process and release, unlike Python's salted `hash`)."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    return zlib.crc32(user_id.encode()) % partitions


def partition_streams(events: str, partitions: int) -> tuple[str, ...]:
    """The stream keys of `partitions` event partitions named after `events` (the key of
    the one events stream: `events` itself when there is one partition, else
    `<events>.<n>`, which no per-user key pattern `<prefix>*:<user>` matches)."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    if partitions == 1:
        return (events,)
    return tuple(f"{events}.{n}" for n in range(partitions))


class StreamNames(Protocol):
    """The Redis keys of the two streams (serving.keys.Keys has them; its `event_streams`,
    when present, lists the event partitions)."""

    @property
    def events(self) -> str: ...

    @property
    def served(self) -> str: ...


@dataclass(frozen=True)
class ConsumeResult:
    """Entries read, rows written, duplicates dropped, unreadable entries set aside (for the
    events stream; `requests` holds the same counts for the served-request log)."""

    read: int
    written: int
    duplicates: int
    rejected: int = 0
    requests: ConsumeResult | None = None
    exposures: ConsumeResult | None = None
    erased: int = 0

    @property
    def entries_read(self) -> int:
        """Entries read from every stream of the pass (events, requests, exposures): 0 when
        they were all empty."""
        return self.read + sum(p.read for p in (self.requests, self.exposures) if p is not None)


@dataclass(frozen=True)
class _Table:
    field: bytes
    folder: str
    partition: str
    key: str
    time: str
    schema: pa.Schema
    parse: Callable[[dict[str, Any]], dict[str, Any]]


def _event_row(record: dict[str, Any]) -> dict[str, Any]:
    if not record.get("event_id") or not record.get("user_id") or not record.get("item_id"):
        raise ValueError("event without event_id, user_id or item_id")
    row = {c: record.get(c) for c in (*CLEAN_COLUMNS, *EVENT_LINKS)}
    row["timestamp"] = _time(record.get("timestamp"))
    position = row["position"]
    row["position"] = None if position is None else int(position)
    return row


def _exposure_row(record: dict[str, Any]) -> dict[str, Any]:
    if not record.get("request_id") or not record.get("experiment") or not record.get("variant"):
        raise ValueError("exposure without request_id, experiment or variant")
    row = {f.name: record.get(f.name) for f in EXPOSURES_SCHEMA}
    row["timestamp"] = _time(record.get("timestamp"))
    row["propensity"] = float(record["propensity"])
    row["exposure_id"] = f"{record['request_id']}:{record['experiment']}"
    return row


def _request_row(record: dict[str, Any]) -> dict[str, Any]:
    if not record.get("request_id"):
        raise ValueError("request log entry without request_id")
    known = {"request_id", "ts", "user_id", "model_version", "degraded", "latency_ms"}
    extra = {k: v for k, v in record.items() if k not in known | {"items", "features"}}
    return {
        "request_id": str(record["request_id"]),
        "ts": _time(record.get("ts")),
        "user_id": _opt_str(record.get("user_id")),
        "model_version": _opt_str(record.get("model_version")),
        "degraded": None if record.get("degraded") is None else bool(record["degraded"]),
        "latency_ms": None if record.get("latency_ms") is None else float(record["latency_ms"]),
        "items": _json(record.get("items")),
        "features": _json(record.get("features")),
        "extra": json.dumps(extra, default=str) if extra else None,
    }


def _time(value: Any) -> pd.Timestamp:
    ts = parse_timestamp(value) if value is not None else "missing"
    if isinstance(ts, str):
        raise ValueError(f"bad timestamp: {ts}")
    return pd.Timestamp(ts).as_unit("us")


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


EVENTS = _Table(b"e", "events", "event_date", "event_id", "timestamp", EVENTS_SCHEMA, _event_row)
REQUESTS = _Table(b"r", "requests", "date", "request_id", "ts", REQUESTS_SCHEMA, _request_row)
# One exposure per (request, experiment): the key is both, joined.
EXPOSURES = _Table(
    b"x", "exposures", "date", "exposure_id", "timestamp", EXPOSURES_SCHEMA, _exposure_row
)


def consume(
    client: redis.Redis,
    keys: StreamNames,
    out_dir: Path = DEFAULT_OUT,
    count: int = 5000,
    block_ms: int = 0,
    consumer: str = "offline-1",
    claim_idle_ms: int = 60_000,
    erased: Erased | None = None,
) -> ConsumeResult:
    """One batch (up to `count` entries) of each stream into Parquet under `out_dir`.

    `erased` marks the user ids of erased people (tailwise.erasure's ledger): their entries
    are acknowledged and dropped, never written.

    block_ms > 0 waits that long for new events when there are none (0: do not wait).
    Entries another consumer read but did not acknowledge for `claim_idle_ms` are taken
    over (a crashed consumer's work).
    """
    args = (client, Path(out_dir), count, block_ms, consumer, claim_idle_ms, erased)
    partitions = tuple(getattr(keys, "event_streams", None) or (keys.events,))
    # Waiting is shared out over the partitions, so a pass waits about block_ms in all.
    wait = max(1, block_ms // len(partitions)) if block_ms else 0
    events = ConsumeResult(0, 0, 0)
    for stream in partitions:
        part = _consume_stream(stream, EVENTS, *args[:3], wait, *args[4:])
        events = ConsumeResult(
            events.read + part.read,
            events.written + part.written,
            events.duplicates + part.duplicates,
            events.rejected + part.rejected,
            erased=events.erased + part.erased,
        )
    requests = _consume_stream(keys.served, REQUESTS, *args[:3], 0, *args[4:])
    stream = getattr(keys, "exposures", None)  # experiments' exposures, where named
    exposures = _consume_stream(stream, EXPOSURES, *args[:3], 0, *args[4:]) if stream else None
    return ConsumeResult(
        events.read,
        events.written,
        events.duplicates,
        events.rejected,
        requests=requests,
        exposures=exposures,
        erased=events.erased,
    )


def _consume_stream(
    stream: str,
    table: _Table,
    client: redis.Redis,
    out_dir: Path,
    count: int,
    block_ms: int,
    consumer: str,
    claim_idle_ms: int,
    erased: Erased | None = None,
) -> ConsumeResult:
    _ensure_group(client, stream)
    # Crashed consumers' entries become this consumer's, then appear among its pending ones.
    client.xautoclaim(stream, GROUP, consumer, claim_idle_ms, "0-0", count=count, justid=True)
    entries = _read(client, stream, consumer, "0", count, None)
    if not entries:
        entries = _read(client, stream, consumer, ">", count, block_ms or None)
    if not entries:
        return ConsumeResult(0, 0, 0)
    rows, rejected, ids = [], [], []
    for entry_id, fields in entries:
        ids.append(entry_id)
        if not fields:  # deleted from the stream while pending
            continue
        raw = fields.get(table.field)
        try:
            if raw is None:
                raise ValueError(f"entry has no {table.field.decode()!r} field")
            row = table.parse(json.loads(raw))
        except (TypeError, ValueError, AttributeError) as exc:
            rejected.append({"id": entry_id.decode(), "raw": _text(raw), "problem": str(exc)})
            continue
        rows.append({**row, "_stream_id": entry_id.decode()})
    frame, dropped = pd.DataFrame(rows), 0
    if erased is not None and len(frame):
        gone = erased(frame["user_id"]).to_numpy(dtype=bool)
        frame, dropped = frame.loc[~gone], int(gone.sum())
    written = _write(frame, table, out_dir) if len(frame) else 0
    if rejected:
        _set_aside(rejected, table, out_dir)
    client.xack(stream, GROUP, *ids)
    trim_committed(client, stream)
    duplicates = len(rows) - dropped - written
    return ConsumeResult(len(entries), written, duplicates, len(rejected), erased=dropped)


def _ensure_group(client: redis.Redis, stream: str) -> None:
    try:
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _read(
    client: redis.Redis, stream: str, consumer: str, start: str, count: int, block: int | None
) -> list[tuple[bytes, dict[bytes, bytes]]]:
    reply: Any = client.xreadgroup(GROUP, consumer, {stream: start}, count=count, block=block)
    if not reply:
        return []
    # redis-py answers [[stream, entries]] over RESP2 and {stream: [entries]} over RESP3.
    if isinstance(reply, dict):
        groups = [v[0] if v and isinstance(v[0], list) else v for v in reply.values()]
    else:
        groups = [entries for _, entries in reply]
    return [(i, f or {}) for entries in groups for i, f in entries]


def _write(frame: pd.DataFrame, table: _Table, out_dir: Path) -> int:
    """New rows per partition into one file each; returns how many rows were written."""
    frame = frame.drop_duplicates(table.key, keep="first")
    day = pd.to_datetime(frame[table.time], utc=True).dt.strftime("%Y-%m-%d")
    written = 0
    for date, part in frame.groupby(day, sort=True):
        folder = out_dir / table.folder / f"{table.partition}={date}"
        part = part.loc[~part[table.key].isin(_existing_ids(folder, table.key))]
        if part.empty:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"served-{part['_stream_id'].iat[0]}.parquet"
        n = 1
        while target.exists():  # never overwrite rows already written
            target = folder / f"served-{part['_stream_id'].iat[0]}-{n}.parquet"
            n += 1
        data = pa.Table.from_pandas(
            part.drop(columns="_stream_id"), schema=table.schema, preserve_index=False
        ).replace_schema_metadata()
        tmp = folder / f".{target.name}.tmp"  # dot files are skipped by Parquet readers
        pq.write_table(data, tmp, compression="zstd")
        os.replace(tmp, target)
        _existing_ids.add(folder, table.key, target.name, part[table.key])
        written += len(part)
    return written


class _WrittenIds:
    """The ids already written under each partition folder, each file read once: a pass
    lists the folder and reads only the files that are new to it (written by this process
    or another), so its cost follows the batch, not the size of the day's partition.
    The newest `folders` folders are kept (about 100 bytes per id); a folder that lost a
    file is read again in full."""

    def __init__(self, folders: int = 8) -> None:
        self.folders = folders
        self._known: OrderedDict[tuple[Path, str], tuple[set[str], set[str]]] = OrderedDict()

    def __call__(self, folder: Path, key: str) -> set[str]:
        files = {p.name for p in folder.glob("*.parquet") if not p.name.startswith((".", "_"))}
        names, ids = self._known.pop((folder, key), (set(), set()))
        if names - files:
            names, ids = set(), set()
        new = sorted(files - names)
        if new:
            table = ds.dataset([str(folder / n) for n in new], format="parquet")
            ids.update(table.to_table(columns=[key]).column(key).to_pylist())
            names.update(new)
        self._known[(folder, key)] = (names, ids)
        while len(self._known) > self.folders:
            self._known.popitem(last=False)
        return ids

    def add(self, folder: Path, key: str, name: str, ids: Iterable[str]) -> None:
        """Record a file this process wrote (call after __call__ for its folder)."""
        known = self._known.get((folder, key))
        if known is not None:
            known[0].add(name)
            known[1].update(ids)


_existing_ids = _WrittenIds()


def _set_aside(rejected: list[dict[str, Any]], table: _Table, out_dir: Path) -> None:
    """Unreadable entries are kept for a person to look at instead of blocking the group."""
    folder = out_dir / "rejected"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{table.folder}-{rejected[0]['id']}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rejected))
    logger.warning("%d unreadable %s entries set aside in %s", len(rejected), table.folder, path)


def _text(raw: Any) -> str | None:
    if isinstance(raw, bytes):
        return raw.decode(errors="replace")
    return None if raw is None else str(raw)


@dataclass(frozen=True)
class StreamState:
    """A stream's entries, and of the offline group: delivered but not acknowledged
    (pending) and not yet delivered (lag; None when Redis cannot tell)."""

    length: int
    pending: int
    lag: int | None


def _id(value: Any) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else str(value)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def committed_floor(client: redis.Redis, stream: str) -> str | None:
    """The oldest entry id any consumer group of `stream` still needs: its oldest pending
    entry, or the one after its last delivered; None without groups (nothing is trimmed
    when no consumer has committed anything)."""
    groups: Any = client.xinfo_groups(stream)
    floors = []
    for group in groups:
        if group["pending"]:
            summary: Any = client.xpending(stream, group["name"])
            floors.append(_id(summary["min"]))
        else:
            ms, seq = _id(group["last-delivered-id"])
            floors.append((ms, seq + 1))
    if not floors:
        return None
    ms, seq = min(floors)
    return f"{ms}-{seq}"


def trim_committed(client: redis.Redis, stream: str) -> int:
    """Delete the entries every consumer group has acknowledged (they are in Parquet);
    returns how many went."""
    floor = committed_floor(client, stream)
    if floor is None:
        return 0
    return int(client.xtrim(stream, minid=floor, approximate=False))  # type: ignore[arg-type]


def stream_state(client: redis.Redis, stream: str, group: str = GROUP) -> StreamState:
    """Length of `stream` and the offline group's pending count and lag (Redis >= 7)."""
    length = int(client.xlen(stream))  # type: ignore[arg-type]
    try:
        groups: Any = client.xinfo_groups(stream)
    except ResponseError:  # no such stream yet
        return StreamState(length, 0, length)
    for info in groups:
        name = info["name"]
        if (name.decode() if isinstance(name, bytes) else name) == group:
            lag = info.get("lag")
            return StreamState(length, int(info["pending"]), None if lag is None else int(lag))
    return StreamState(length, 0, length)  # no consumer yet: everything waits
