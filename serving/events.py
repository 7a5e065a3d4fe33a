"""The events path: clean events (serving.event_rules) -> Redis (stream, per-user state, features).

`EventWriter.write` sends the clean events in one pipelined round trip (stream entry,
recent list without duplicates, seen/purchased sets, cache invalidation, and the recent
list read back), computes each user's session state with `realtime_state` (the one
definition of those features) and writes it in Feast's push layout in a second round trip
(which clears the response cache again, closing the gap between the two). When Redis
cannot be reached, the events are committed to the `SpillLog` outbox instead; `replay`
moves them on later.

On a Redis Cluster (the client a `redis.cluster.RedisCluster`) the same pipeline is split
by node by redis-py; each user's keys share a slot (serving.keys), so the history script
runs on one node (sent per user ahead of the pipeline: redis-py pipelines no scripts on a
cluster). The stream entries go to each user's event partition, and are
acknowledged only once the master owning the partition has passed them to a replica:
they are appended with WAIT 1 (WAITAOF 1 1 where the server needs it) on that master's own
connection, since WAIT counts the writes of the connection it is sent on. Entries a
master could not replicate in time (no replica, a failover under way) go to the outbox
too: the consumer drops the repeat when both arrive.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from serving.event_rules import iso
from serving.keys import RECENT_MAX, RECENT_TTL_SECONDS, Keys
from serving.spill import SpillLog
from tailwise.features.online import OnlineFeatures
from tailwise.features.realtime import realtime_state
from tailwise.ingest.events import CLEAN_COLUMNS
from tailwise.ingest.streams import EVENT_LINKS
from tailwise.redis_clients import CLUSTER_UNAVAILABLE, is_cluster

logger = logging.getLogger(__name__)

REALTIME_VIEW = "user_realtime_session"
# Errors that mean "Redis cannot take writes now" (the events are spilled, not lost).
UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,
    *CLUSTER_UNAVAILABLE,
)
# Per event (ARGV: JSON, item, epoch seconds, ...): unless the event is already in the
# user's recent list (KEYS[1]; a resent or replayed event), one more event with the item
# in the history hash (KEYS[2]) and its newest time kept. Runs before the list is updated.
_HISTORY_SCRIPT = """
for i = 1, #ARGV, 3 do
  if not redis.call('LPOS', KEYS[1], ARGV[i]) then
    redis.call('HINCRBY', KEYS[2], 'n:' .. ARGV[i + 1], 1)
    local last = redis.call('HGET', KEYS[2], 't:' .. ARGV[i + 1])
    if not last or tonumber(last) < tonumber(ARGV[i + 2]) then
      redis.call('HSET', KEYS[2], 't:' .. ARGV[i + 1], ARGV[i + 2])
    end
  end
end
return 0
"""


@dataclass(frozen=True)
class WriteResult:
    accepted: int
    event_ids: list[str]
    spilled: int = 0


def event_json(event: Mapping[str, Any], links: bool = False) -> str:
    """The JSON of a clean event as it goes into the stream, recent lists and the outbox;
    `links`: with the request id, slot and position it was sent with, when it has them
    (the stream and the outbox keep them for attribution, the recent lists do not)."""
    body = {c: (iso(event[c]) if c == "timestamp" else event[c]) for c in CLEAN_COLUMNS}
    if links:
        body |= {c: event[c] for c in EVENT_LINKS if event.get(c) is not None}
    return json.dumps(body, separators=(",", ":"))


def event_from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The clean event of a decoded `event_json` record."""
    return {**record, "timestamp": datetime.fromisoformat(record["timestamp"])}


