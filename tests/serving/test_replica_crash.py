"""`kill -9` of the serving replica under load (bench/replica_crash.py's scenario against the
session's served app): Ray Serve starts a new replica, every event answered 202 is in the
durable stream, and requests fail only while no replica is up. The app is ready again
before the test ends, so the tests after it find it serving."""

from __future__ import annotations

import pandas as pd
import pytest
import redis

from bench.replica_crash import crash_during_load, stream_event_ids
from serving.keys import Keys
from serving.server import replica_pids, wait_ready
from tests.serving.conftest import ServedApp, ServedWorld

pytestmark = pytest.mark.slow


def test_kill_9_of_the_replica_loses_no_acknowledged_event(
    served_app: ServedApp, served_world: ServedWorld
) -> None:
    users = sorted(
        pd.read_parquet(served_world.features / "user_profile.parquet")["user_id"].astype(str)
    )
    items = sorted(pd.read_parquet(served_world.clean / "items.parquet")["item_id"].astype(str))
    before = replica_pids()
    try:
        crash = crash_during_load(
            served_app.url, served_app.write_key, users, items, threads=3, before=3, after=3
        )
    finally:  # whatever happened, the next tests need the app serving
        wait_ready(served_app.url, 300)
    assert before == [crash.killed_pid]
    assert crash.restart_s is not None, "no new replica became ready"
    assert crash.new_pids and crash.killed_pid not in replica_pids()
    figures = crash.figures()
    during, outside = crash.errors()
    assert outside == [], f"errors outside the restart window: {outside[:5]}"
    assert figures["sent_events"] > 0 and crash.acknowledged()
    ready_at = crash.ready_at
    assert any(c.sent > ready_at for c in crash.calls if c.status == 202)
    stream = Keys(str(served_world.settings.feast_project)).events
    in_stream = set(stream_event_ids(redis.Redis.from_url(served_world.redis.url), stream))
    lost = crash.acknowledged() - in_stream
    assert not lost, f"{len(lost)} acknowledged events are not in the stream: {sorted(lost)[:5]}"
    print(f"replica restart {crash.restart_s} s, {len(during)} errors meanwhile: {figures}")
