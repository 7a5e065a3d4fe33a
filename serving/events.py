"""The events path: API events -> ingestion rules -> Redis (stream, per-user state, features).

`EventRules.clean` applies the event contract (`tailwise.ingest.contract`, the rules batch
ingestion applies too) to request events, after moving merged user ids onto the surviving
id: a value a reject rule catches fails the whole batch, naming every bad field, before
anything is written; a value a null rule catches is emptied and reported as adjusted;
context is kept only with tracking consent.

`EventWriter.write` sends the clean events in one pipelined round trip (stream entry,
recent list without duplicates, seen/purchased sets, cache invalidation, and the recent
list read back), computes each user's session state with `realtime_state` (the one
definition of those features) and writes it in Feast's push layout in a second round trip
(which clears the response cache again, closing the gap between the two). When Redis
cannot be reached, the events are committed to the `SpillLog` outbox instead; `replay`
moves them on later.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from serving import api
from serving.keys import RECENT_MAX, RECENT_TTL_SECONDS, Keys
from serving.spill import SpillLog
from tailwise.features.online import OnlineFeatures
from tailwise.features.realtime import realtime_state
from tailwise.ingest.contract import (
    Action,
    Finding,
    event_rules,
    findings,
    parse_number,
    parse_timestamp,
)
from tailwise.ingest.events import CLEAN_COLUMNS
from tailwise.params import IngestParams
from tailwise.schema import CONTEXT_COLUMNS

logger = logging.getLogger(__name__)

REALTIME_VIEW = "user_realtime_session"
# Errors that mean "Redis cannot take writes now" (the events are spilled, not lost).
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)
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


class EventRejected(ValueError):
    """Some events break a reject rule of the contract; `problems` lists {index, field,
    value, problem} for each bad field, and nothing of the batch was written."""

    def __init__(self, problems: list[dict[str, Any]]):
        self.problems = problems
        shown = "; ".join(
            f"events[{p['index']}].{p['field']} = {p['value']!r}: {p['problem']}"
            for p in problems[:5]
        )
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{len(problems)} problem(s), nothing was written: {shown}{more}")


@dataclass(frozen=True)
class CleanEvents:
    """Events ready to write (CLEAN_COLUMNS dicts), and the values the contract's null rules
    emptied on the way: {index, field, value, problem} each, as batch ingestion records them."""

    events: list[dict[str, Any]]
    adjusted: list[dict[str, Any]]


@dataclass(frozen=True)
class WriteResult:
    accepted: int
    event_ids: list[str]
    spilled: int = 0


class ConsentBook:
    """Merged user ids and tracking consent, as the last ingest left them."""

    def __init__(self, tracking: Mapping[str, bool], merges: Mapping[str, str], default: bool):
        self._tracking, self._merges, self.default = dict(tracking), dict(merges), default

    @classmethod
    def empty(cls, params: IngestParams) -> ConsentBook:
        return cls({}, {}, params.consent_default)

    @classmethod
    def from_clean(cls, clean_dir: Path, params: IngestParams) -> ConsentBook:
        """From users.parquet (user_id, consent_tracking) and user_merges.parquet (user_id ->
        canonical_user_id) of an ingest output directory."""
        users_path = Path(clean_dir) / "users.parquet"
        if not users_path.exists():
            raise FileNotFoundError(f"{users_path} not found: run `tailwise ingest` first")
        users = pd.read_parquet(users_path, columns=["user_id", "consent_tracking"])
        tracking = dict(
            zip(users["user_id"], users["consent_tracking"].fillna(False).astype(bool), strict=True)
        )
        merges: dict[str, str] = {}
        merges_path = Path(clean_dir) / "user_merges.parquet"
        if merges_path.exists():
            m = pd.read_parquet(merges_path, columns=["user_id", "canonical_user_id"])
            merges = dict(zip(m["user_id"], m["canonical_user_id"], strict=True))
        return cls(tracking, merges, params.consent_default)

    def resolve(self, user_id: str) -> str:
        """The surviving id of a merged account (the id itself when not merged)."""
        seen = {user_id}
        while user_id in self._merges:
            user_id = self._merges[user_id]
            if user_id in seen:  # a cycle cannot come out of ingestion; stop rather than spin
                break
            seen.add(user_id)
        return user_id

    def tracking(self, user_id: str) -> bool:
        """May context (session, device, channel, country) be kept? Unknown: the default."""
        return bool(self._tracking.get(self.resolve(user_id), self.default))


class EventRules:
    """The event contract (tailwise.ingest.contract) applied to events arriving through the
    API, with batch ingestion's outcome for each bad value.

    A batch is all or nothing: when any event breaks a reject rule, EventRejected names
    every bad field of every event and nothing is written, so the client can correct and
    resend the whole batch (event ids make a resend harmless). Values a null rule catches
    are emptied, the event is kept, and `CleanEvents.adjusted` says which.
    """

    def __init__(self, params: IngestParams, consent: ConsentBook):
        self.params, self.consent = params, consent
        self.rules = event_rules(params)

    def clean(self, events: Sequence[api.Event], now: datetime) -> CleanEvents:
        """Clean events and the adjusted values, or EventRejected naming every bad field."""
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
        cleaned: list[dict[str, Any]] = []
        problems: list[dict[str, Any]] = []
        adjusted: list[dict[str, Any]] = []
        for i, event in enumerate(events):
            typed = self._typed(event)
            found = findings(self.rules, typed, now)
            notes = [_note(i, f, event) for f in found]
            if any(f.action is Action.REJECT for f in found):
                problems += notes
            elif not problems:
                cleaned.append(self._row(event, typed, {f.field for f in found}))
                adjusted += notes
        if problems:
            raise EventRejected(problems)
        return CleanEvents(cleaned, adjusted)

    def _typed(self, e: api.Event) -> dict[str, Any]:
        """The typed columns the contract's rules read (contract.py), from one API event."""
        source_user = _text(e.user_id)
        user_id = self.consent.resolve(source_user) if source_user else None
        ts = parse_timestamp(e.timestamp)
        return {
            "source_user_id": source_user,
            "user_id": user_id,
            "item_id": _text(e.item_id),
            "event_type": _lower(e.event_type),
            "raw_timestamp": e.timestamp,
            "ts": None if isinstance(ts, str) else ts,
            "raw_value": e.value,
            "parsed_value": parse_number(e.value),
            "raw_price": e.price,
            "parsed_price": parse_number(e.price),
            "country_code": (_text(e.country) or "").upper() or None,
            "tracked": bool(user_id) and self.consent.tracking(user_id or ""),
        }

    def _row(self, e: api.Event, t: Mapping[str, Any], nulled: set[str]) -> dict[str, Any]:
        """The clean event of an event whose typed columns passed every reject rule."""
        p, event_type = self.params, t["event_type"]
        value = None if "value" in nulled else t["parsed_value"]
        weight = p.event_weights[event_type]
        if event_type in p.value_weighted_types:
            weight *= (value or 0.0) / p.rating_scale_max
        row = {
            "event_id": e.event_id or event_id(t["user_id"], t["item_id"], event_type, t["ts"]),
            "user_id": t["user_id"],
            "item_id": t["item_id"],
            "event_type": event_type,
            "timestamp": t["ts"],
            "value": value,
            "price": None if "price" in nulled else t["parsed_price"],
            "weight": float(weight),
            **dict.fromkeys(CONTEXT_COLUMNS),
        }
        if t["tracked"]:
            row["session_id"] = _text(e.session_id)
            row["device"] = _lower(e.device)
            row["channel"] = _lower(e.channel)
            row["country"] = None if "country" in nulled else t["country_code"]
        return row


