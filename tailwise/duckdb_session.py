"""The DuckDB session every batch stage runs its SQL in: UTC, bounded memory, spill folder."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tailwise.ingest.parse import sql_str


def connect_duckdb(database: Path, memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    """A connection whose memory stays under `memory_limit` (it spills beside `database`)."""
    con = duckdb.connect(str(database))
    con.execute(f"SET memory_limit={sql_str(memory_limit)}")
    con.execute(f"SET threads={threads}")
    con.execute(f"SET temp_directory={sql_str(str(database.parent / 'spill'))}")
    con.execute("SET TimeZone='UTC'")
    return con
