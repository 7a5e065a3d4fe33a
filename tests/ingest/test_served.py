"""Served events (POST /events, moved to Parquet by the consumer) joining a re-ingest."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tailwise.ingest.errors import IngestError
from tailwise.ingest.events import CLEAN_COLUMNS
from tailwise.ingest.pipeline import run_ingest
from tests.ingest.conftest import KEY


def _write_served(folder: Path, rows: pd.DataFrame) -> None:
    part = folder / "event_date=2026-03-02"
    part.mkdir(parents=True)
    rows[CLEAN_COLUMNS].to_parquet(part / "served-1.parquet", index=False)
    rows[CLEAN_COLUMNS].head(0).to_parquet(part / ".served-2.parquet.tmp.parquet", index=False)


def test_served_events_join_the_clean_events(raw: Path, tmp_path: Path, params) -> None:  # type: ignore[no-untyped-def]
    first = run_ingest(tmp_path / "clean", params, KEY, source=raw)
    clean = pd.read_parquet(tmp_path / "clean" / "events").drop(columns="event_date")
    known = clean.iloc[0]
    new = known.copy()
    new["event_id"], new["timestamp"] = "s1", known["timestamp"] + pd.Timedelta(days=1)
    stranger = new.copy()
    stranger["event_id"], stranger["user_id"] = "s2", "nobody"
    odd_item = new.copy()
    odd_item["event_id"], odd_item["item_id"] = "s3", "not-in-catalogue"
    served = pd.DataFrame([known, new, stranger, odd_item])
    _write_served(tmp_path / "served", served)

    report = run_ingest(tmp_path / "again", params, KEY, source=raw, served=tmp_path / "served")

    ev, before = report["tables"]["events"], first["tables"]["events"]
    assert ev["input"] == before["input"] + 4
    assert ev["kept"] == before["kept"] + 1  # s1
    assert ev["duplicates_merged"] == before["duplicates_merged"] + 1  # the exported copy
    assert ev["quarantined"] == before["quarantined"] + 2  # s2, s3
    out = pd.read_parquet(tmp_path / "again" / "events")
    assert "s1" in set(out["event_id"]) and not {"s2", "s3"} & set(out["event_id"])
    assert (out["event_id"] == known["event_id"]).sum() == 1
    q = pd.read_parquet(tmp_path / "again" / "quarantine.parquet")
    served_q = q[q["reason"].str.startswith("served event")]
    assert sorted(served_q["column_name"]) == ["item_id", "user_id"]
    # The stranger's row is not kept; the unknown item's row names the event.
    rows = {c: r for c, r in zip(served_q["column_name"], served_q["row_json"], strict=True)}
    assert rows["user_id"] is None and json.loads(rows["item_id"])["event_id"] == "s3"


def test_empty_served_folder_changes_nothing(raw: Path, tmp_path: Path, params) -> None:  # type: ignore[no-untyped-def]
    first = run_ingest(tmp_path / "a", params, KEY, source=raw)
    (tmp_path / "served").mkdir()
    second = run_ingest(tmp_path / "b", params, KEY, source=raw, served=tmp_path / "served")
    assert second["tables"]["events"] == first["tables"]["events"]


def test_missing_served_folder_is_a_clear_error(raw: Path, tmp_path: Path, params) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IngestError, match=r"--served .*no such folder"):
        run_ingest(tmp_path / "a", params, KEY, source=raw, served=tmp_path / "missing")
