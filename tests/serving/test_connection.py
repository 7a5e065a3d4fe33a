"""The request path's own Redis connection (serving.connection) against the real Redis:
replies in order, sends read out of order, unclaimed sends read past or dropped, errors
raised as redis-py's, and a fresh connection after a failure."""

from __future__ import annotations

import pytest
import redis

from serving.connection import MAX_PENDING, RequestConnection
from serving.keys import Keys
from tailwise.features.online import resp_command

PING = resp_command("PING")


def test_replies_come_back_in_order(client: redis.Redis, keys: Keys) -> None:
    key, members = keys.seen("u1"), keys.purchased("u1")
    client.hset(key + ":h", mapping={"a": b"1", "b": b"\x00\xff" * 40_000})  # over one recv
    client.sadd(members, "i1", "i2")
    line = RequestConnection(client)
    replies = line.round_trip(
        [
            resp_command("HMGET", key + ":h", "a", "missing", "b"),
            resp_command("SMEMBERS", members),
            resp_command("GET", keys.seen("nobody")),
        ]
    )
    assert replies[0] == [b"1", None, b"\x00\xff" * 40_000]
    assert sorted(replies[1]) == [b"i1", b"i2"] and replies[2] is None
    assert line.round_trip([PING]) == [b"PONG"]  # the same connection again
    assert line.generation == 0
    client.delete(key + ":h")


def test_sends_can_be_read_in_any_order(client: redis.Redis, keys: Keys) -> None:
    line = RequestConnection(client)
    client.set(keys.model, "first")
    first = line.send([resp_command("GET", keys.model)])
    second = line.send([resp_command("ECHO", "second"), PING])
    third = line.send([resp_command("ECHO", "third")])
    assert line.receive(third) == [b"third"]  # reads the two before it on the way
    assert not line.pending
    assert line.receive(first) == [b"first"]
    assert line.receive(second) == [b"second", b"PONG"]


def test_an_unclaimed_send_is_read_past_by_the_next_read(client: redis.Redis) -> None:
    line = RequestConnection(client)
    dropped = line.send([resp_command("ECHO", "nobody reads this")])
    kept = line.send([resp_command("ECHO", "kept")])
    assert line.receive(kept) == [b"kept"]
    assert dropped.replies == [b"nobody reads this"] and not line.pending
    assert line.round_trip([PING]) == [b"PONG"]


def test_unread_sends_past_the_bound_start_the_connection_over(client: redis.Redis) -> None:
    line = RequestConnection(client)
    unread = [line.send([resp_command("ECHO", str(i))]) for i in range(MAX_PENDING)]
    assert line.generation == 0 and len(line.pending) == MAX_PENDING
    last = line.send([resp_command("ECHO", "last")])
    assert line.generation == 1 and list(line.pending) == [last]
    assert line.receive(last) == [b"last"]
    assert line.receive(unread[7]) == [b"7"]  # its owner after all: sent again


def test_an_error_reply_is_raised_and_the_connection_stays_in_step(
    client: redis.Redis, keys: Keys
) -> None:
    line = RequestConnection(client)
    client.set(keys.model, "not a set")
    failing = line.send([resp_command("SMEMBERS", keys.model), PING])
    after = line.send([resp_command("ECHO", "after")])
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        line.receive(failing)
    assert line.receive(after) == [b"after"] and line.generation == 0


def test_a_dropped_connection_is_reopened_and_pending_sends_go_again(
    client: redis.Redis,
) -> None:
    line = RequestConnection(client)
    assert line.round_trip([PING]) == [b"PONG"]
    waiting = line.send([resp_command("ECHO", "again")])
    line.connection._sock.close()  # the server side gone, as after a Redis restart
    with pytest.raises(redis.ConnectionError):
        line.round_trip([PING])
    assert not line.pending and line.generation == 1
    assert line.receive(waiting) == [b"again"]  # sent again on the new connection
    assert line.round_trip([PING]) == [b"PONG"]


def test_a_send_belongs_to_its_connection(client: redis.Redis) -> None:
    one, other = RequestConnection(client), RequestConnection(client)
    sent = one.send([PING])
    with pytest.raises(ValueError, match="another connection"):
        other.receive(sent)
    assert one.receive(sent) == [b"PONG"]


def test_no_server_is_a_connection_error(down_client: redis.Redis) -> None:
    line = RequestConnection(down_client)
    with pytest.raises(redis.ConnectionError):
        line.round_trip([PING])
    assert not line.pending
