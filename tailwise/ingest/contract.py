"""The event contract: each rule on an event field written once, checked in SQL and Python.

    event_rules(params) -> [Rule(field, action, reason, test), ...]
        --rule.test.sql()--> batch ingestion (events.py, DuckDB over the typed raw table)
        --rule.test.holds(row, now)--> the API (serving.events.EventRules, one event dict)

A rule's `test` is a small predicate over the typed columns of an event (the table below);
each predicate renders itself as SQL and evaluates itself in Python with SQL's treatment
of NULL (a comparison with a missing value does not hold), so both sides say the same.

Actions: REJECT rules take the row out (batch: quarantined with field and reason; API: the
request names every bad field and writes nothing). NULL rules empty the value and keep the
row (batch: a recorded correction; API: the event is accepted and the answer lists the
field under `adjusted`). Order matters: the first REJECT rule that holds is the row's
problem, and NULL rules apply only to rows that no REJECT rule took. Rules with
`batch_only` need the users and items tables (the API accepts events of people and items
not ingested yet; a re-ingest quarantines them, see served.py).

Typed columns (batch: columns of `typed_events`; API: keys of the row dict):
source_user_id, user_id (canonical, NULL when not in the users table), item_id,
known_item, event_type, raw_timestamp, ts, raw_value, parsed_value, raw_price,
parsed_price, raw_country, country_code (upper-cased), tracked (tracking consent).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from tailwise.ingest.parse import _EPOCH, _ISO, sql_in, sql_str
from tailwise.params import IngestParams

Row = Mapping[str, Any]
_ISO_RE, _EPOCH_RE = re.compile(_ISO), re.compile(_EPOCH)


class Action(StrEnum):
    REJECT = "reject row"
    NULL = "null the value"


class Test(Protocol):
    def sql(self) -> str: ...

    def holds(self, row: Row, now: datetime) -> bool: ...


@dataclass(frozen=True)
class Missing:
    col: str

    def sql(self) -> str:
        return f"{self.col} IS NULL"

    def holds(self, row: Row, now: datetime) -> bool:
        return row.get(self.col) is None


@dataclass(frozen=True)
class Unreadable:
    """A value was given (`raw`) but could not be read (`parsed` is missing)."""

    raw: str
    parsed: str

    def sql(self) -> str:
        return f"{self.raw} IS NOT NULL AND {self.parsed} IS NULL"

    def holds(self, row: Row, now: datetime) -> bool:
        return row.get(self.raw) is not None and row.get(self.parsed) is None


@dataclass(frozen=True)
class Before:
    col: str
    earliest: datetime

    def sql(self) -> str:
        return f"{self.col} < TIMESTAMPTZ '{self.earliest:%Y-%m-%d %H:%M:%S}+00'"

    def holds(self, row: Row, now: datetime) -> bool:
        return row.get(self.col) is not None and row[self.col] < self.earliest


@dataclass(frozen=True)
class AheadOfNow:
    """More than `hours` after the time of checking."""

    col: str
    hours: float

    def sql(self) -> str:
        return f"{self.col} > now() + INTERVAL {int(self.hours)} HOUR"

    def holds(self, row: Row, now: datetime) -> bool:
        limit = now + timedelta(hours=int(self.hours))
        return row.get(self.col) is not None and row[self.col] > limit


@dataclass(frozen=True)
class NotIn:
    col: str
    values: tuple[str, ...]

    def sql(self) -> str:
        return f"{self.col} NOT IN {sql_in(self.values)}"

    def holds(self, row: Row, now: datetime) -> bool:
        return row.get(self.col) is not None and row[self.col] not in self.values


@dataclass(frozen=True)
class Outside:
    """Outside lo..hi; a missing value is fine unless `required`."""

    col: str
    lo: float
    hi: float = math.inf
    required: bool = False

    def sql(self) -> str:
        inside = (
            f"{self.col} >= {self.lo}"
            if math.isinf(self.hi)
            else (f"{self.col} BETWEEN {self.lo} AND {self.hi}")
        )
        return f"NOT coalesce({inside}, FALSE)" if self.required else f"NOT ({inside})"

    def holds(self, row: Row, now: datetime) -> bool:
        value = row.get(self.col)
        if value is None:
            return self.required
        return not self.lo <= value <= self.hi


@dataclass(frozen=True)
class NotMatching:
    col: str
    pattern: str

    def sql(self) -> str:
        return (
            f"{self.col} IS NOT NULL AND NOT regexp_full_match({self.col}, {sql_str(self.pattern)})"
        )

    def holds(self, row: Row, now: datetime) -> bool:
        value = row.get(self.col)
        return value is not None and re.fullmatch(self.pattern, value) is None


@dataclass(frozen=True)
class When:
    """`then` holds, for rows where the boolean column `flag` is true, or `col` is in `values`."""

    then: Test
    flag: str = ""
    col: str = ""
    values: tuple[str, ...] = ()

    def sql(self) -> str:
        cond = self.flag or f"{self.col} IN {sql_in(self.values)}"
        return f"{cond} AND {self.then.sql()}"

    def holds(self, row: Row, now: datetime) -> bool:
        applies = bool(row.get(self.flag)) if self.flag else row.get(self.col) in self.values
        return applies and self.then.holds(row, now)


@dataclass(frozen=True)
class Rule:
    field: str  # the contract column the problem is reported on
    action: Action
    reason: str
    test: Test
    batch_only: bool = False


def event_rules(p: IngestParams) -> list[Rule]:
    """Every rule on an event, in the order they are checked (see the module docstring)."""
    reject, null = Action.REJECT, Action.NULL
    floor = p.earliest_timestamp
    earliest = floor.replace(tzinfo=floor.tzinfo or UTC).astimezone(UTC)  # SQL writes it +00
    hours, top = p.future_tolerance_hours, p.rating_scale_max
    missing = "required value is missing"
    return [
        Rule("user_id", reject, missing, Missing("source_user_id")),
        Rule("item_id", reject, missing, Missing("item_id")),
        Rule("event_type", reject, missing, Missing("event_type")),
        Rule("timestamp", reject, missing, Missing("raw_timestamp")),
        Rule("timestamp", reject, "not ISO-8601 or epoch seconds", Missing("ts")),
        Rule(
            "timestamp", reject, f"before {earliest:%Y-%m-%d %H:%M:%S} UTC", Before("ts", earliest)
        ),
        Rule(
            "timestamp", reject, f"more than {hours:g} hours in the future", AheadOfNow("ts", hours)
        ),
        Rule(
            "event_type",
            reject,
            "has no weight in params.yaml ingest.event_weights; add it or map it "
            f"(known: {', '.join(sorted(p.event_weights))})",
            NotIn("event_type", tuple(p.event_weights)),
        ),
        Rule("user_id", reject, "not in the users table", Missing("user_id"), batch_only=True),
        Rule("item_id", reject, "not in the items table", Missing("known_item"), batch_only=True),
        Rule(
            "value",
            reject,
            f"a rating needs a value in 0..{top:g}",
            When(
                Outside("parsed_value", 0, top, required=True),
                col="event_type",
                values=tuple(p.value_weighted_types),
            ),
        ),
        Rule("value", null, "not a number", Unreadable("raw_value", "parsed_value")),
        Rule("value", null, "negative", Outside("parsed_value", 0)),
        Rule("price", null, "not a number", Unreadable("raw_price", "parsed_price")),
        Rule(
            "price",
            null,
            f"outside the possible range 0..{p.price_max:g}",
            Outside("parsed_price", 0, p.price_max),
        ),
        Rule(
            "country",
            null,
            "not an ISO-3166 alpha-2 code",
            When(NotMatching("country_code", "[A-Z]{2}"), flag="tracked"),
        ),
    ]


@dataclass(frozen=True)
class Finding:
    field: str
    action: Action
    reason: str


def findings(rules: Sequence[Rule], row: Row, now: datetime) -> list[Finding]:
    """The rules an event breaks, as batch ingestion would see them: the first failing rule
    per field; NULL rules only when no REJECT rule holds. `batch_only` rules are skipped."""
    found: dict[str, Finding] = {}
    for action in (Action.REJECT, Action.NULL):
        for rule in rules:
            skip = rule.action is not action or rule.batch_only or rule.field in found
            if not skip and rule.test.holds(row, now):
                found[rule.field] = Finding(rule.field, action, rule.reason)
        if found:
            break
    return list(found.values())


def nulled_sql(rules: Sequence[Rule], field: str, value: str) -> str:
    """SQL: `value`, or NULL where a NULL rule on `field` holds."""
    tests = [f"({r.test.sql()})" for r in rules if r.action is Action.NULL and r.field == field]
    if not tests:
        return value
    return f"(CASE WHEN coalesce({' OR '.join(tests)}, FALSE) THEN NULL ELSE {value} END)"


def parse_timestamp(value: datetime | float | int | str) -> datetime | str:
    """UTC datetime (microseconds) per schema.TIMESTAMP_RULE, or the problem as text; reads
    what parse.timestamp reads in SQL."""
    if isinstance(value, bool):
        return f"{value!r} is not a timestamp"
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) >= 1e11:
            return f"{value!r} is not epoch seconds"
        return datetime.fromtimestamp(value, UTC)
    text = value.strip()
    if _EPOCH_RE.fullmatch(text):
        return parse_timestamp(float(text))
    if _ISO_RE.fullmatch(text):
        try:
            return parse_timestamp(datetime.fromisoformat(text))
        except ValueError:
            return f"{text!r} is not a valid date and time"
    return f"{text!r} is not ISO-8601 or epoch seconds"


def parse_number(value: float | int | str | None) -> float | None:
    """A finite number, or None; reads what parse.number reads in SQL."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not value.isascii():  # float() reads other scripts' digits; DuckDB does not
            return None
        try:
            value = float(value.strip())
        except ValueError:
            return None
    number = float(value)
    return number if math.isfinite(number) else None
