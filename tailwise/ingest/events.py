"""Events: the large table, handled entirely inside DuckDB so memory stays bounded.

raw_events -> text of every column -> typed values -> source user ids moved onto their
canonical id (user_map) -> first failing reject rule quarantines the row -> values a null
rule catches are nulled and recorded (the rules: contract.py, shared with the API) -> context dropped for users without
tracking consent -> implicit-feedback weight per event type -> duplicates merged (exact
copies, then one row per event_id) -> Parquet partitioned by event date (UTC).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from tailwise.ingest import parse
from tailwise.ingest.contract import Action, event_rules, nulled_sql
from tailwise.ingest.outcome import TableOutcome
from tailwise.ingest.parse import sql_in, sql_str
from tailwise.ingest.served import (
    SERVED_TABLE,
    register_served,
    served_ok_sql,
    served_quarantine_sql,
)
from tailwise.params import IngestParams
from tailwise.schema import CLEAN_EVENTS, EVENTS

CLEAN_COLUMNS = list(CLEAN_EVENTS)


def checks(p: IngestParams) -> list[parse.Check]:
    """The contract's reject rules: the first that holds quarantines the row."""
    return [
        parse.Check(r.field, r.test.sql(), r.reason)
        for r in event_rules(p)
        if r.action is Action.REJECT
    ]


def corrections(p: IngestParams) -> list[parse.Check]:
    """The contract's null rules, recorded for the rows no reject rule took."""
    valid = "problem IS NULL AND status = 'kept' AND "
    return [
        parse.Check(r.field, f"{valid}({r.test.sql()})", r.reason)
        for r in event_rules(p)
        if r.action is Action.NULL
    ]


def typed_sql(p: IngestParams, types: dict[str, str], event_types: dict[str, str]) -> str:
    raw = ", ".join(f"{parse.raw_text(col, types[col])} AS raw_{col}" for col in EVENTS.names)
    et = "lower(raw_event_type)"
    if event_types:
        mapped = " ".join(
            f"WHEN {sql_str(k.lower())} THEN {sql_str(v)}" for k, v in event_types.items()
        )
        et = f"(CASE {et} {mapped} ELSE {et} END)"
    weights = " ".join(f"WHEN {sql_str(k)} THEN {v}" for k, v in p.event_weights.items())
    rated = sql_in(p.value_weighted_types)
    rules = event_rules(p)
    return f"""
    SELECT *, {parse.problem_index(checks(p))} AS problem FROM (
      SELECT e.*, m.user_id, m.status, coalesce(m.consent_tracking, FALSE) AS tracked,
        i.item_id AS known_item,
        CASE WHEN m.consent_tracking THEN raw_session_id END AS session_id,
        CASE WHEN m.consent_tracking THEN lower(raw_device) END AS device,
        CASE WHEN m.consent_tracking THEN lower(raw_channel) END AS channel,
        CASE WHEN m.consent_tracking THEN {nulled_sql(rules, "country", "country_code")}
          END AS country,
        {nulled_sql(rules, "value", "parsed_value")} AS value,
        {nulled_sql(rules, "price", "parsed_price")} AS price,
        (CASE e.event_type {weights} END) * (CASE WHEN e.event_type IN {rated}
           THEN parsed_value / {p.rating_scale_max} ELSE 1 END) AS weight
      FROM (
        SELECT *,
          {parse.key("raw_user_id", "VARCHAR")} AS source_user_id,
          {parse.key("raw_item_id", "VARCHAR")} AS item_id,
          raw_event_id AS event_id,
          {et} AS event_type,
          {parse.timestamp("raw_timestamp", "VARCHAR")} AS ts,
          {parse.number("raw_value", "VARCHAR")} AS parsed_value,
          {parse.number("raw_price", "VARCHAR")} AS parsed_price,
          upper(raw_country) AS country_code
        FROM (SELECT {raw} FROM raw_events)
      ) e
      LEFT JOIN user_map m ON m.source_user_id = e.source_user_id
      LEFT JOIN (SELECT item_id FROM clean_items) i ON i.item_id = e.item_id
    )
    """


def quarantine_sql(p: IngestParams) -> str:
    """Quarantined rows; the content of rows of people who are excluded is not kept."""
    cs = checks(p)
    value = " ".join(f"WHEN {i} THEN raw_{c.column}" for i, c in enumerate(cs))
    row = ", ".join(f"{col} := raw_{col}" for col in EVENTS.names)
    shown = "coalesce(status, 'kept') = 'kept'"
    return f"""
        SELECT 'events' AS table_name, {parse.lookup(cs, "problem", "column")} AS column_name,
               CASE WHEN {shown} THEN (CASE problem {value} END) END AS value,
               {parse.lookup(cs, "problem", "reason")} AS reason,
               CASE WHEN {shown} THEN to_json(struct_pack({row})) END AS row_json
        FROM typed_events WHERE problem IS NOT NULL
    """


