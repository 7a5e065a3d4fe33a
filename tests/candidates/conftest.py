"""Tiny hand-made event tables for the candidate sources."""

from __future__ import annotations

import pandas as pd

CUT = pd.Timestamp("2026-10-20", tz="UTC")


def events(*rows: tuple) -> pd.DataFrame:
    """Events from (user, item, day of October 2026[, weight[, device]]) tuples."""
    records = []
    for user, item, day, *rest in rows:
        records.append(
            {
                "user_id": user,
                "item_id": item,
                "timestamp": pd.Timestamp(f"2026-10-{day:02d}T12:00", tz="UTC"),
                "weight": rest[0] if rest else 1.0,
                "device": rest[1] if len(rest) > 1 else None,
            }
        )
    return pd.DataFrame.from_records(records)


def items_of(candidates: pd.DataFrame, user: str) -> list[str]:
    rows = candidates[candidates["user_id"] == user].sort_values("rank")
    return rows["item_id"].tolist()