def _note(index: int, finding: Finding, event: api.Event) -> dict[str, Any]:
    """{index, field, value, problem} of one finding; the value as sent (JSON-safe)."""
    value = getattr(event, finding.field, None)
    problem = finding.reason
    if finding.field == "timestamp" and value is not None:
        parsed = parse_timestamp(value)
        if isinstance(parsed, str) and problem not in parsed:
            problem = f"{problem} ({parsed})"  # the parser's own detail
    if not isinstance(value, str | int | float | None):
        value = str(value)
    return {"index": index, "field": finding.field, "value": value, "problem": problem}


def event_id(user_id: str, item_id: str, event_type: str, ts: datetime) -> str:
    """The deterministic id of an event sent without one (same event, same id)."""
    key = f"{user_id}|{item_id}|{event_type}|{iso(ts)}"
    return "srv-" + hashlib.sha1(key.encode()).hexdigest()[:16]


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def event_json(event: Mapping[str, Any]) -> str:
    """The JSON of a clean event as it goes into the stream, recent lists and the outbox."""
    return json.dumps(
        {c: (iso(event[c]) if c == "timestamp" else event[c]) for c in CLEAN_COLUMNS},
        separators=(",", ":"),
    )


def event_from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The clean event of a decoded `event_json` record."""
    return {**record, "timestamp": datetime.fromisoformat(record["timestamp"])}


def _text(value: str | None) -> str | None:
    return (value or "").strip() or None


def _lower(value: str | None) -> str | None:
    text = _text(value)
    return text.lower() if text else None


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
        self._history = client.register_script(_HISTORY_SCRIPT)

    def write(self, events: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Write clean events; accepted into Redis, or spilled (durably) when it is down."""
        ids = [str(e["event_id"]) for e in events]
        if not events:
            return WriteResult(0, [], 0)
        if time.monotonic() >= self._down_until:
            try:
                self._send(events)
                return WriteResult(len(events), ids, 0)
            except UNAVAILABLE as exc:
                logger.warning("Redis unavailable (%s): spilling %d event(s)", exc, len(events))
                self._down_until = time.monotonic() + self.cooldown_seconds
        self.spill.append([json.loads(event_json(e)) for e in events])
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
                self._send([event_from_record(r) for r in batch.records])
            except UNAVAILABLE as exc:
                logger.info("replay paused, Redis unavailable: %s", exc)
                self._down_until = time.monotonic() + self.cooldown_seconds
                batch.release()
                return moved
            batch.commit()
            moved += len(batch.records)
        self._down_until = 0.0
        return moved

    def _send(self, events: Sequence[Mapping[str, Any]]) -> None:
        k = self.keys
        ordered = sorted(events, key=lambda e: (e["timestamp"], e["event_id"]))
        by_user: dict[str, list[tuple[Mapping[str, Any], str]]] = {}
        pipe = self.client.pipeline(transaction=False)
        for e in ordered:
            text = event_json(e)
            pipe.xadd(k.events, {"e": text})
            by_user.setdefault(e["user_id"], []).append((e, text))
        reads: dict[str, int] = {}  # user -> position of the LRANGE reply
        for user, pairs in by_user.items():
            mine = [e for e, _ in pairs]
            updates: list[Any] = []
            for text, e in {text: e for e, text in pairs}.items():  # a resent one once
                updates += [text, str(e["item_id"]), repr(_seconds(e["timestamp"]))]
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
        replies = pipe.execute()
        recent = {user: replies[i] for user, i in reads.items()}
        self._write_realtime(recent)

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
