"""Writing the clean tables with the types `tailwise.schema` gives them.

pandas infers an Arrow type from the values, so a column without a single value becomes
Arrow's `null` type, which Feast and DuckDB cannot cast later. Every clean Parquet file is
written through an explicit schema instead: all columns, always, with their contract type.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tailwise.schema import DType

ARROW_TYPES: dict[DType, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "categories": pa.string(),
}


def arrow_schema(columns: dict[str, DType]) -> pa.Schema:
    return pa.schema([pa.field(name, ARROW_TYPES[dtype]) for name, dtype in columns.items()])


def typed_columns(
    base: dict[str, DType], extras_cat: list[str], extras_num: list[str]
) -> dict[str, DType]:
    """The clean columns plus a mapping's declared extra columns (text or numbers)."""
    return {**base, **dict.fromkeys(extras_cat, "string"), **dict.fromkeys(extras_num, "float")}


def write_table(frame: pd.DataFrame, path: Path, columns: dict[str, DType]) -> None:
    """Write `frame[columns]` to Parquet with exactly the types `columns` name."""
    data = frame[list(columns)].reset_index(drop=True)
    for name, dtype in columns.items():
        if dtype == "timestamp":
            data[name] = pd.to_datetime(data[name], utc=True).astype("datetime64[us, UTC]")
        elif dtype in ("string", "categories"):
            # None for missing whatever pandas held (NaN, pd.NA, None), text otherwise.
            data[name] = data[name].astype(object).where(data[name].notna(), None)
    table = pa.Table.from_pandas(data, schema=arrow_schema(columns), preserve_index=False)
    pq.write_table(table, path)
