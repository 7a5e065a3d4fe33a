"""Per-table accounting: every input row ends in exactly one bucket.

Buckets are assigned in a fixed order: quarantined (the row cannot be used), then
duplicates_merged (the row repeats one already counted), then excluded_no_consent (the
person withheld consent or asked to be forgotten), else kept. Value corrections do not
move a row between buckets; they are counted beside them, as are the contract columns
that hold no value at all in the kept rows.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import duckdb

BUCKETS = ("kept", "duplicates_merged", "quarantined", "excluded_no_consent")


@dataclass
class TableOutcome:
    table: str
    input: int = 0
    kept: int = 0
    duplicates_merged: int = 0
    quarantined: int = 0
    excluded_no_consent: int = 0
    reasons: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    corrections: Counter[str] = field(default_factory=Counter)
    # Contract columns with no value in any kept row (absent, all null or all invalid).
    columns_without_values: list[str] = field(default_factory=list)

    def add_corrections(self, con: duckdb.DuckDBPyConnection, corrections_sql: str) -> None:
        rows = con.execute(
            f"SELECT column_name, reason, count(*) FROM ({corrections_sql}) GROUP BY ALL"
        ).fetchall()
        for column, reason, n in rows:
            self.corrections[f"{column}: {reason}"] += int(n)

    def add_quarantine_reasons(self, con: duckdb.DuckDBPyConnection, quarantine_sql: str) -> None:
        rows = con.execute(
            f"SELECT column_name, reason, count(*) FROM ({quarantine_sql}) GROUP BY ALL"
        ).fetchall()
        for column, reason, n in rows:
            self.reasons["quarantined"][f"{column}: {reason}"] += int(n)

    def check(self) -> None:
        total = sum(getattr(self, b) for b in BUCKETS)
        if total != self.input:
            raise RuntimeError(
                f"{self.table}: reconciliation failed: input {self.input} != "
                + " + ".join(f"{b} {getattr(self, b)}" for b in BUCKETS)
            )

    def as_dict(self) -> dict[str, Any]:
        self.check()
        return {
            "input": self.input,
            **{b: getattr(self, b) for b in BUCKETS},
            "reasons": {k: dict(v.most_common()) for k, v in self.reasons.items() if v},
            "values_corrected": dict(self.corrections.most_common()),
            "columns_without_values": list(self.columns_without_values),
        }
