"""Seeding the serving app's per-user state from the clean events (the batch history).

clean events (data/clean/events, hive-partitioned by event_date) -> seen:<user> and
purchased:<user> sets, and recent:<user> lists (each user's newest events, the same JSON
as `EventWriter` pushes, merged with whatever live events the list already holds) -> the
`history:loaded_at` stamp with a fingerprint of the files read. A second call over the
same files finds the stamp and does nothing, so every replica may call it at start-up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis

from serving.events import event_json
from serving.keys import RECENT_MAX, RECENT_TTL_SECONDS, Keys
from tailwise.ingest.events import CLEAN_COLUMNS

PIPELINE_COMMANDS = 5000


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
    if isinstance(stamp, bytes) and _stamped(stamp) == stamp_value:
        return 0
    events = pd.read_parquet(events_dir, columns=CLEAN_COLUMNS)
    commands: list[tuple[str, tuple[Any, ...]]] = [
        ("sadd", (keys.seen(user), *items)) for user, items in _items_by_user(events)
    ]
    bought = events.loc[events["event_type"].isin(list(purchase_types))]
    commands += [("sadd", (keys.purchased(user), *items)) for user, items in _items_by_user(bought)]
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
                "loaded_at": datetime.now(UTC).isoformat(),
                "events": len(events),
                "users": len(newest),
            }
        ),
    )
    return len(events)


def _stamped(stamp: bytes) -> str | None:
    try:
        return str(json.loads(stamp)["fingerprint"])
    except (ValueError, KeyError, TypeError):
        return None


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
