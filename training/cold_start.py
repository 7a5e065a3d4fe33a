"""Popular items for people a model does not know, by request context.

    training events (the model's history) --last `days` days--> weight per item and context
      --popular_by_context--> cold_start.parquet
          dimension  'all' | 'device' | 'country'
          value      the device or country ('' for 'all')
          item_id
          rank       1..top within (dimension, value)
          score      the item's share of the event weight of that context (sums to <= 1)

A model version carries this table so serving can answer an unknown user from the request
alone: the context row for their device or country when it has one, else 'all'. Event
weights are the ingest weights (a purchase counts more than a view), so the list favours
items people act on. Rows are sorted by dimension, value, rank; ties break by item_id, so
the table is the same for the same events.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

FILE = "cold_start.parquet"
DIMENSIONS = ("all", "device", "country")
COLUMNS = ("dimension", "value", "item_id", "rank", "score")
DESCRIPTION = {
    "file": FILE,
    "what": "popular items for users the model does not know, by request context",
    "columns": {
        "dimension": "'all', 'device' or 'country'",
        "value": "the device or country; '' for 'all'",
        "item_id": "item id",
        "rank": "1 = most popular within (dimension, value)",
        "score": "the item's share of the context's event weight (float)",
    },
    "lookup": "use (device, request device) or (country, request country) when present, "
    "else ('all', '')",
}


class ColdStartParams(BaseModel):
    """The `training.cold_start` section of params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: float = Field(14, gt=0, description="Trailing window of the training events.")
    top: int = Field(200, ge=1, description="Items kept per context.")


def popular_by_context(events: pd.DataFrame, days: float = 14, top: int = 200) -> pd.DataFrame:
    """The cold-start table of the module docstring from the last `days` of `events`."""
    for column in ("item_id", "timestamp", "weight"):
        if column not in events.columns:
            raise ValueError(f"events lack column {column!r}; got {list(events.columns)}")
    if days <= 0 or top < 1:
        raise ValueError(f"need days > 0 and top >= 1, got days={days}, top={top}")
    if events.empty:
        raise ValueError("no events: the cold-start table needs the training events")
    stamps = pd.to_datetime(events["timestamp"], utc=True)
    recent = events.loc[
        (stamps >= stamps.max() - pd.Timedelta(days=days))
        & events["item_id"].notna()
        & (events["weight"] > 0)
    ]
    parts = [_ranked(recent.assign(dimension="all", value=""), top)]
    for dimension in DIMENSIONS[1:]:
        if dimension in recent.columns:
            known = recent[recent[dimension].notna() & (recent[dimension].astype(str) != "")]
            parts.append(_ranked(known.assign(dimension=dimension, value=known[dimension]), top))
    table = pd.concat(parts, ignore_index=True)
    return table[list(COLUMNS)]


_DTYPES = {
    "dimension": object,
    "value": object,
    "item_id": object,
    "rank": np.int64,
    "score": np.float64,
}


def _ranked(frame: pd.DataFrame, top: int) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()})
    frame = frame.assign(value=frame["value"].astype(str), item_id=frame["item_id"].astype(str))
    weight = frame.groupby(["dimension", "value", "item_id"])["weight"].sum().reset_index()
    total = weight.groupby(["dimension", "value"])["weight"].transform("sum")
    weight["score"] = (weight["weight"] / total).astype(np.float64)
    weight = weight.sort_values(
        ["dimension", "value", "score", "item_id"], ascending=[True, True, False, True]
    )
    weight["rank"] = weight.groupby(["dimension", "value"]).cumcount().astype(np.int64) + 1
    kept = weight[weight["rank"] <= top]
    return kept.astype(_DTYPES)[list(COLUMNS)].reset_index(drop=True)


def write(table: pd.DataFrame, folder: Path) -> Path:
    """`folder/cold_start.parquet`."""
    path = Path(folder) / FILE
    table.to_parquet(path, index=False)
    return path