class EventWriter:
    """Clean events into Redis (two round trips), or into the spill log when Redis is down."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        online: OnlineFeatures,
        item_category: Mapping[str, str | None],
        spill: SpillLog,
        n_items: int = 10,
        purchase_types: Sequence[str] = ("purchase",),
        cooldown_seconds: float = 1.0,
    ):
        self.client, self.keys, self.online, self.spill = client, keys, online, spill
        self.n_items, self.purchase_types = n_items, frozenset(purchase_types)
        self.categories = pd.Series(dict(item_category), dtype=object)
        # After a failure, writes go straight to the spill log for this long instead of
        # waiting on a connect timeout per request; `replay` probes Redis meanwhile.
        self.cooldown_seconds = cooldown_seconds
        self._down_until = 0.0
        self.cluster = is_cluster(client)
        self._history = client.register_script(_HISTORY_SCRIPT)
        # Redis >= 7.2 with fsync less often than per write: each batch waits until the
        # local append-only file has it (WAITAOF 1 0), else it goes to the spill log too.
        self.wait_aof_ms: int | None = None
        # On a cluster: how long a master may take to pass stream entries to a replica.
        self.wait_replica_ms = 1000

    def write(self, events: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Write clean events; accepted into Redis, or spilled (durably) when it is down."""
        ids = [str(e["event_id"]) for e in events]
        if not events:
            return WriteResult(0, [], 0)
        if time.monotonic() >= self._down_until:
            try:
                unconfirmed = self._send(events)
                if unconfirmed:  # in Redis, but not yet safe there: the outbox keeps them too
                    self.spill.append([json.loads(event_json(e, links=True)) for e in unconfirmed])
                return WriteResult(len(events), ids, 0)
            except UNAVAILABLE as exc:
                logger.warning("Redis unavailable (%s): spilling %d event(s)", exc, len(events))
                self._down_until = time.monotonic() + self.cooldown_seconds
        self.spill.append([json.loads(event_json(e, links=True)) for e in events])
        return WriteResult(len(events), ids, len(events))

    def replay(self, max_batch: int = 500) -> int:
        """Move spilled events into Redis through the same path, oldest first; each batch
        leaves the log only after Redis took it. Returns how many moved (stops quietly at
        the first Redis failure: call it again later)."""
        moved = 0
        try:
            self.client.ping()  # not reachable: leave the log untouched
        except UNAVAILABLE:
            return 0
        while (batch := self.spill.claim(max_batch)) is not None:
            try:
                unconfirmed = self._send([event_from_record(r) for r in batch.records])
            except UNAVAILABLE as exc:
                logger.info("replay paused, Redis unavailable: %s", exc)
                self._down_until = time.monotonic() + self.cooldown_seconds
                batch.release()
                return moved
            if unconfirmed:  # sent again by the next replay; the consumer drops repeats
                logger.info("replay paused: %d event(s) not yet safe in Redis", len(unconfirmed))
                batch.release()
                return moved
            batch.commit()
            moved += len(batch.records)
        self._down_until = 0.0
        return moved

    def _send(self, events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Send `events`; returns those Redis took but cannot yet be relied on to keep
        (not synced or replicated in time)."""
        k = self.keys
        ordered = sorted(events, key=lambda e: (e["timestamp"], e["event_id"]))
        by_user: dict[str, list[tuple[Mapping[str, Any], str]]] = {}
        pipe = self.client.pipeline(transaction=False)
        for e in ordered:
            text = event_json(e)
            if not self.cluster:
                pipe.xadd(k.event_stream(e["user_id"]), {"e": event_json(e, links=True)})
            by_user.setdefault(e["user_id"], []).append((e, text))
        reads: dict[str, int] = {}  # user -> position of the LRANGE reply
        for user, pairs in by_user.items():
            mine = [e for e, _ in pairs]
            updates: list[Any] = []
            for text, e in {text: e for e, text in pairs}.items():  # a resent one once
                updates += [text, str(e["item_id"]), repr(_seconds(e["timestamp"]))]
            if self.cluster:
                # redis-py does not pipeline scripts on a cluster: the user's script runs on
                # its own (EVALSHA on the node of the user's slot, loaded there when new).
                self._history(keys=[k.recent(user), k.history(user)], args=updates)
            else:
                self._history(keys=[k.recent(user), k.history(user)], args=updates, client=pipe)
            for _, text in pairs:  # a resent or replayed event must not take two places
                pipe.lrem(k.recent(user), 0, text)
            # Oldest first: LPUSH puts each value at the head, so the newest ends first.
            pipe.lpush(k.recent(user), *(text for _, text in pairs))
            pipe.ltrim(k.recent(user), 0, RECENT_MAX - 1)
            pipe.expire(k.recent(user), RECENT_TTL_SECONDS)
            pipe.sadd(k.seen(user), *{e["item_id"] for e in mine})
            bought = {e["item_id"] for e in mine if e["event_type"] in self.purchase_types}
            if bought:
                pipe.sadd(k.purchased(user), *bought)
            pipe.delete(k.rec(user))
            reads[user] = len(pipe)
            pipe.lrange(k.recent(user), 0, -1)
        if self.wait_aof_ms is not None and not self.cluster:
            pipe.execute_command("WAITAOF", 1, 0, self.wait_aof_ms)
        replies = pipe.execute()
        unconfirmed: list[Mapping[str, Any]] = []
        if self.cluster:
            unconfirmed = self._append_replicated(ordered)
        elif self.wait_aof_ms is not None and int(replies[-1][0]) < 1:
            # Not on disk in time: the outbox keeps it too (the consumer drops a repeat).
            logger.warning("WAITAOF: %d event(s) not synced in time, spilled", len(events))
            unconfirmed = list(events)
        recent = {user: replies[i] for user, i in reads.items()}
        self._write_realtime(recent)
        return unconfirmed

    def _append_replicated(self, ordered: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Cluster: the stream entries, per master owning their partitions, in one round
        trip on that master's connection ending with WAIT (or WAITAOF); returns the events
        whose master did not confirm a replica copy in time. A master that is gone or a
        slot that moved (a failover) raises: the batch is spilled, and the next write
        finds the new owner in the slot map redis-py reloads."""
        by_node: dict[str, tuple[Any, list[Mapping[str, Any]]]] = {}
        for e in ordered:
            node = self.client.get_node_from_key(self.keys.event_stream(e["user_id"]))  # type: ignore[attr-defined]
            by_node.setdefault(node.name, (node, []))[1].append(e)
        unconfirmed: list[Mapping[str, Any]] = []
        for node, mine in by_node.values():
            pipe = self.client.get_redis_connection(node).pipeline(transaction=False)  # type: ignore[attr-defined]
            for e in mine:
                pipe.xadd(self.keys.event_stream(e["user_id"]), {"e": event_json(e, links=True)})
            if self.wait_aof_ms is not None:
                pipe.execute_command("WAITAOF", 1, 1, self.wait_aof_ms)
            else:
                pipe.execute_command("WAIT", 1, self.wait_replica_ms)
            try:
                replies = pipe.execute()
            except (RedisConnectionError, RedisTimeoutError, redis.ResponseError) as exc:
                # The master is gone or no longer owns the slot (MOVED, CLUSTERDOWN): the
                # batch is spilled, and redis-py reloads its slot map for the next write.
                self.client.nodes_manager.initialize()  # type: ignore[attr-defined]
                raise RedisConnectionError(f"{node.name}: {exc}") from exc
            confirmed = replies[-1][1] if self.wait_aof_ms is not None else replies[-1]
            if int(confirmed) < 1:
                logger.warning(
                    "%s: %d event(s) not replicated in time, kept in the outbox too",
                    node.name,
                    len(mine),
                )
                unconfirmed += mine
        return unconfirmed

    def _write_realtime(self, recent: Mapping[str, list[bytes]]) -> None:
        """Each user's state after their newest event, written like a Feast push; the
        response cache is cleared again so no answer computed before this write stays."""
        states = session_states(recent, self.categories, self.n_items)
        pipe = self.client.pipeline(transaction=False)
        online = copy.copy(self.online)
        online.client = pipe  # OnlineFeatures.write queues its HSET on the pipeline
        for user, (values, at) in states.items():
            online.write(user, REALTIME_VIEW, values, at=at)
            pipe.delete(self.keys.rec(user))
        pipe.execute()


def _seconds(ts: Any) -> float:
    """Epoch seconds of a clean event's timestamp (a datetime, UTC when naive)."""
    if isinstance(ts, datetime):
        return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()
    return float(pd.Timestamp(ts, tz="UTC").timestamp())


def session_states(
    recent: Mapping[str, Sequence[bytes | str]], categories: pd.Series, n_items: int
) -> dict[str, tuple[dict[str, Any], datetime]]:
    """user -> (real-time feature values after the newest event, valid-from time), from
    the users' recent lists (JSON events). A replayed event pushed twice counts once.

    This runs on every request: the frame is built from plain columns (no per-row pandas
    work), since `realtime_state` itself is most of the budget.
    """
    columns: dict[str, list[Any]] = {c: [] for c in _STATE_INPUT}
    done: set[tuple[str, str]] = set()
    for entries in recent.values():
        for raw in entries:
            event = json.loads(raw)
            key = (event["user_id"], event["event_id"])
            if key in done:
                continue
            done.add(key)
            for c in _STATE_INPUT:
                columns[c].append(event.get(c))
    if not done:
        return {}
    frame = pd.DataFrame(columns)
    stamps = columns["timestamp"]
    if all(len(t) == 32 and t.endswith("+00:00") for t in stamps):
        # iso()'s own output: the first 26 characters are the UTC wall time, which numpy
        # reads directly, without pandas' general ISO parser (this runs on every request).
        frame["timestamp"] = np.array([t[:26] for t in stamps], dtype="datetime64[us]")
    else:
        frame["timestamp"] = pd.to_datetime(stamps, utc=True, format="ISO8601")
    state = realtime_state(frame, categories, n_items)
    users = state["user_id"].to_numpy()
    last = np.flatnonzero(np.r_[users[1:] != users[:-1], True])  # rows sorted by user, time
    items = state["rt_last_items"].array
    category = state["rt_last_category"].to_numpy()
    counts = {c: state[c].to_numpy() for c in _STATE_COUNTS}
    valid_from = state["event_timestamp"].array
    out = {}
    for j in last:
        cat = category[j]
        values: dict[str, Any] = {
            "rt_last_items": [str(x) for x in items[j]],
            "rt_last_category": None if cat is None or pd.isna(cat) else str(cat),
            **{c: int(v[j]) for c, v in counts.items()},
        }
        out[str(users[j])] = (values, valid_from[j].to_pydatetime())
    return out


_STATE_INPUT = ("user_id", "item_id", "event_type", "timestamp", "event_id", "session_id")
_STATE_COUNTS = ("rt_session_events", "rt_hour_events", "rt_hour_carts")