def corrections_sql(p: IngestParams) -> str:
    return parse.corrections_sql(
        "events", "event_id", corrections(p), "typed_events", user_col="user_id"
    )


def ingest_events(
    con: duckdb.DuckDBPyConnection,
    p: IngestParams,
    types: dict[str, str],
    event_types: dict[str, str],
    out: Path,
    served: Path | None = None,
) -> TableOutcome:
    """Validate and clean raw_events into `out/events/event_date=.../*.parquet`, with the
    events the API accepted (`served`, see served.py) when given."""
    con.execute(f"CREATE OR REPLACE TABLE typed_events AS {typed_sql(p, types, event_types)}")
    outcome = TableOutcome("events")
    counts = con.execute("""
        SELECT count(*), count(*) FILTER (problem IS NOT NULL),
               count(*) FILTER (problem IS NULL AND status <> 'kept')
        FROM typed_events""").fetchone() or (0, 0, 0)
    outcome.input, outcome.quarantined, outcome.excluded_no_consent = map(int, counts)
    served_rows = register_served(con, served, CLEAN_COLUMNS) if served is not None else 0
    if served is not None:
        bad = con.execute(f"SELECT count(*) FROM {SERVED_TABLE} WHERE problem IS NOT NULL")
        outcome.input += served_rows
        outcome.quarantined += int((bad.fetchone() or (0,))[0])
        outcome.add_quarantine_reasons(con, served_quarantine_sql())
    if outcome.excluded_no_consent:
        outcome.reasons["excluded_no_consent"]["user excluded (consent or erasure)"] = (
            outcome.excluded_no_consent
        )
    outcome.add_quarantine_reasons(con, quarantine_sql(p))
    outcome.add_corrections(con, corrections_sql(p))
    exact, conflicting = _deduplicate(con, served is not None)
    outcome.kept = _write(con, out / "events")
    outcome.columns_without_values = _without_values(con)
    valid = outcome.input - outcome.quarantined - outcome.excluded_no_consent
    outcome.duplicates_merged = valid - outcome.kept
    if exact:
        outcome.reasons["duplicates_merged"]["exact duplicate event"] = exact
    if conflicting:
        outcome.reasons["duplicates_merged"][
            "event_id repeated with other content (latest kept)"
        ] = conflicting
    return outcome


def _deduplicate(con: duckdb.DuckDBPyConnection, served: bool) -> tuple[int, int]:
    """Exact copies first; then one row per event_id (latest timestamp, then by content)."""
    cols = ", ".join(CLEAN_COLUMNS).replace("timestamp", "ts AS timestamp")
    con.execute(f"""
        CREATE OR REPLACE TABLE valid_events AS
        SELECT {cols} FROM typed_events WHERE problem IS NULL AND status = 'kept'""")
    if served:
        con.execute(f"INSERT INTO valid_events BY NAME {served_ok_sql(CLEAN_COLUMNS)}")
    con.execute("CREATE OR REPLACE TABLE distinct_events AS SELECT DISTINCT * FROM valid_events")
    valid = con.execute("SELECT count(*) FROM valid_events").fetchone()
    n_distinct = con.execute("SELECT count(*) FROM distinct_events").fetchone()
    order = ", ".join(f"{c} DESC NULLS LAST" for c in ["timestamp", *CLEAN_COLUMNS])
    con.execute(f"""
        CREATE OR REPLACE TABLE clean_events AS
        SELECT * FROM distinct_events WHERE event_id IS NULL OR event_id NOT IN (
            SELECT event_id FROM distinct_events GROUP BY 1 HAVING count(*) > 1)
        UNION ALL
        SELECT * FROM distinct_events WHERE event_id IN (
            SELECT event_id FROM distinct_events GROUP BY 1 HAVING count(*) > 1)
        QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY {order}) = 1""")
    n_clean = con.execute("SELECT count(*) FROM clean_events").fetchone()
    exact = int(valid[0]) - int(n_distinct[0]) if valid and n_distinct else 0
    conflicting = int(n_distinct[0]) - int(n_clean[0]) if n_distinct and n_clean else 0
    return exact, conflicting


def _without_values(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Optional contract columns that no kept event has a value for."""
    optional = [c.name for c in EVENTS.columns if not c.required]
    counts = ", ".join(f"count({c})" for c in optional)
    row = con.execute(f"SELECT {counts} FROM clean_events").fetchone() or ()
    return [c for c, n in zip(optional, row, strict=True) if not n]


def _write(con: duckdb.DuckDBPyConnection, target: Path) -> int:
    written = con.execute(f"""
        COPY (SELECT *, CAST(timestamp AS DATE) AS event_date FROM clean_events)
        TO {sql_str(str(target))} (FORMAT parquet, PARTITION_BY (event_date),
                                   OVERWRITE_OR_IGNORE, COMPRESSION zstd)""").fetchone()
    return int(written[0]) if written else 0
