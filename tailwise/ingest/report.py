"""The quality report (JSON) and the data inventory (Markdown) people read after ingest.

The report reconciles every table (`input` = kept + duplicates_merged + quarantined +
excluded_no_consent) with a per-reason breakdown. The inventory describes each kind of
data (behavioural, demographic, contextual): its source, rows, null and duplicate
rates, and freshness.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from tailwise.ingest.outcome import TableOutcome
from tailwise.ingest.parse import sql_str


def null_rates(
    con: duckdb.DuckDBPyConnection, relation: str, columns: list[str]
) -> dict[str, float]:
    exprs = ", ".join(f"avg(CASE WHEN {c} IS NULL THEN 1.0 ELSE 0.0 END)" for c in columns)
    row = con.execute(f"SELECT {exprs} FROM {relation}").fetchone() or ()
    return {c: round(float(v or 0.0), 6) for c, v in zip(columns, row, strict=True)}


def inventory(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    sources: dict[str, str],
    outcomes: dict[str, TableOutcome],
) -> list[dict[str, Any]]:
    users = f"read_parquet({sql_str(str(out / 'users.parquet'))})"
    # The clean events table of this run (a run may keep none at all).
    ev = "(SELECT * FROM clean_events)"
    freshest = con.execute(f"SELECT max(timestamp) FROM {ev}").fetchone()
    newest_signup = con.execute(f"SELECT max(signup_at) FROM {users}").fetchone()
    imputed = (
        con.execute(
            f"SELECT avg(age_imputed::INT), avg(gender_imputed::INT), avg(country_imputed::INT), "
            f"avg(income_band_imputed::INT) FROM {users}"
        ).fetchone()
        or ()
    )

    def dup_rate(t: str) -> float:
        o = outcomes[t]
        return round(o.duplicates_merged / o.input, 6) if o.input else 0.0

    return [
        {
            "data_type": "behavioural",
            "table": "events",
            "source": sources["events"],
            "rows": outcomes["events"].kept,
            "duplicate_rate": dup_rate("events"),
            "null_rates": null_rates(con, ev, ["value", "price"]),
            "freshness": _iso(freshest),
        },
        {
            "data_type": "demographic",
            "table": "users",
            "source": sources["users"],
            "rows": outcomes["users"].kept,
            "duplicate_rate": dup_rate("users"),
            "null_rates": dict(
                zip(
                    ["age", "gender", "country", "income_band"],
                    [round(float(v or 0), 6) for v in imputed],
                    strict=False,
                )
            ),
            "null_rates_note": "share missing in the source, filled by imputation and flagged",
            "freshness": _iso(newest_signup),
        },
        {
            "data_type": "contextual",
            "table": "events (context columns)",
            "source": sources["events"],
            "rows": outcomes["events"].kept,
            "duplicate_rate": dup_rate("events"),
            "null_rates": null_rates(con, ev, ["session_id", "device", "channel", "country"]),
            "freshness": _iso(freshest),
        },
    ]


def _iso(row: tuple[Any, ...] | None) -> str | None:
    if not row or row[0] is None:
        return None
    value = row[0]
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else str(value)


def write_report(
    out: Path, outcomes: dict[str, TableOutcome], inv: list[dict[str, Any]], extra: dict[str, Any]
) -> dict[str, Any]:
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tables": {name: o.as_dict() for name, o in outcomes.items()},
        "inventory": inv,
        **extra,
    }
    (out / "quality_report.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "data_inventory.md").write_text(inventory_markdown(inv))
    return report


def inventory_markdown(inv: list[dict[str, Any]]) -> str:
    lines = [
        "# Data inventory",
        "",
        "| data type | table | source | rows | duplicate rate | null rates | freshness (UTC) |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in inv:
        nulls = ", ".join(f"{k} {v:.1%}" for k, v in d["null_rates"].items())
        lines.append(
            f"| {d['data_type']} | {d['table']} | `{d['source']}` | {d['rows']:,} | "
            f"{d['duplicate_rate']:.2%} | {nulls} | {d['freshness']} |"
        )
    return "\n".join(lines) + "\n"
