"""The event contract: one bad value, the same outcome in batch ingestion and in the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pydantic import ValidationError

from serving import api
from serving.event_rules import ConsentBook, EventRejected, EventRules
from tailwise.ingest import parse
from tailwise.ingest.contract import Action, event_rules, parse_number
from tailwise.ingest.events import corrections_sql, ingest_events, quarantine_sql
from tailwise.params import IngestParams
from tailwise.schema import EVENTS

NOW = datetime.now(UTC).replace(microsecond=0)
GOOD = {
    "user_id": "u1",
    "item_id": "i1",
    "event_type": "product_view",
    "timestamp": (NOW - timedelta(hours=1)).isoformat(),
    "country": "DE",
}
# (one value changed from GOOD, the outcome: (action, field) or None when the event is fine)
CASES: list[tuple[dict[str, Any], tuple[str, str] | None]] = [
    ({}, None),
    ({"price": 12.5, "value": 3}, None),
    ({"price": 2_000_000}, ("null the value", "price")),
    ({"price": -3}, ("null the value", "price")),
    ({"price": "cheap"}, ("null the value", "price")),
    ({"price": True}, ("null the value", "price")),
    ({"price": "12"}, None),
    ({"value": -1}, ("null the value", "value")),
    ({"value": "lots"}, ("null the value", "value")),
    ({"country": "Germany"}, ("null the value", "country")),
    ({"country": "de"}, None),
    ({"event_type": "clickk"}, ("reject row", "event_type")),
    ({"event_type": "  "}, ("reject row", "event_type")),
    ({"item_id": ""}, ("reject row", "item_id")),
    ({"user_id": " "}, ("reject row", "user_id")),
    ({"timestamp": "yesterday"}, ("reject row", "timestamp")),
    ({"timestamp": "2026-02-30T10:00:00"}, ("reject row", "timestamp")),
    ({"timestamp": "1790000000000"}, ("reject row", "timestamp")),  # milliseconds
    ({"timestamp": "1969-12-31T23:00:00Z"}, ("reject row", "timestamp")),
    ({"timestamp": (NOW + timedelta(hours=30)).isoformat()}, ("reject row", "timestamp")),
    ({"event_type": "rating"}, ("reject row", "value")),
    ({"event_type": "rating", "value": 7}, ("reject row", "value")),
    ({"event_type": "rating", "value": "good"}, ("reject row", "value")),
    ({"event_type": "rating", "value": "4"}, None),
    ({"event_type": "rating", "value": 4, "price": -1}, ("null the value", "price")),
]


def _batch_outcomes(tmp_path: Path, params: IngestParams) -> list[tuple[str, str] | None]:
    """Each case as a raw CSV-like row (text) through batch ingestion of events."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    columns = ", ".join(f"{c} VARCHAR" for c in EVENTS.names)
    con.execute(f"CREATE TABLE raw_events ({columns})")
    for i, (change, _) in enumerate(CASES):
        row = {**GOOD, **change, "event_id": f"e{i}"}
        values = [None if row.get(c) is None else str(row[c]) for c in EVENTS.names]
        con.execute(f"INSERT INTO raw_events VALUES ({', '.join('?' * len(values))})", values)
    con.execute(
        "CREATE TABLE user_map AS SELECT 'u1' AS source_user_id, 'u1' AS user_id, "
        "'kept' AS status, TRUE AS consent_tracking"
    )
    con.execute("CREATE TABLE clean_items AS SELECT 'i1' AS item_id")
    types = dict.fromkeys(EVENTS.names, "VARCHAR")
    ingest_events(con, params, types, {}, tmp_path)
    outcome: dict[str, tuple[str, str]] = {}
    for column, row_json in con.execute(
        f"SELECT column_name, json_extract_string(row_json, '$.event_id') FROM ({quarantine_sql(params)})"
    ).fetchall():
        outcome[row_json] = ("reject row", column)
    for event_id, column in con.execute(
        f"SELECT id, column_name FROM ({corrections_sql(params)})"
    ).fetchall():
        outcome[event_id] = ("null the value", column)
        kept = con.execute(
            f"SELECT {column} FROM clean_events WHERE event_id = ?", [event_id]
        ).fetchone()
        assert kept == (None,), f"{event_id}: {column} was recorded as nulled but kept"
    return [outcome.get(f"e{i}") for i in range(len(CASES))]


def _api_outcome(rules: EventRules, change: dict[str, Any]) -> tuple[str, str] | None:
    """One case as a JSON body field by field through the API's validation and rules."""
    try:
        event = api.Event.model_validate({**GOOD, **change})
    except ValidationError as exc:  # a 422 from the request model, naming the field
        return ("reject row", str(exc.errors()[0]["loc"][0]))
    try:
        cleaned = rules.clean([event], NOW)
    except EventRejected as exc:
        (problem,) = exc.problems
        return ("reject row", problem["field"])
    if cleaned.adjusted:
        (adjusted,) = cleaned.adjusted
        assert cleaned.events[0][adjusted["field"]] is None
        return ("null the value", adjusted["field"])
    return None


def test_a_bad_value_has_the_same_outcome_in_batch_and_in_the_api(tmp_path: Path) -> None:
    params = IngestParams()
    rules = EventRules(params, ConsentBook({"u1": True}, {}, params.consent_default))
    batch = _batch_outcomes(tmp_path, params)
    through_api = [_api_outcome(rules, change) for change, _ in CASES]
    expected = [outcome for _, outcome in CASES]
    table = list(zip([c for c, _ in CASES], batch, through_api, strict=True))
    assert batch == expected, table
    assert through_api == expected, table


def test_only_the_reference_rules_are_left_to_batch() -> None:
    """The API takes events of users and items not ingested yet (a re-ingest quarantines
    them: tailwise.ingest.served); every other rule applies in both places."""
    batch_only = [(r.field, r.reason) for r in event_rules(IngestParams()) if r.batch_only]
    assert batch_only == [
        ("user_id", "not in the users table"),
        ("item_id", "not in the items table"),
    ]
    assert all(r.action is Action.REJECT for r in event_rules(IngestParams()) if r.batch_only)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("12.5", 12.5),
        (" 3 ", 3.0),
        ("1e3", 1000.0),
        ("1_000", 1000.0),
        ("inf", None),
        ("1e400", None),
        ("1,5", None),
        ("\u0663", None),  # an Arabic-Indic digit
        ("", None),
    ],
)
def test_numbers_are_read_as_batch_ingestion_reads_text(text: str, number: float | None) -> None:
    expr = parse.number("v", "VARCHAR")
    ((batch,),) = duckdb.connect().execute(f"SELECT {expr} FROM (SELECT ? AS v)", [text]).fetchall()
    assert parse_number(text) == number == batch
