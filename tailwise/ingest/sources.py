"""Finding raw files and mapping their columns onto the contract.

A source is either a directory holding `users`, `items` and `events` files (CSV, Parquet
or JSONL, contract column names) or a YAML mapping that names files and columns. Either
way each table becomes a DuckDB view `raw_<table>` whose columns are the contract's
names (plus declared extras), so the validators never see source-specific names. An
optional column that is absent, or present without a single value, has source type
"NULL": the parsers turn it into a typed NULL and consent columns into the default.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any, Literal

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tailwise.ingest.errors import IngestError
from tailwise.ingest.parse import raw_text, sql_ident, sql_str
from tailwise.schema import TABLES, Table

Format = Literal["csv", "parquet", "jsonl"]
_EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


class TableMapping(BaseModel):
    """How one source file (or glob) becomes one contract table."""

    model_config = ConfigDict(extra="forbid")

    path: str
    format: Format | None = None
    columns: dict[str, str] = Field(default_factory=dict, description="contract name: source name")
    constants: dict[str, Any] = Field(default_factory=dict, description="contract name: value")
    extra_categorical: list[str] = Field(default_factory=list)
    extra_numeric: list[str] = Field(default_factory=list)
    event_types: dict[str, str] = Field(
        default_factory=dict, description="source type: contract type"
    )


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: TableMapping
    items: TableMapping
    events: TableMapping


def load_mapping(path: Path) -> tuple[Mapping, Path]:
    """Parse a mapping file; relative paths in it are relative to the file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise IngestError(f"mapping {path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise IngestError(f"mapping {path}: not valid YAML: {exc}") from exc
    try:
        return Mapping.model_validate(raw), path.parent
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise IngestError(f"mapping {path}: {where}") from exc


def directory_mapping(source: Path) -> Mapping:
    """The mapping implied by a directory of contract-named files."""
    if not source.is_dir():
        raise IngestError(f"source {source}: not a directory")
    tables = {}
    for name in TABLES:
        found = _find_table_file(source, name)
        tables[name] = TableMapping(path=found)
    return Mapping(**tables)


def _find_table_file(source: Path, name: str) -> str:
    for ext in _EXTENSIONS:
        if (source / f"{name}{ext}").is_file():
            return glob.escape(str(source / f"{name}{ext}"))
    folder = source / name
    if folder.is_dir():
        found = {f.suffix.lower() for f in folder.rglob("*") if f.suffix.lower() in _EXTENSIONS}
        if len({_EXTENSIONS[e] for e in found}) > 1:
            raise IngestError(
                f"source {folder}: holds files of several formats ({', '.join(sorted(found))}); "
                "keep one format per table or list the files in a mapping"
            )
        if found:
            return glob.escape(str(folder)) + "/**/*" + found.pop()
    wanted = ", ".join(f"{name}{e}" for e in (".csv", ".parquet", ".jsonl"))
    raise IngestError(f"source {source}: no {name} table found (expected one of {wanted})")


def register_table(
    con: duckdb.DuckDBPyConnection, table: Table, spec: TableMapping, base: Path
) -> dict[str, str]:
    """Create view raw_<table> with contract column names; return {column: source type}."""
    path = spec.path if Path(spec.path).is_absolute() else f"{glob.escape(str(base))}/{spec.path}"
    files = sorted(glob.glob(path, recursive=True))
    if not files:
        raise IngestError(f"{table.name}: no file matches {path}")
    for f in files:
        if Path(f).stat().st_size == 0:
            raise IngestError(f"{table.name}: {f} is empty (0 bytes)")
    fmt = spec.format or _EXTENSIONS.get(Path(files[0]).suffix.lower())
    if fmt is None:
        raise IngestError(f"{table.name}: cannot tell the format of {files[0]}; set format:")
    reader = _reader_sql(fmt, files)
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
    except duckdb.Error as exc:
        raise IngestError(f"{table.name}: cannot read {path} as {fmt}: {exc}") from exc
    source_types = {row[0]: str(row[1]) for row in described}
    if fmt == "jsonl":
        reader = _reader_sql(fmt, files, list(source_types))
        source_types = dict.fromkeys(source_types, "JSON")
    select, types = _projection(table, spec, source_types, path)
    con.execute(f"CREATE OR REPLACE VIEW raw_{table.name} AS SELECT {select} FROM {reader}")
    try:
        n = con.execute(f"SELECT count(*) FROM raw_{table.name}").fetchone()[0]  # type: ignore[index]
    except duckdb.Error as exc:
        raise IngestError(f"{table.name}: cannot read {path} as {fmt}: {exc}") from exc
    if n == 0:
        raise IngestError(f"{table.name}: {path} has a header but no rows")
    return _mark_empty(con, table, spec, types)


def _mark_empty(
    con: duckdb.DuckDBPyConnection, table: Table, spec: TableMapping, types: dict[str, str]
) -> dict[str, str]:
    """An optional column present but without one value is treated as absent (type "NULL"),
    so every later step sees one shape for "this dataset has no such data"."""
    present = [
        c.name
        for c in table.columns
        if not c.required and types[c.name] != "NULL" and c.name not in spec.constants
    ]
    if not present:
        return types
    counts = ", ".join(f"count({raw_text(c, types[c])})" for c in present)
    row = con.execute(f"SELECT {counts} FROM raw_{table.name}").fetchone() or ()
    empty = {c for c, n in zip(present, row, strict=True) if not n}
    return {c: "NULL" if c in empty else t for c, t in types.items()}


def _reader_sql(fmt: Format, files: list[str], json_columns: list[str] | None = None) -> str:
    quoted = "[" + ", ".join(sql_str(f) for f in files) + "]"
    if fmt == "csv":
        return f"read_csv({quoted}, header=true, all_varchar=true, union_by_name=true)"
    if fmt == "parquet":
        return f"read_parquet({quoted}, union_by_name=true)"
    if json_columns is None:
        return f"read_json({quoted}, format='newline_delimited', union_by_name=true)"
    # Every column as JSON: types guessed from a sample would abort on a later odd row.
    cols = "{" + ", ".join(f"{sql_str(c)}: 'JSON'" for c in json_columns) + "}"
    return f"read_json({quoted}, format='newline_delimited', columns={cols})"


def _projection(
    table: Table, spec: TableMapping, source_types: dict[str, str], path: str
) -> tuple[str, dict[str, str]]:
    unknown = set(spec.columns) - set(table.names)
    if unknown:
        raise IngestError(
            f"{table.name}: mapping names {sorted(unknown)}, which are not contract columns "
            f"(contract: {', '.join(table.names)})"
        )
    parts: list[str] = []
    types: dict[str, str] = {}
    for col in table.columns:
        src = spec.columns.get(col.name, col.name)
        if col.name in spec.constants:
            value = spec.constants[col.name]
            parts.append(f"{_literal(value)} AS {col.name}")
            types[col.name] = "BOOLEAN" if isinstance(value, bool) else "VARCHAR"
        elif src in source_types:
            parts.append(f"{sql_ident(src)} AS {col.name}")
            types[col.name] = source_types[src]
        elif col.required:
            raise IngestError(
                f"{table.name}: required column '{col.name}' is missing from {path} "
                f"(found: {', '.join(source_types)}); rename it or map it in a mapping file"
            )
        else:
            parts.append(f"NULL AS {col.name}")
            types[col.name] = "NULL"
    for extra in [*spec.extra_categorical, *spec.extra_numeric]:
        if extra not in source_types:
            raise IngestError(f"{table.name}: declared extra column '{extra}' is not in {path}")
        if extra in table.names:
            raise IngestError(f"{table.name}: extra column '{extra}' clashes with the contract")
        parts.append(f"{sql_ident(extra)} AS {sql_ident(extra)}")
        types[extra] = source_types[extra]
    return ", ".join(parts), types


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if value is None:
        return "NULL"
    return sql_str(str(value))
