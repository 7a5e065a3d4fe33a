"""Fixtures: one tiny generated data set shared by the synthetic tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tailwise.synthetic import DefectRates, GenerateConfig, generate

TINY = GenerateConfig(
    users=600,
    items=150,
    days=40,
    seed=7,
    chunk_users=250,
    defects=DefectRates(
        near_duplicate_users=0.05,
        impossible_values=0.01,
        unknown_references=0.01,
        malformed_timestamps=0.01,
    ),
)


@dataclass
class Generated:
    out: Path
    cfg: GenerateConfig
    users: pd.DataFrame
    items: pd.DataFrame
    events: pd.DataFrame
    truth_users: pd.DataFrame
    truth_items: pd.DataFrame
    defects: pd.DataFrame


def parse_timestamps(text: pd.Series) -> pd.Series:
    """Epoch seconds of every accepted rendering (ISO Z, ISO offset, naive UTC,
    epoch text); NaN for malformed text."""
    text = text.astype("string")
    epoch = text.str.fullmatch(r"\d{9,11}").fillna(False)
    parsed = pd.to_datetime(text.where(~epoch), format="ISO8601", utc=True, errors="coerce")
    seconds = (parsed - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy(float)
    numbers = pd.to_numeric(text.where(epoch), errors="coerce").to_numpy(float)
    return pd.Series(np.where(epoch.to_numpy(bool), numbers, seconds), index=text.index)


def _read(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    out = tmp_path_factory.mktemp("synthetic")
    done: list[int] = []
    generate(TINY, out, progress=done.append)
    assert done[-1] == TINY.users
    events = _read(out / "events.parquet")
    events["ts"] = parse_timestamps(events["timestamp"])
    return Generated(
        out,
        TINY,
        _read(out / "users.parquet"),
        _read(out / "items.parquet"),
        events,
        _read(out / "ground_truth" / "users.parquet"),
        _read(out / "ground_truth" / "items.parquet"),
        _read(out / "defects.parquet"),
    )


@pytest.fixture(scope="session")
def clean_events(generated: Generated) -> pd.DataFrame:
    """Events without listed defects, mapped back to the real person's user id."""
    ev = generated.events.drop_duplicates("event_id")
    bad = generated.defects.query("kind in ['unknown_references', 'malformed_timestamps']")
    ev = ev[~ev["event_id"].isin(bad["id"])].copy()
    dups = generated.defects.query("kind == 'near_duplicate_users'")
    ev["person"] = (
        ev["user_id"]
        .map(dict(zip(dups["id"], dups["related_id"], strict=True)))
        .fillna(ev["user_id"])
    )
    assert np.isfinite(ev["ts"]).all()
    return ev
