"""The API's event rules: request events -> clean events, or a rejection naming every field.

`EventRules.clean` applies the event contract (`tailwise.ingest.contract`, the rules batch
ingestion applies too) to request events, after moving merged user ids onto the surviving
id: a value a reject rule catches fails the whole batch, naming every bad field, before
anything is written; a value a null rule catches is emptied and reported as adjusted;
context is kept only with tracking consent (`ConsentBook`). `serving.events` writes what
comes out.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from serving import api
from tailwise.ingest.contract import (
    Action,
    Finding,
    event_rules,
    findings,
    parse_number,
    parse_timestamp,
)
from tailwise.params import IngestParams
from tailwise.schema import CONTEXT_COLUMNS

logger = logging.getLogger(__name__)


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
        if e.request_id or e.slot is not None or e.position is not None:  # attribution
            row |= {"request_id": e.request_id, "slot": _text(e.slot), "position": e.position}
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


def _text(value: str | None) -> str | None:
    return (value or "").strip() or None


def _lower(value: str | None) -> str | None:
    text = _text(value)
    return text.lower() if text else None
