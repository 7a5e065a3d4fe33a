"""bootstrap_history: seen/purchased sets and recent lists from clean events, once per data."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import redis

from serving.events import EventWriter, event_json
from serving.history import UserHistory, bootstrap_history
from serving.keys import Keys
from tailwise.features.tower_inputs import items_before
from tailwise.repeats import HISTORY_FEATURES, user_item_history
from tests.serving.events_support import NOW, make_event, rules


def write_clean_events(clean: Path, rows: list[dict], name: str = "data_0") -> Path:
    """Clean events as ingestion writes them: events/event_date=YYYY-MM-DD/*.parquet."""
    frame = pd.DataFrame(rows)
    for c in ("value", "price", "weight"):
        frame[c] = frame[c].astype("float64")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).dt.as_unit("us")
    for day, part in frame.groupby(frame["timestamp"].dt.strftime("%Y-%m-%d")):
        folder = clean / "events" / f"event_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        part.to_parquet(folder / f"{name}.parquet", index=False)
    return clean


def history(n_per_user: int) -> list[dict]:
    rows = []
    for user in ("a", "b"):
        for i in range(n_per_user):
            kind = "purchase" if i % 4 == 3 else "product_view"
            minutes = -3000 + i * 90  # spread over several days
            rows.append(
                rules()
                .clean([make_event(user, f"i{i % 6}", minutes, event_type=kind)], NOW)
                .events[0]
            )
    return rows


def test_sets_and_recent_lists_are_loaded_then_skipped_while_the_data_is_unchanged(
    client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    rows = history(30)
    clean = write_clean_events(tmp_path / "clean", rows)
    assert bootstrap_history(client, keys, clean, recent=20) == 60
    assert client.smembers(keys.seen("a")) == {f"i{i}".encode() for i in range(6)}
    assert client.smembers(keys.purchased("a")) == {b"i3", b"i1", b"i5"}
    newest = sorted((r for r in rows if r["user_id"] == "b"), key=lambda r: r["timestamp"])[-20:]
    assert client.lrange(keys.recent("b"), 0, -1) == [
        event_json(r).encode() for r in reversed(newest)
    ]
    stamp = json.loads(client.get(keys.history_loaded_at) or b"{}")
    assert stamp["events"] == 60 and stamp["users"] == 2

    assert bootstrap_history(client, keys, clean) == 0  # same files: nothing to do
    write_clean_events(clean, rules().clean([make_event("c", "i9", -10)], NOW).events, "data_1")
    assert bootstrap_history(client, keys, clean) == 61  # a rebuild: loaded again
    assert client.smembers(keys.seen("c")) == {b"i9"}


def test_live_events_already_in_a_recent_list_are_kept(
    client: redis.Redis,
    keys: Keys,
    make_writer: Callable[..., EventWriter],
    tmp_path: Path,
) -> None:
    live = rules().clean([make_event("a", "live-item", 60)], NOW).events  # newer than the history
    make_writer().write(live)
    clean = write_clean_events(tmp_path / "clean", history(5))
    bootstrap_history(client, keys, clean)
    recent = [json.loads(x) for x in client.lrange(keys.recent("a"), 0, -1)]
    assert recent[0]["event_id"] == live[0]["event_id"] and len(recent) == 6
    stamps = [r["timestamp"] for r in recent]
    assert stamps == sorted(stamps, reverse=True)
    assert client.ttl(keys.recent("a")) > timedelta(days=1).total_seconds()


def _history_at(events: pd.DataFrame, user: str, items: list[str], at: pd.Timestamp) -> np.ndarray:
    pairs = pd.DataFrame({"user_id": user, "item_id": items})
    return user_item_history(events, at, pairs)[list(HISTORY_FEATURES)].to_numpy()


def test_history_hashes_give_the_offline_history_features(
    client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    rows = history(30)
    clean = write_clean_events(tmp_path / "clean", rows)
    bootstrap_history(client, keys, clean)
    events = pd.read_parquet(clean / "events")
    at = pd.Timestamp(NOW) + pd.Timedelta(hours=5)
    items = ["i0", "i3", "i5", "never-had"]
    for user in ("a", "b"):
        got = UserHistory.decode(client.hgetall(keys.history(user)))
        assert sorted(got.items) == [f"i{i}" for i in range(6)]
        np.testing.assert_allclose(
            got.features(items, at.timestamp()), _history_at(events, user, items, at), rtol=1e-9
        )
        assert np.isnan(got.features(["never-had"], at.timestamp())[0, 1])
        # The query tower's item_history input from the hash is what training computes
        # from the same events at that moment.
        asked = pd.DataFrame({"user_id": [user], "timestamp": [at]})
        assert got.latest(4) == items_before(events, asked, 4)[0] and len(got.latest(4)) == 4
    # the most recent past items come first among those offered again (user b's)
    latest_b = events[events["user_id"] == "b"].sort_values("timestamp")["item_id"]
    assert got.favourites(3) == list(dict.fromkeys(latest_b.iloc[::-1]))[:3]


def test_the_event_writer_keeps_the_history_hash_up_to_date(
    client: redis.Redis,
    keys: Keys,
    make_writer: Callable[..., EventWriter],
) -> None:
    writer = make_writer()
    first = rules().clean([make_event("h", "i1", -600), make_event("h", "i2", -300)], NOW).events
    writer.write(first)
    writer.write(first[:1])  # resent: counted once
    later = rules().clean([make_event("h", "i1", -60, event_type="purchase")], NOW).events
    older = rules().clean([make_event("h", "i1", -6000)], NOW).events  # late: keeps the newest
    writer.write(later)
    writer.write(older)
    events = pd.DataFrame(first + later + older)
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    got = UserHistory.decode(client.hgetall(keys.history("h")))
    at = pd.Timestamp(NOW)
    np.testing.assert_allclose(
        got.features(["i1", "i2"], at.timestamp()), _history_at(events, "h", ["i1", "i2"], at)
    )
    assert got.features(["i1"], at.timestamp())[0, 0] == 3
