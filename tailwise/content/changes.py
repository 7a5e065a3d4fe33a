"""Users whose segment changed: who `tailwise content push --segment-changed-since` renders
a block for.

The user_daily snapshots (features build) carry each user's segment per day. A user
changed when their newest segment differs from their segment at the cutoff (the newest
snapshot at or before it); users without a snapshot at the cutoff are new, not changed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

COLUMNS = ["user_id", "event_timestamp", "segment_name"]


def segment_changes(snapshots: pd.DataFrame, since: datetime) -> pd.DataFrame:
    """Rows user_id, previous, current for every user whose segment moved after `since`."""
    missing = [c for c in COLUMNS if c not in snapshots.columns]
    if missing:
        raise ValueError(f"user snapshots lack column(s) {missing}")
    frame = snapshots[COLUMNS].dropna(subset=["segment_name"])
    stamps = pd.to_datetime(frame["event_timestamp"], utc=True)
    cutoff = pd.Timestamp(since)
    cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
    frame = frame.assign(event_timestamp=stamps).sort_values(["user_id", "event_timestamp"])
    latest = frame.groupby("user_id", sort=True)["segment_name"].last()
    before = frame[frame["event_timestamp"] <= cutoff].groupby("user_id")["segment_name"].last()
    both = pd.DataFrame({"previous": before, "current": latest.reindex(before.index)})
    changed = both[both["previous"].astype(str) != both["current"].astype(str)]
    return changed.rename_axis("user_id").reset_index().astype(str)


def read_segment_changes(path: Path, since: datetime) -> pd.DataFrame:
    """`segment_changes` of the user_daily table at `path` (Parquet)."""
    if not path.exists():
        raise ValueError(f"no user snapshots at {path}: run `tailwise features build` first")
    return segment_changes(pd.read_parquet(path, columns=COLUMNS), since)
