"""SQL expressions that read raw contract columns into typed values.

Every raw column may arrive as text (CSV), as a native type (Parquet) or as JSON values,
so each parser looks at the DuckDB source type and returns one SQL expression. A value
that cannot be read becomes NULL here; the table modules turn that into a quarantined
row (required columns) or a recorded correction (optional columns).
"""

from __future__ import annotations

from dataclasses import dataclass

_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
)


def is_numeric(source_type: str) -> bool:
    return source_type.upper().startswith(_NUMERIC)


def as_text(col: str, source_type: str = "VARCHAR") -> str:
    """The value as VARCHAR (JSON strings lose their quotes)."""
    if source_type.upper() == "JSON":
        return f"json_extract_string({col}, '$')"
    return f"CAST({col} AS VARCHAR)"


def raw_text(col: str, source_type: str = "VARCHAR") -> str:
    """The value as trimmed text, for messages and quarantine."""
    return f"NULLIF(trim({as_text(col, source_type)}), '')"


def text(col: str, source_type: str) -> str:
    if source_type == "NULL":
        return "CAST(NULL AS VARCHAR)"
    return f"NULLIF(regexp_replace(trim({as_text(col, source_type)}), '\\s+', ' ', 'g'), '')"


def number(col: str, source_type: str) -> str:
    if source_type == "NULL":
        return "CAST(NULL AS DOUBLE)"
    value = (
        f"CAST({col} AS DOUBLE)"
        if is_numeric(source_type)
        else (f"TRY_CAST(trim({as_text(col, source_type)}) AS DOUBLE)")
    )
    return f"(CASE WHEN isfinite({value}) THEN {value} END)"


def boolean(col: str, source_type: str) -> str:
    if source_type == "NULL":
        return "CAST(NULL AS BOOLEAN)"
    if source_type.upper() == "BOOLEAN":
        return col
    t = f"lower(trim({as_text(col, source_type)}))"
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
        return f"CAST({col} AS TIMESTAMPTZ)"
    t = f"trim({as_text(col, st)})"
    return (
        f"(CASE WHEN regexp_full_match({t}, '\\d{{9,11}}(\\.\\d+)?') "
        f"THEN to_timestamp(CAST({t} AS DOUBLE)) "
        f"WHEN regexp_matches({t}, '^\\d{{4}}-\\d{{2}}-\\d{{2}}') "
        f"THEN TRY_CAST({t} AS TIMESTAMPTZ) END)"
    )


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
    whens = " ".join(
        f"WHEN {i} THEN '{getattr(c, field).replace(chr(39), chr(39) * 2)}'"
        for i, c in enumerate(checks)
    )
    return f"(CASE {index} {whens} END)"


def corrections_sql(table: str, id_col: str, checks: list[Check], source: str) -> str:
    """UNION ALL of the rows each correction check flags: (table, id, column, value, reason)."""
    parts = [
        f"SELECT '{table}' AS table_name, {id_col} AS id, '{c.column}' AS column_name, "
        f"raw_{c.column} AS value, '{c.reason}' AS reason FROM {source} WHERE {c.condition}"
        for c in checks
    ]
    return " UNION ALL ".join(parts)
