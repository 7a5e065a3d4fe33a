"""SQL expressions that read raw contract columns into typed values.

Every raw column may arrive as text (CSV), as a native type (Parquet) or as JSON values,
so each parser looks at the DuckDB source type and returns one SQL expression. A value
that cannot be read becomes NULL here; the table modules turn that into a quarantined
row (required columns) or a recorded correction (optional columns).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tailwise.params import IngestParams

_NUMERIC = re.compile(
    r"(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|FLOAT|DOUBLE|REAL|UTINYINT|USMALLINT|UINTEGER"
    r"|UBIGINT|UHUGEINT|DECIMAL(\(\d+,\s*\d+\))?)"
)
# ISO-8601 date, optional time, optional Z or +hh[:mm] offset: nothing else is read as a time.
_ISO = (
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?"
    r"(Z|[+-](0\d|1[0-4])(:?\d{2})?)?"
)
_EPOCH = r"-?\d{1,11}(\.\d+)?"


def sql_str(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def sql_in(values: list[str] | tuple[str, ...]) -> str:
    """A parenthesised list of string literals for IN (never empty)."""
    return "(" + ", ".join(sql_str(v) for v in values or [""]) + ")"


def is_numeric(source_type: str) -> bool:
    return _NUMERIC.fullmatch(source_type.upper()) is not None


def as_text(col: str, source_type: str = "VARCHAR") -> str:
    """The value as VARCHAR (JSON strings lose their quotes)."""
    if source_type.upper() == "JSON":
        return f"json_extract_string({col}, '$')"
    return f"CAST({col} AS VARCHAR)"


def _trim(expr: str) -> str:
    """Trim all white space (DuckDB's trim() only strips spaces)."""
    return f"regexp_replace({expr}, '^\\s+|\\s+$', '', 'g')"


def raw_text(col: str, source_type: str = "VARCHAR") -> str:
    """The value as trimmed text, for messages and quarantine."""
    if source_type == "NULL":
        return "CAST(NULL AS VARCHAR)"
    return f"NULLIF({_trim(as_text(col, source_type))}, '')"


def key(col: str, source_type: str) -> str:
    """An id as text, the same way in every table: trimmed, integers without '.0'."""
    if source_type == "NULL":
        return "CAST(NULL AS VARCHAR)"
    if is_numeric(source_type):
        return (
            f"(CASE WHEN {col} = trunc({col}) THEN CAST(CAST({col} AS HUGEINT) AS VARCHAR) "
            f"ELSE CAST({col} AS VARCHAR) END)"
        )
    return raw_text(col, source_type)


def text(col: str, source_type: str) -> str:
    """Free text: trimmed, inner white space collapsed to one space."""
    if source_type == "NULL":
        return "CAST(NULL AS VARCHAR)"
    return f"NULLIF(regexp_replace({_trim(as_text(col, source_type))}, '\\s+', ' ', 'g'), '')"


def number(col: str, source_type: str) -> str:
    if source_type == "NULL":
        return "CAST(NULL AS DOUBLE)"
    if is_numeric(source_type):
        value = f"CAST({col} AS DOUBLE)"
    else:
        value = f"TRY_CAST({raw_text(col, source_type)} AS DOUBLE)"
    return f"(CASE WHEN isfinite({value}) THEN {value} END)"


def boolean(col: str, source_type: str) -> str:
    if source_type == "NULL":
        return "CAST(NULL AS BOOLEAN)"
    if source_type.upper() == "BOOLEAN":
        return col
    t = f"lower({raw_text(col, source_type)})"
    return (
        f"(CASE WHEN {t} IN ('true','t','yes','y','1','1.0') THEN TRUE "
        f"WHEN {t} IN ('false','f','no','n','0','0.0') THEN FALSE END)"
    )


def timestamp(col: str, source_type: str) -> str:
    """UTC TIMESTAMPTZ from ISO-8601 (any offset; none means UTC) or epoch seconds."""
    st = source_type.upper()
    if st == "NULL":
        return "CAST(NULL AS TIMESTAMPTZ)"
    if is_numeric(st):
        return f"(CASE WHEN abs({col}) < 1e11 THEN to_timestamp(CAST({col} AS DOUBLE)) END)"
    if st.startswith("TIMESTAMP") or st == "DATE":
        return f"(CASE WHEN isfinite({col}) THEN CAST({col} AS TIMESTAMPTZ) END)"
    t = raw_text(col, st)
    return (
        f"(CASE WHEN regexp_full_match({t}, '{_EPOCH}') "
        f"THEN to_timestamp(CAST({t} AS DOUBLE)) "
        f"WHEN regexp_full_match({t}, '{_ISO}') "
        f"THEN TRY_CAST({t} AS TIMESTAMPTZ) END)"
    )


def in_time_window(col: str, p: IngestParams) -> str:
    """SQL condition: `col` lies between params earliest_timestamp and now + tolerance."""
    earliest = p.earliest_timestamp.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{col} BETWEEN TIMESTAMPTZ '{earliest}+00' "
        f"AND now() + INTERVAL {int(p.future_tolerance_hours)} HOUR"
    )


def time_window_reason(p: IngestParams) -> str:
    earliest = p.earliest_timestamp.strftime("%Y-%m-%d %H:%M:%S")
    return f"outside {earliest} UTC..now + {p.future_tolerance_hours:g}h"


@dataclass(frozen=True)
class Check:
    """One rule: when `condition` holds, `column` of the row has the problem `reason`."""

    column: str
    condition: str
    reason: str


def problem_index(checks: list[Check]) -> str:
    """CASE expression giving the index of the first failing check, else NULL."""
    whens = " ".join(f"WHEN {c.condition} THEN {i}" for i, c in enumerate(checks))
    return f"(CASE {whens} END)"


def lookup(checks: list[Check], index: str, field: str) -> str:
    """CASE over a problem index returning each check's column or reason."""
    whens = " ".join(f"WHEN {i} THEN {sql_str(getattr(c, field))}" for i, c in enumerate(checks))
    return f"(CASE {index} {whens} END)"


def corrections_sql(
    table: str, id_col: str, checks: list[Check], source: str, user_col: str = "NULL"
) -> str:
    """UNION ALL of the rows each check flags: (table, id, user_id, column, value, reason)."""
    parts = [
        f"SELECT {sql_str(table)} AS table_name, {id_col} AS id, "
        f"CAST({user_col} AS VARCHAR) AS user_id, {sql_str(c.column)} AS column_name, "
        f"raw_{c.column} AS value, {sql_str(c.reason)} AS reason FROM {source} WHERE {c.condition}"
        for c in checks
    ]
    return " UNION ALL ".join(parts)
