"""Any era: data from any time after 1970 ingests with the default parameters."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from tailwise.ingest.pipeline import run_ingest
from tailwise.params import IngestParams, load_params
from tests.ingest.conftest import KEY

ROOT = Path(__file__).resolve().parents[2]


def _write(folder: Path, timestamps: list[str], signup: str) -> Path:
    folder.mkdir(parents=True)
    n = len(timestamps)
    pd.DataFrame(
        {
            "user_id": ["a", "b"],
            "signup_at": signup,
            "consent_personalization": True,
            "consent_tracking": True,
        }
    ).to_csv(folder / "users.csv", index=False)
    pd.DataFrame({"item_id": ["x", "y"], "created_at": signup}).to_csv(
        folder / "items.csv", index=False
    )
    pd.DataFrame(
        {
            "user_id": ["a", "b"] * (n // 2) + ["a"] * (n % 2),
            "item_id": ["x"] * n,
            "event_type": "rating",
            "value": 4,
            "timestamp": timestamps,
        }
    ).to_csv(folder / "events.csv", index=False)
    return folder


def test_default_floor_is_1970_in_code_and_params_yaml() -> None:
    assert IngestParams().earliest_timestamp == datetime(1970, 1, 1)
    assert load_params(ROOT / "params.yaml").ingest.earliest_timestamp == datetime(1970, 1, 1)


@pytest.mark.parametrize(
    "timestamps",
    [
        ["1975-03-01T10:00:00Z", "1975-06-30 12:00:00", "1975-12-31"],
        ["1997-04-01T10:00:00+02:00", "1998-01-01T00:00:00Z", "1999-12-31T23:59:59Z"],
        # epoch seconds: 1975-01-01 and 1997-07-01
        ["157766400", "867715200"],
    ],
    ids=["1975", "1997", "epoch"],
)
def test_old_events_ingest_with_default_params(tmp_path: Path, timestamps: list[str]) -> None:
    raw = _write(tmp_path / "raw", timestamps, signup="1974-01-01")
    report = run_ingest(tmp_path / "out", IngestParams(duckdb_memory_limit="1GB"), KEY, source=raw)
    events = report["tables"]["events"]
    assert events["kept"] == len(timestamps) and events["quarantined"] == 0
    clean = pd.read_parquet(tmp_path / "out" / "events")
    years = sorted(clean["timestamp"].dt.year)
    assert years == sorted(pd.to_datetime(_as_datetimes(timestamps), utc=True).year)
    users = pd.read_parquet(tmp_path / "out" / "users.parquet")
    assert users["signup_at"].dt.year.eq(1974).all()
    assert report["tables"]["users"]["values_corrected"] == {}


def _as_datetimes(values: list[str]) -> list[pd.Timestamp]:
    return [
        pd.Timestamp(int(v), unit="s", tz="UTC") if v.isdigit() else pd.Timestamp(v) for v in values
    ]


def test_events_before_the_floor_are_quarantined_with_the_floor(tmp_path: Path) -> None:
    """A floor still applies: before 1970 (negative epoch) is an error in the data."""
    timestamps = ["1969-12-31T23:00:00Z", "-3600"] + [f"1980-01-0{d}" for d in range(1, 5)]
    raw = _write(tmp_path / "raw", timestamps, signup="1979-01-01")
    report = run_ingest(tmp_path / "out", IngestParams(duckdb_memory_limit="1GB"), KEY, source=raw)
    events = report["tables"]["events"]
    assert events["quarantined"] == 2 and events["kept"] == 4
    assert events["reasons"]["quarantined"] == {"timestamp: before 1970-01-01 00:00:00 UTC": 2}
