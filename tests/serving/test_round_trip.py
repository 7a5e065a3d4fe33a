"""The request path's own Redis round trip (RecommendGraph._round_trip) against the real
Redis: replies in order, errors raised as redis-py's, and a fresh connection after one."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import redis

from serving.graph import RecommendGraph
from serving.keys import Keys
from tailwise.features.online import resp_command


def _path(client: redis.Redis) -> Any:
    """What _round_trip reads of a graph: its client, connection and reply parser."""
    return SimpleNamespace(client=client, connection=None, replies=None)


def _trip(path: Any, *commands: bytes) -> list[Any]:
    return RecommendGraph._round_trip(path, list(commands))  # type: ignore[arg-type]


def test_replies_come_back_in_order(client: redis.Redis, keys: Keys) -> None:
    key, members = keys.seen("u1"), keys.purchased("u1")
    client.hset(key + ":h", mapping={"a": b"1", "b": b"\x00\xff" * 40_000})  # over one recv
    client.sadd(members, "i1", "i2")
    replies = _trip(
        path := _path(client),
        resp_command("HMGET", key + ":h", "a", "missing", "b"),
        resp_command("SMEMBERS", members),
        resp_command("GET", keys.seen("nobody")),
    )
    assert replies[0] == [b"1", None, b"\x00\xff" * 40_000]
    assert sorted(replies[1]) == [b"i1", b"i2"] and replies[2] is None
    assert _trip(path, resp_command("PING")) == [b"PONG"]  # the same connection again
    client.delete(key + ":h")


def test_an_error_reply_is_raised_and_the_next_call_reconnects(
    client: redis.Redis, keys: Keys
) -> None:
    path = _path(client)
    client.set(keys.model, "not a set")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        _trip(path, resp_command("SMEMBERS", keys.model), resp_command("PING"))
    assert _trip(path, resp_command("PING")) == [b"PONG"]


def test_a_dropped_connection_is_reopened(client: redis.Redis) -> None:
    path = _path(client)
    assert _trip(path, resp_command("PING")) == [b"PONG"]
    path.connection._sock.close()  # the server side gone, as after a Redis restart
    with pytest.raises(redis.ConnectionError):
        _trip(path, resp_command("PING"))
    assert _trip(path, resp_command("PING")) == [b"PONG"]


def test_no_server_is_a_connection_error(down_client: redis.Redis) -> None:
    with pytest.raises(redis.ConnectionError):
        _trip(_path(down_client), resp_command("PING"))
