"""Seeding the serving app's per-user state from the clean events (the batch history).

clean events (data/clean/events, hive-partitioned by event_date) -> seen:<user> and
purchased:<user> sets, recent:<user> lists (each user's newest events, the same JSON as
`EventWriter` pushes, merged with whatever live events the list already holds) and
history:<user> hashes (per item: `n:<item>` events, `t:<item>` epoch seconds of the
newest; `EventWriter` keeps them up to date) -> the `history:loaded_at` stamp with a
fingerprint of the files read. A second call over the same files finds the stamp and does
nothing, so every replica may call it at start-up.

The history hashes are what the ranker's per-(user, item) history features are computed
from on the request path (`UserHistory.features`, `tailwise.repeats.history_from_counts`),
where the user's past items come from as candidates when repeats are allowed, and the
query tower's item_history input (`UserHistory.latest`: the newest items by their
newest event).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis

from serving.events import event_json
from serving.keys import RECENT_MAX, RECENT_TTL_SECONDS, Keys
from tailwise.features.tower_inputs import latest_items
from tailwise.ingest.events import CLEAN_COLUMNS
from tailwise.repeats import history_from_counts

PIPELINE_COMMANDS = 5000
LAYOUT = 2  # the stamp's layout: 2 added the history hashes (older stamps load again)


@dataclass(frozen=True)
class UserHistory:
    """One user's per-item history, read from their history hash."""

    items: np.ndarray  # object: item ids
    counts: np.ndarray  # float64: events with each item
    last: np.ndarray  # float64: epoch seconds of the newest

    @classmethod
    def decode(cls, raw: Any) -> UserHistory:
        """From HGETALL's reply, a dict (redis-py) or a flat field, value list (RESP):
        fields `n:<item>` and `t:<item>`."""
        counts: dict[str, float] = {}
        last: dict[str, float] = {}
        pairs: list[tuple[Any, Any]]
        if isinstance(raw, dict):
            pairs = list(raw.items())
        else:
            flat = list(raw or [])
            pairs = list(zip(flat[::2], flat[1::2], strict=True))
        for field_, value in pairs:
            name = field_.decode() if isinstance(field_, bytes) else str(field_)
            kind, _, item = name.partition(":")
            if kind == "n":
                counts[item] = float(value)
            elif kind == "t":
                last[item] = float(value)
        items = sorted(counts.keys() | last.keys())
        return cls(
            np.array(items, dtype=object),
            np.array([counts.get(i, 0.0) for i in items], dtype=np.float64),
            np.array([last.get(i, np.nan) for i in items], dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.items)

    def features(self, item_ids: Sequence[str] | np.ndarray, now_seconds: float) -> np.ndarray:
        """(len(item_ids), 2) float64: HISTORY_FEATURES of each item for this user at
        `now_seconds` (0 events and NaN days for an item the user never had)."""
        at = {str(i): n for n, i in enumerate(self.items)}
        rows = np.array([at.get(str(i), -1) for i in item_ids], dtype=np.int64)
        had = rows >= 0
        count = np.zeros(len(rows), dtype=np.float64)
        last = np.full(len(rows), np.nan, dtype=np.float64)
        count[had] = self.counts[rows[had]]
        last[had] = self.last[rows[had]]
        return history_from_counts(count, last, now_seconds)

    def latest(self, m: int) -> list[str]:
        """The query tower's item_history input: the user's `m` newest items, newest first
        (tailwise.features.tower_inputs.latest_items, the definition training uses)."""
        return latest_items(self.items, self.last, m)

    def favourites(self, n: int) -> list[str]:
        """The user's `n` past items to offer again: the most recent first, then the most
        frequent, then by id (a stable order)."""
        if n <= 0 or not len(self):
            return []
        last = np.nan_to_num(self.last, nan=-np.inf)
        order = np.lexsort((self.items.astype(str), -self.counts, -last))
        return [str(i) for i in self.items[order[:n]]]


def fingerprint(events_dir: Path) -> str:
    """Hash of the clean event files' relative names and sizes (changes on every rebuild)."""
    files = sorted(p for p in Path(events_dir).rglob("*.parquet") if p.is_file())
    listing = "\n".join(f"{p.relative_to(events_dir)}:{p.stat().st_size}" for p in files)
    return hashlib.sha1(listing.encode()).hexdigest()


def bootstrap_history(
    client: redis.Redis,
    keys: Keys,
    clean_dir: Path,
    purchase_types: Sequence[str] = ("purchase",),
    recent: int = 20,
) -> int:
    """Load seen/purchased sets and recent lists from clean events; returns the number of
    events read, or 0 when the stamp shows these exact files were loaded already."""
    events_dir = Path(clean_dir) / "events"
    if not events_dir.is_dir():
        raise FileNotFoundError(f"{events_dir} not found: run `tailwise ingest` first")
    stamp_value = fingerprint(events_dir)
    stamp = client.get(keys.history_loaded_at)
    if isinstance(stamp, bytes) and _stamped(stamp) == (stamp_value, LAYOUT):
        return 0
    events = pd.read_parquet(events_dir, columns=CLEAN_COLUMNS)
    commands: list[tuple[str, tuple[Any, ...]]] = [
        ("sadd", (keys.seen(user), *items)) for user, items in _items_by_user(events)
    ]
    bought = events.loc[events["event_type"].isin(list(purchase_types))]
    commands += [("sadd", (keys.purchased(user), *items)) for user, items in _items_by_user(bought)]
    commands += _history_commands(keys, events)
    _run(client, commands)
    newest = _newest(events, recent)
    live = _read_lists(client, keys, list(newest))
    commands = []
    for user, texts in newest.items():
        merged = _merge(texts, live[user])
        commands.append(("delete", (keys.recent(user),)))
        commands.append(("rpush", (keys.recent(user), *merged)))
        commands.append(("expire", (keys.recent(user), RECENT_TTL_SECONDS)))
    _run(client, commands)
    client.set(
        keys.history_loaded_at,
        json.dumps(
            {
                "fingerprint": stamp_value,
                "layout": LAYOUT,
                "loaded_at": datetime.now(UTC).isoformat(),
                "events": len(events),
                "users": len(newest),
            }
        ),
    )
    return len(events)


def _stamped(stamp: bytes) -> tuple[str, int] | None:
    try:
        loaded = json.loads(stamp)
        return str(loaded["fingerprint"]), int(loaded.get("layout", 1))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _history_commands(keys: Keys, events: pd.DataFrame) -> list[tuple[str, tuple[Any, ...]]]:
    """Per user, the history hash rebuilt from the clean events: per item the number of
    events (`user_item_history` counts every event type) and the newest one's time."""
    if events.empty:
        return []
    epoch = pd.Timestamp(0, tz="UTC")
    seconds = (pd.to_datetime(events["timestamp"], utc=True) - epoch) / pd.Timedelta(seconds=1)
    frame = pd.DataFrame(
        {"user_id": events["user_id"].astype(str), "item_id": events["item_id"].astype(str)}
    ).assign(seconds=seconds.to_numpy())
    stats = frame.groupby(["user_id", "item_id"], sort=True)["seconds"].agg(["size", "max"])
    commands: list[tuple[str, tuple[Any, ...]]] = []
    users = stats.index.get_level_values(0).to_numpy()
    items = stats.index.get_level_values(1).to_numpy()
    sizes, newest = stats["size"].to_numpy(), stats["max"].to_numpy()
    bounds = [*np.flatnonzero(np.r_[True, users[1:] != users[:-1]]).tolist(), len(users)]
    for a, b in pairwise(bounds):
        mapping: dict[str, Any] = {}
        for item, n, t in zip(items[a:b], sizes[a:b], newest[a:b], strict=True):
            mapping[f"n:{item}"] = int(n)
            mapping[f"t:{item}"] = repr(float(t))
        key = keys.history(str(users[a]))
        commands += [("delete", (key,)), ("hset", (key, None, None, mapping))]
    return commands


def _newest(events: pd.DataFrame, n: int) -> dict[str, list[str]]:
    """user -> JSON of their newest `n` events, newest first."""
    top = (
        events.sort_values(["user_id", "timestamp", "event_id"], ascending=[True, False, False])
        .groupby("user_id", sort=False)
        .head(n)
    )
    columns = {c: top[c].astype(object).where(top[c].notna(), None).tolist() for c in top}
    out: dict[str, list[str]] = {}
    for values in zip(*columns.values(), strict=True):
        record = dict(zip(columns, values, strict=True))
        out.setdefault(str(record["user_id"]), []).append(event_json(record))
    return out


def _items_by_user(events: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """(user, distinct item ids) for each user, without a Python step per event."""
    pairs = events[["user_id", "item_id"]].drop_duplicates().sort_values("user_id")
    users = pairs["user_id"].to_numpy()
    items = pairs["item_id"].to_numpy()
    if not len(users):
        return []
    bounds = [*np.flatnonzero(np.r_[True, users[1:] != users[:-1]]).tolist(), len(users)]
    return [(str(users[a]), items[a:b].tolist()) for a, b in pairwise(bounds)]


def _merge(history: list[str], live: list[bytes]) -> list[str]:
    """History and live entries, one per event_id, newest first, at most RECENT_MAX."""
    entries: dict[str, tuple[str, str]] = {}
    for text in [*(x.decode() for x in live), *history]:
        event = json.loads(text)
        entries.setdefault(str(event["event_id"]), (str(event["timestamp"]), text))
    ordered = sorted(entries.items(), key=lambda kv: (kv[1][0], kv[0]), reverse=True)
    return [text for _, (_, text) in ordered[:RECENT_MAX]]


def _read_lists(client: redis.Redis, keys: Keys, users: list[str]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for chunk in _chunks(users, PIPELINE_COMMANDS):
        pipe = client.pipeline(transaction=False)
        for user in chunk:
            pipe.lrange(keys.recent(user), 0, -1)
        out.update(zip(chunk, pipe.execute(), strict=True))
    return out


def _run(client: redis.Redis, commands: list[tuple[str, tuple[Any, ...]]]) -> None:
    for chunk in _chunks(commands, PIPELINE_COMMANDS):
        pipe = client.pipeline(transaction=False)
        for name, args in chunk:
            getattr(pipe, name)(*args)
        pipe.execute()


def _chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
