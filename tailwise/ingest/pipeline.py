"""Runs ingestion end to end: sources -> users -> items -> events -> files -> report.

Output layout in `out/`: users.parquet, items.parquet, events/event_date=YYYY-MM-DD/,
quarantine.parquet (rows that could not be used, with column and reason; personal data
left out), corrections.parquet (values nulled, with reason), user_merges.parquet,
quality_report.json, data_inventory.md. `erasures.parquet` (hashed ids of forgotten
users) is read, never overwritten, so a forgotten user stays forgotten on re-ingest.

Everything is written to a staging folder first. When a table keeps no row, or one reason
removes more than `ingest.max_quarantine_share` of it (limits.py), the run stops with
`IngestStopped`: the clean tables in `out` are left as they were and only the reports
(quality_report.json, data_inventory.md, quarantine.parquet, corrections.parquet) go to
`out/rejected/`, where a person can see why. A run that passes removes `out/rejected/`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from tailwise.duckdb_session import connect_duckdb
from tailwise.ingest import events, items, limits, users
from tailwise.ingest.errors import IngestError, IngestStopped
from tailwise.ingest.outcome import TableOutcome
from tailwise.ingest.output import typed_columns, write_table
from tailwise.ingest.parse import sql_str
from tailwise.ingest.report import inventory, write_report
from tailwise.ingest.served import served_quarantine_sql
from tailwise.ingest.sources import Mapping, directory_mapping, load_mapping, register_table
from tailwise.params import IngestParams
from tailwise.schema import CLEAN_ITEMS, CLEAN_USERS, TABLES, USER_MERGES

ERASURES = "erasures.parquet"
STEPS = ("read sources", "users", "items", "events", "write files", "report")
REJECTED = "rejected"
REPORT_FILES = (
    "quality_report.json",
    "data_inventory.md",
    "quarantine.parquet",
    "corrections.parquet",
)


def connect(work: Path, p: IngestParams) -> duckdb.DuckDBPyConnection:
    return connect_duckdb(work / "ingest.duckdb", p.duckdb_memory_limit, p.duckdb_threads)


def erased_hashes(out: Path) -> set[str]:
    path = out / ERASURES
    if not path.exists():
        return set()
    return set(pd.read_parquet(path)["user_id_hmac"])


def run_ingest(
    out: Path,
    p: IngestParams,
    key: bytes,
    *,
    source: Path | None = None,
    mapping: Path | None = None,
    served: Path | None = None,
    step: Callable[[str], None] = lambda _s: None,
) -> dict[str, Any]:
    """Ingest one source (and the API's served events, when given) into `out`; returns the
    quality report (also written to disk)."""
    if source is not None and mapping is None:
        spec, base = directory_mapping(source), Path(".")
    elif mapping is not None and source is None:
        spec, base = load_mapping(mapping)
    else:
        raise IngestError("give exactly one of --source DIR or --mapping FILE")
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    # Work files hold personal data in the clear: a private temp folder, never inside `out`.
    work = Path(tempfile.mkdtemp(prefix="tailwise-ingest-"))
    staged = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    con = connect(work, p)
    try:
        step(STEPS[0])
        types = {
            name: register_table(con, TABLES[name], getattr(spec, name), base) for name in TABLES
        }
        report, outcomes = _run(con, spec, types, staged, erased_hashes(out), p, key, served, step)
        consent = types["users"]["consent_personalization"] != "NULL"
        stops = limits.violations(outcomes, p, consent)
        if stops:
            _reject(staged, out, report, stops)
            raise IngestStopped(
                "ingest stopped: " + " ".join(stops) + f" The reports are in {out / REJECTED}; "
                f"the clean tables in {out} were not changed."
            )
        _swap_in(staged, out)
        shutil.rmtree(out / REJECTED, ignore_errors=True)
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(staged, ignore_errors=True)
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


def _reject(staged: Path, out: Path, report: dict[str, Any], stops: list[str]) -> None:
    """Move this run's reports (not its tables) to `out/rejected/`, replacing older ones."""
    report["stopped"] = stops
    (staged / "quality_report.json").write_text(json.dumps(report, indent=2, default=str))
    target = out / REJECTED
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for name in REPORT_FILES:
        if (staged / name).exists():
            (staged / name).rename(target / name)


def _swap_in(staged: Path, out: Path) -> None:
    """Replace the outputs of the last run with this run's; nothing else in `out` is touched."""
    for new in list(staged.iterdir()):
        old = out / new.name
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
        new.rename(old)


def _run(
    con: duckdb.DuckDBPyConnection,
    spec: Mapping,
    types: dict[str, dict[str, str]],
    out: Path,
    erased: set[str],
    p: IngestParams,
    key: bytes,
    served: Path | None,
    step: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, TableOutcome]]:
    step(STEPS[1])
    con.execute("SET preserve_insertion_order=true")  # first-record-wins merges stay stable
    u = users.ingest_users(
        con,
        types["users"],
        p,
        key,
        erased,
        spec.users.extra_categorical,
        spec.users.extra_numeric,
    )
    step(STEPS[2])
    it = items.ingest_items(
        con, types["items"], p, spec.items.extra_categorical, spec.items.extra_numeric
    )
    step(STEPS[3])
    con.register("user_map_df", u.user_map)
    con.execute("CREATE OR REPLACE TABLE user_map AS SELECT * FROM user_map_df")
    con.register("items_df", it.clean[["item_id"]])
    con.execute("CREATE OR REPLACE TABLE clean_items AS SELECT * FROM items_df")
    u.outcome.add_corrections(con, u.corrections_sql)
    con.execute("SET preserve_insertion_order=false")  # lets DuckDB stream the big table
    ev = events.ingest_events(con, p, types["events"], spec.events.event_types, out, served)

    step(STEPS[4])
    # Country for imputation: the one the person's own (tracked) events most often come from.
    event_country = con.execute(
        "SELECT user_id, mode(country) AS country FROM clean_events "
        "WHERE country IS NOT NULL GROUP BY 1"
    ).df()
    clean_users = users.finish_users(u.clean, key, event_country, u.extras)
    users_cols = typed_columns(CLEAN_USERS, spec.users.extra_categorical, spec.users.extra_numeric)
    write_table(clean_users, out / "users.parquet", users_cols)
    items_cols = typed_columns(CLEAN_ITEMS, spec.items.extra_categorical, spec.items.extra_numeric)
    write_table(it.clean, out / "items.parquet", items_cols)
    write_table(u.merges, out / "user_merges.parquet", USER_MERGES)
    _copy(
        con,
        out / "quarantine.parquet",
        [
            u.quarantine_sql,
            it.quarantine_sql,
            events.quarantine_sql(p),
            *([served_quarantine_sql()] if served is not None else []),
        ],
        "row_json",
    )
    _copy(
        con,
        out / "corrections.parquet",
        [u.corrections_sql, it.corrections_sql, events.corrections_sql(p)],
        "id",
    )

    step(STEPS[5])
    outcomes: dict[str, TableOutcome] = {"users": u.outcome, "items": it.outcome, "events": ev}
    sources = {name: getattr(spec, name).path for name in TABLES}
    if served is not None:
        sources["served_events"] = str(served)
    inv = inventory(con, out, sources, outcomes)
    return write_report(out, outcomes, inv, {"sources": sources}), outcomes


def _copy(con: duckdb.DuckDBPyConnection, path: Path, selects: list[str], last: str) -> None:
    """Write the union of per-table selects (same columns, `last` being row_json or id), in
    a fixed order: the selects' order, then every column. The connection streams without
    preserving insertion order, so without the ORDER BY two runs wrote the rows in
    different orders."""
    extra = f"CAST({last} AS VARCHAR) AS {last}" if last == "row_json" else "id, user_id"
    columns = f"table_name, column_name, value, reason, {last}"
    columns += "" if last == "row_json" else ", user_id"
    union = " UNION ALL ".join(
        f"SELECT {n} AS part, table_name, CAST(column_name AS VARCHAR) AS column_name, "
        f"CAST(value AS VARCHAR) AS value, reason, {extra} FROM ({s})"
        for n, s in enumerate(selects)
    )
    ordered = f"SELECT {columns} FROM ({union}) ORDER BY part, {columns}"
    con.execute(f"COPY ({ordered}) TO {sql_str(str(path))} (FORMAT parquet)")
