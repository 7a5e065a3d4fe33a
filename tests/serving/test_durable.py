"""Durable acknowledgement: an event the writer acknowledged survives `kill -9` of Redis;
the streams are trimmed once the consumer committed them; `tailwise serve` refuses a
Redis that can lose acknowledged events."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import redis

from serving.config import ServingConfig
from serving.events import EventWriter
from serving.keys import Keys
from serving.metrics import ServingMetrics
from serving.server import ServeError, check_durability
from tailwise.ingest.streams import GROUP, consume, stream_state
from tailwise.redis_server import Durability, durability
from tailwise.settings import Settings
from tests.conftest import PrivateRedis
from tests.serving.events_support import NOW, make_event, rules


@pytest.mark.integration
def test_acknowledged_events_survive_kill_9_of_redis(
    redis_server: Callable[..., PrivateRedis],
    keys: Keys,
    make_writer: Callable[..., EventWriter],
    tmp_path: Path,
) -> None:
    server = redis_server()
    conn = redis.Redis.from_url(server.url)
    assert durability(conn).durable
    writer = make_writer(conn)
    acknowledged: list[str] = []
    stop = threading.Event()

    def load() -> None:  # events keep arriving while Redis is killed
        n = 0
        while not stop.is_set() and n < 5000:
            batch = rules().clean([make_event(f"u{n % 7}", f"i{n % 3 + 1}", n / 100)], NOW)
            try:
                result = writer.write(batch.events)
            except redis.RedisError:
                break
            if result.spilled:  # Redis is gone: the outbox took it, not the stream
                break
            acknowledged.extend(result.event_ids)
            n += 1

    thread = threading.Thread(target=load)
    thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()
    stop.set()
    thread.join(timeout=30)
    server.restart()
    out = tmp_path / "served"
    while consume(conn, keys, out).read:
        pass
    assert len(acknowledged) >= 300
    assert (out / "events").exists(), "Redis came back without any acknowledged event"
    rows = pd.read_parquet(out / "events")
    assert set(acknowledged) <= set(rows["event_id"]), "an acknowledged event was lost"
    assert not rows["event_id"].duplicated().any()


@pytest.mark.integration
def test_streams_are_trimmed_once_committed_and_lag_is_reported(
    redis_server: Callable[..., PrivateRedis],
    keys: Keys,
    make_writer: Callable[..., EventWriter],
    tmp_path: Path,
) -> None:
    conn = redis.Redis.from_url(redis_server().url)
    writer = make_writer(conn)
    writer.write(rules().clean([make_event("u1", "i1", m) for m in range(5)], NOW).events)
    assert stream_state(conn, keys.events).lag == 5  # no consumer yet: all wait
    metrics = ServingMetrics()
    metrics.watch_streams(conn, {"events": keys.events, "served": keys.served})
    assert 'tailwise_consumer_lag{stream="events"} 5.0' in metrics.render().decode()
    consume(conn, keys, tmp_path / "served", count=3)
    state = stream_state(conn, keys.events)
    assert (state.length, state.pending, state.lag) == (2, 0, 2)
    # A second group that has read nothing keeps everything it has not read.
    conn.xgroup_create(keys.events, "other", id="0")
    writer.write(rules().clean([make_event("u2", "i2", m) for m in range(3)], NOW).events)
    consume(conn, keys, tmp_path / "served")
    assert conn.xlen(keys.events) == 5
    conn.xgroup_destroy(keys.events, "other")
    consume(conn, keys, tmp_path / "served")  # nothing new, but the trim runs on a batch
    writer.write(rules().clean([make_event("u3", "i3")], NOW).events)
    consume(conn, keys, tmp_path / "served")
    assert conn.xlen(keys.events) == 0
    assert conn.xpending(keys.events, GROUP)["pending"] == 0


@pytest.mark.integration
def test_serve_refuses_or_warns_about_a_redis_without_fsync(
    redis_server: Callable[..., PrivateRedis],
) -> None:
    server = redis_server(persist=False)
    settings = Settings().model_copy(update={"redis_url": server.url})
    with pytest.raises(ServeError, match="appendonly no"):
        check_durability(ServingConfig(), settings)
    warned = check_durability(ServingConfig(redis_durability="warn"), settings)
    assert warned is not None and "--appendonly yes" in warned
    conn = redis.Redis.from_url(server.url)
    conn.config_set("appendonly", "yes")
    conn.config_set("appendfsync", "everysec")
    with pytest.raises(ServeError, match="everysec"):
        check_durability(ServingConfig(), settings)
    conn.config_set("appendfsync", "always")
    assert check_durability(ServingConfig(), settings) is None


@pytest.mark.unit
def test_waitaof_makes_everysec_durable_from_redis_7_2() -> None:
    assert not Durability(True, "everysec", (7, 0, 15)).durable
    assert Durability(True, "everysec", (7, 2, 0)).durable
    assert not Durability(False, "always", (7, 4, 0)).durable
    assert Durability(True, "always", (6, 2, 0)).problem("redis://x") is None
