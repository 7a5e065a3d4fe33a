"""The clean tables as the feature builders read them: every input column, always typed.

Every optional contract column may be absent from a clean table or present and entirely
null (which Parquet may store with the type `null`). Before any builder runs, users and
items get each column they read with its declared type, as typed nulls where the data has
none, and events are read through a DuckDB view that does the same. Feature tables then
always hold every declared feature with the type Feast declares: a feature that cannot be
computed is null (or the documented default of its builder, e.g. a count of 0), never a
column of type `null` that Feast's retrieval cannot cast.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb
import pandas as pd

from tailwise.ingest.parse import sql_ident, sql_str
from tailwise.schema import CLEAN_ITEMS

# Column -> kind: string, float, bool (default False) or timestamp (UTC).
USER_INPUTS = {
    "user_id": "string",
    "age": "float",
    "gender": "string",
    "country": "string",
    "region": "string",
    "income_band": "string",
    "signup_at": "timestamp",
    "age_imputed": "bool",
    "gender_imputed": "bool",
    "country_imputed": "bool",
    "income_band_imputed": "bool",
}
# The clean items as ingest types them (tailwise/schema.py), but for ingest's own flag.
ITEM_INPUTS = {name: kind for name, kind in CLEAN_ITEMS.items() if name != "price_imputed"}
# Optional event columns -> DuckDB type, and the value used when a column is absent.
EVENT_INPUTS = {
    "event_id": "VARCHAR",
    "value": "DOUBLE",
    "price": "DOUBLE",
    "weight": "DOUBLE",
    "session_id": "VARCHAR",
    "device": "VARCHAR",
    "channel": "VARCHAR",
    "country": "VARCHAR",
}
EVENT_DEFAULTS = {"weight": "1.0"}  # ingest always writes weights; hand-made data may not
EVENT_REQUIRED = ("user_id", "item_id", "event_type", "timestamp")


def typed(frame: pd.DataFrame, kinds: Mapping[str, str]) -> pd.DataFrame:
    """`frame` with every column of `kinds`, cast; absent columns are typed nulls. Other
    columns (declared extras) are kept as they are."""
    out = frame.reset_index(drop=True).copy()
    for name, kind in kinds.items():
        column = out[name] if name in out else pd.Series([None] * len(out), dtype=object)
        out[name] = _cast(column, kind)
    return out


def _cast(column: pd.Series, kind: str) -> pd.Series:
    if kind == "float":
        return pd.to_numeric(column, errors="coerce").astype("float64")
    if kind == "bool":
        return column.astype("boolean").fillna(False).astype(bool)
    if kind == "timestamp":
        return pd.to_datetime(column, utc=True, errors="coerce").dt.as_unit("us")
    text = column.astype(object)
    return text.where(text.notna(), None).map(lambda v: v if v is None else str(v))


def read_users(clean: Path) -> pd.DataFrame:
    return typed(pd.read_parquet(clean / "users.parquet"), USER_INPUTS)


def read_items(clean: Path) -> pd.DataFrame:
    return typed(pd.read_parquet(clean / "items.parquet"), ITEM_INPUTS)


def events_view(
    con: duckdb.DuckDBPyConnection, events_glob: str | list[str], name: str = "events"
) -> str:
    """Create view `name` over the clean event files (a glob or a list of files) with every
    optional column typed (a typed null where it is absent or stored as `null`); returns
    `name`."""
    files = (
        sql_str(events_glob)
        if isinstance(events_glob, str)
        else f"[{', '.join(sql_str(f) for f in events_glob)}]"
    )
    scan = f"read_parquet({files}, hive_partitioning = false, union_by_name = true)"
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
    missing = [c for c in EVENT_REQUIRED if c not in present]
    if missing:
        from tailwise.errors import DataError

        raise DataError(
            f"{events_glob}: required event columns {missing} are missing; is it a "
            "`tailwise ingest` output?"
        )
    columns = [*EVENT_REQUIRED]
    for column, sql_type in EVENT_INPUTS.items():
        value = sql_ident(column) if column in present else EVENT_DEFAULTS.get(column, "NULL")
        columns.append(f"CAST({value} AS {sql_type}) AS {sql_ident(column)}")
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {', '.join(columns)} FROM {scan}")
    return name
