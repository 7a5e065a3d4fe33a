"""Reading a window of the served log and events: partitions, bounds, JSON columns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from monitoring.windows import (
    Window,
    WindowDataError,
    feature_rows,
    first_served,
    load_events,
    load_requests,
    served_items,
)
from tests.monitoring import world
from tests.monitoring.world import event, request, write_events, write_requests

T = datetime(2026, 11, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def test_the_test_writer_matches_the_consumer_schema() -> None:
    from tailwise.ingest.streams import (  # the contract, read not used
        EVENTS_SCHEMA,
        REQUESTS_SCHEMA,
    )

    assert world.REQUESTS_SCHEMA == REQUESTS_SCHEMA
    assert world.EVENTS_SCHEMA == EVENTS_SCHEMA


def test_a_window_is_half_open_and_reads_only_its_days(tmp_path: Path) -> None:
    rows = [
        request("a", T - timedelta(seconds=1), "u1", ["i1"]),
        request("b", T, "u1", ["i1"], version="v2"),
        request("c", T + DAY - timedelta(microseconds=1), "u2", ["i2"]),
        request("d", T + DAY, "u2", ["i2"]),
    ]
    write_requests(tmp_path, rows)
    (tmp_path / "requests" / "date=2026-11-01" / ".tmp.parquet").write_text("half written")
    got = load_requests(tmp_path, Window(T, T + DAY))
    assert list(got["request_id"]) == ["b", "c"]
    assert list(load_requests(tmp_path, Window(T, T + DAY), "v1")["request_id"]) == ["c"]
    assert first_served(tmp_path, "v1") == T - timedelta(seconds=1)
    assert first_served(tmp_path, "v9") is None
    assert load_requests(tmp_path / "none", Window(T, T + DAY)).empty


def test_feature_rows_and_served_items_unpack_the_json_columns(tmp_path: Path) -> None:
    rows = [
        request("a", T, "u1", ["i1", "i2"], [0.9, 0.5], {"age": 30, "country": "DE"}),
        request("b", T + timedelta(hours=1), "u2", ["i3"], [0.1], None, cold_start=True),
    ]
    write_requests(tmp_path, rows)
    requests = load_requests(tmp_path, Window(T, T + DAY))
    features = feature_rows(requests)
    assert features.to_dict("records") == [{"request_id": "a", "age": 30, "country": "DE"}]
    items = served_items(requests)
    assert list(items["item_id"]) == ["i1", "i2", "i3"]
    assert list(items["rank"]) == [1, 2, 1]
    assert list(items["score"]) == [0.9, 0.5, 0.1]
    assert list(items["cold_start"]) == [False, False, True]
    assert str(items["ts"].dtype).startswith("datetime64") and items["ts"].dt.tz is not None
    nothing = load_requests(tmp_path, Window(T - DAY, T))
    assert list(feature_rows(nothing).columns) == ["request_id"] and feature_rows(nothing).empty
    assert served_items(nothing).empty and "score" in served_items(nothing).columns


def test_bad_rows_and_files_are_errors_that_say_where(tmp_path: Path) -> None:
    write_requests(tmp_path, [request("a", T, "u1", ["i1", "i2"], [0.9])])
    with pytest.raises(WindowDataError, match="request a: 1 scores for 2 items"):
        served_items(load_requests(tmp_path, Window(T, T + DAY)))
    folder = tmp_path / "events" / "event_date=2026-11-01"
    write_events(tmp_path / "events", [event("u1", "i1", T)])
    table = pq.read_table(next(folder.glob("*.parquet"))).drop(["item_id"])
    pq.write_table(table, folder / "part-0.parquet")
    with pytest.raises(WindowDataError, match=r"part-0.parquet lacks column\(s\) \['item_id'\]"):
        load_events(tmp_path / "events", Window(T, T + DAY))
    with pytest.raises(WindowDataError, match="is not after its start"):
        Window(T, T)
