"""Users whose segment changed since a cutoff."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from tailwise.content.changes import read_segment_changes, segment_changes


def snapshots() -> pd.DataFrame:
    rows = [
        ("u1", "2026-11-28", "browsers"),
        ("u1", "2026-11-30", "browsers"),
        ("u1", "2026-12-02", "frequent buyers"),  # moved
        ("u2", "2026-11-29", "lapsed"),
        ("u2", "2026-12-02", "lapsed"),  # stayed
        ("u3", "2026-12-02", "new"),  # no snapshot at the cutoff: new, not changed
        ("u4", "2026-11-20", "occasional"),
        ("u4", "2026-12-01", None),  # no segment since: not a change
        ("u5", "2026-11-30", "lapsed"),
        ("u5", "2026-12-01", "browsers"),
        ("u5", "2026-12-02", "lapsed"),  # back where it was
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "event_timestamp", "segment_name"])
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame.sample(frac=1, random_state=3)  # any order


def test_only_users_whose_segment_moved_since_the_cutoff() -> None:
    out = segment_changes(snapshots(), datetime(2026, 11, 30, 12))
    assert out.to_dict("records") == [
        {"user_id": "u1", "previous": "browsers", "current": "frequent buyers"}
    ]
    later = segment_changes(snapshots(), datetime(2026, 12, 1, 12))
    assert later["user_id"].tolist() == ["u1", "u5"]


def test_bad_input_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="segment_name"):
        segment_changes(pd.DataFrame({"user_id": [], "event_timestamp": []}), datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="features build"):
        read_segment_changes(tmp_path / "user_daily.parquet", datetime(2026, 1, 1))
