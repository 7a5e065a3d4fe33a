"""Served events (what the API accepted on POST /events) joining the clean events.

    <served>/event_date=YYYY-MM-DD/*.parquet   (tailwise events consume; clean columns)
        --register_served--> served_events (DuckDB)
        --kept: a kept user and a catalogue item--> served_ok, unioned into the event
          deduplication, so an event both exported raw and posted to the API counts once
        --otherwise--> quarantined, with the column and reason, like a raw event

The API already validated these events, resolved merged accounts and applied consent, so
they are not parsed again; what can have changed since is the people and the catalogue
(an account erased or excluded, an item that never reached the catalogue).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from tailwise.ingest.errors import IngestError
from tailwise.ingest.parse import sql_str

SERVED_TABLE = "served_events"
_PROBLEM = """CASE
    WHEN m.user_id IS NULL THEN 'user_id'
    WHEN i.item_id IS NULL THEN 'item_id' END"""
_REASON = {
    "user_id": "served event of a user not kept in the users table (unknown, excluded or erased)",
    "item_id": "served event of an item not in the catalogue",
}


def served_files(served: Path) -> list[Path]:
    """The event files the consumer wrote (writers' temporary files start with '.' or '_')."""
    if not served.exists():
        raise IngestError(f"--served {served}: no such folder (tailwise events consume writes it)")
    return sorted(p for p in served.rglob("*.parquet") if not p.name.startswith((".", "_")))


def register_served(con: duckdb.DuckDBPyConnection, served: Path, columns: list[str]) -> int:
    """Load the served events with a problem column; returns how many rows were read."""
    files = served_files(served)
    cols = ", ".join(f"s.{c}" for c in columns)
    if not files:
        typed = ", ".join(f"CAST(NULL AS VARCHAR) AS {c}" for c in columns)
        con.execute(
            f"CREATE OR REPLACE TABLE {SERVED_TABLE} AS SELECT {typed}, "
            "CAST(NULL AS VARCHAR) AS problem WHERE FALSE"
        )
        return 0
    listed = ", ".join(sql_str(str(p)) for p in files)
    try:
        con.execute(f"""
            CREATE OR REPLACE TABLE {SERVED_TABLE} AS
            SELECT {cols}, {_PROBLEM} AS problem
            FROM read_parquet([{listed}], union_by_name = true, hive_partitioning = false) s
            LEFT JOIN (SELECT DISTINCT user_id FROM user_map WHERE status = 'kept') m
              ON m.user_id = s.user_id
            LEFT JOIN clean_items i ON i.item_id = s.item_id""")
    except duckdb.BinderException as exc:
        raise IngestError(f"--served {served}: the files lack a clean event column: {exc}") from exc
    row = con.execute(f"SELECT count(*) FROM {SERVED_TABLE}").fetchone()
    return int(row[0]) if row else 0


def served_ok_sql(columns: list[str]) -> str:
    return f"SELECT {', '.join(columns)} FROM {SERVED_TABLE} WHERE problem IS NULL"


def served_quarantine_sql() -> str:
    """Quarantine rows in the layout of the raw events' (table, column, value, reason, row)."""
    reason = " ".join(f"WHEN {sql_str(c)} THEN {sql_str(r)}" for c, r in _REASON.items())
    return f"""
        SELECT 'events' AS table_name, problem AS column_name,
               CASE problem WHEN 'user_id' THEN NULL ELSE item_id END AS value,
               CASE problem {reason} END AS reason,
               CASE WHEN problem = 'item_id' THEN to_json(struct_pack(
                   event_id := event_id, item_id := item_id, event_type := event_type,
                   timestamp := timestamp)) END AS row_json
        FROM {SERVED_TABLE} WHERE problem IS NOT NULL
    """
