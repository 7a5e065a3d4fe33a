"""The offline consumer: streams -> Parquet, once per id, surviving crashes at any point."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from typer.testing import CliRunner

from serving.events import EventWriter, event_json
from serving.keys import Keys
from tailwise.ingest.streams import EVENTS_SCHEMA, GROUP, consume
from tests.feast_project import ROOT
from tests.serving.events_support import NOW, REDIS_URL, make_event, rules


def clean_events(n: int, user: str = "u1") -> list[dict]:
    return rules().clean([make_event(user, f"i{i}", i) for i in range(n)], NOW).events


def served(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "events")


def test_events_land_in_date_partitions_with_the_clean_schema(
    client: redis.Redis, keys: Keys, make_writer: Callable[..., EventWriter], tmp_path: Path
) -> None:
    events = clean_events(4)
    make_writer().write(events)
    out = tmp_path / "served"
    result = consume(client, keys, out)
    assert (result.read, result.written, result.duplicates) == (4, 4, 0)
    files = list((out / "events").glob("event_date=*/served-*.parquet"))
    assert files and all(pq.read_schema(f) == EVENTS_SCHEMA for f in files)
    table = served(out)
    assert str(table["timestamp"].dtype) == "datetime64[us, UTC]"
    assert table["weight"].dtype == "float64" and table["value"].dtype == "float64"
    assert sorted(table["event_id"]) == sorted(e["event_id"] for e in events)
    row = table.set_index("event_id").loc[events[0]["event_id"]]
    assert row["timestamp"] == pd.Timestamp(events[0]["timestamp"])
    assert client.xpending(keys.events, GROUP)["pending"] == 0


def test_the_same_event_twice_gives_one_row_however_often_it_is_consumed(
    client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    (event,) = clean_events(1)
    for _ in range(2):
        client.xadd(keys.events, {"e": event_json(event)})
    out = tmp_path / "served"
    first = consume(client, keys, out)
    assert (first.read, first.written, first.duplicates) == (2, 1, 1)
    assert consume(client, keys, out).read == 0
    client.xadd(keys.events, {"e": event_json(event)})  # a replay after a Redis outage
    later = consume(client, keys, out)
    assert (later.read, later.written, later.duplicates) == (1, 0, 1)
    assert len(served(out)) == 1


def test_entries_a_crashed_consumer_read_but_never_acknowledged_are_written(
    client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    events = clean_events(3)
    for e in events:
        client.xadd(keys.events, {"e": event_json(e)})
    consume(client, keys, tmp_path / "warmup", count=1)  # creates the group, takes event 0
    # Another consumer reads the rest and dies before writing anything.
    client.xreadgroup(GROUP, "crashed", {keys.events: ">"}, count=10)
    assert client.xpending(keys.events, GROUP)["pending"] == 2
    out = tmp_path / "served"
    assert consume(client, keys, out, claim_idle_ms=60_000).read == 0  # not idle long enough
    result = consume(client, keys, out, claim_idle_ms=0)
    assert (result.read, result.written) == (2, 2)
    assert client.xpending(keys.events, GROUP)["pending"] == 0


def test_a_crash_between_writing_and_acknowledging_writes_no_duplicate(
    client: redis.Redis, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for e in clean_events(3):
        client.xadd(keys.events, {"e": event_json(e)})
    out = tmp_path / "served"

    def crash(*args: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(client, "xack", crash)
    with pytest.raises(RuntimeError):
        consume(client, keys, out)
    monkeypatch.undo()
    assert len(served(out)) == 3
    again = consume(client, keys, out)  # the same entries, still pending, come back
    assert (again.read, again.written, again.duplicates) == (3, 0, 3)
    assert len(served(out)) == 3 and client.xpending(keys.events, GROUP)["pending"] == 0


def test_the_request_log_is_written_by_date_and_deduplicated(
    client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    entry = {
        "request_id": "r1",
        "ts": "2026-10-01T10:00:00+00:00",
        "user_id": "u1",
        "model_version": "v3",
        "items": [{"item_id": "i1", "score": 0.9}],
        "features": {"views_7d": 3},
        "k": 10,
    }
    for e in (entry, entry, {**entry, "request_id": "r2", "ts": 1790000000}):
        client.xadd(keys.served, {"r": json.dumps(e)})
    out = tmp_path / "served"
    result = consume(client, keys, out).requests
    assert result is not None and (result.read, result.written, result.duplicates) == (3, 2, 1)
    table = pd.read_parquet(out / "requests" / "date=2026-10-01")
    assert list(table["request_id"]) == ["r1"]
    assert json.loads(table["items"].iat[0]) == entry["items"]
    assert json.loads(table["features"].iat[0]) == {"views_7d": 3}
    assert json.loads(table["extra"].iat[0]) == {"k": 10}
    assert len(pd.read_parquet(out / "requests")) == 2


def test_unreadable_entries_are_set_aside_not_retried_forever(
    client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    client.xadd(keys.events, {"e": "{not json"})
    client.xadd(keys.events, {"e": json.dumps({"event_id": "x"})})  # no user, item, time
    client.xadd(keys.events, {"e": event_json(clean_events(1)[0])})
    out = tmp_path / "served"
    result = consume(client, keys, out)
    assert (result.read, result.written, result.rejected) == (3, 1, 2)
    (aside,) = (out / "rejected").iterdir()
    assert len(aside.read_text().splitlines()) == 2
    assert client.xpending(keys.events, GROUP)["pending"] == 0


def test_the_cli_moves_both_streams_once(
    client: redis.Redis, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer

    from serving.commands import register

    for e in clean_events(3):
        client.xadd(keys.events, {"e": event_json(e)})
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("TAILWISE_FEAST_PROJECT", keys.project)
    monkeypatch.setenv("TAILWISE_FEATURE_REPO", str(ROOT / "feature_repo"))
    monkeypatch.setenv("TAILWISE_FEAST_REGISTRY", str(tmp_path / "registry.db"))
    app = typer.Typer()
    app.command()(lambda: None)  # a second command keeps `events` a sub-command
    register(app)
    out = tmp_path / "served"
    result = CliRunner().invoke(app, ["events", "consume", "--once", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "written 3" in result.output and len(served(out)) == 3

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1")
    result = CliRunner().invoke(app, ["events", "consume", "--once", "--out", str(out)])
    assert result.exit_code == 5 and "Redis does not answer" in result.output


def test_each_written_file_is_read_once_and_other_writers_files_still_count(
    client: redis.Redis, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tailwise.ingest.streams as streams

    opened: list[str] = []
    real = streams.ds.dataset

    def dataset(paths, **kwargs):  # type: ignore[no-untyped-def]
        opened.extend(Path(p).name for p in paths)
        return real(paths, **kwargs)

    monkeypatch.setattr(streams.ds, "dataset", dataset)
    monkeypatch.setattr(streams, "_existing_ids", streams._WrittenIds())
    out = tmp_path / "served"
    events = clean_events(6)
    for event in events[:3]:  # three passes, one file each
        client.xadd(keys.events, {"e": event_json(event)})
        assert consume(client, keys, out).written == 1
    assert opened == []  # its own files are known without reading them back
    folder = next((out / "events").glob("event_date=*"))
    # Another consumer (another process) wrote a file: it is read once, and its rows count.
    other = pd.read_parquet(next(folder.glob("served-*.parquet")))
    stranger = other.assign(event_id=events[3]["event_id"])
    pq.write_table(
        pa.Table.from_pandas(stranger, schema=EVENTS_SCHEMA, preserve_index=False),
        folder / "served-other.parquet",
    )
    for event in (events[3], events[3], events[4]):
        client.xadd(keys.events, {"e": event_json(event)})
    result = consume(client, keys, out)
    assert (result.read, result.written, result.duplicates) == (3, 1, 2)
    assert opened == ["served-other.parquet"]
    # A file that went away (an erasure rewrote the partition): the folder is read again.
    (folder / "served-other.parquet").unlink()
    opened.clear()
    client.xadd(keys.events, {"e": event_json(events[3])})
    assert consume(client, keys, out).written == 1  # no longer there, so written again
    assert sorted(opened) == sorted(p.name for p in folder.glob("served-*.parquet"))[:-1]
    assert sorted(served(out)["event_id"]) == sorted(e["event_id"] for e in events[:5])
