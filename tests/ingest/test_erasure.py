"""`forget` removes every id of a person and keeps them out of later ingests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tailwise.ingest.erasure import forget_user
from tailwise.ingest.pipeline import run_ingest
from tests.ingest.conftest import KEY


def test_forget_removes_person_and_survives_reingest(raw: Path, tmp_path: Path, params) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "clean"
    run_ingest(out, params, KEY, source=raw)
    result = forget_user(out, "u1", KEY)  # u1 was merged onto u3: both ids go
    assert result.ids == ["u1", "u3"]
    assert result.users_removed == 1 and result.events_removed == 2
    for frame in (pd.read_parquet(out / "users.parquet"), pd.read_parquet(out / "events")):
        assert not frame["user_id"].isin(["u1", "u3"]).any()
    assert pd.read_parquet(out / "user_merges.parquet").empty
    quarantine = pd.read_parquet(out / "quarantine.parquet")
    assert not quarantine["row_json"].str.contains('"user_id":"u1"').any()

    report = run_ingest(out, params, KEY, source=raw)
    users = pd.read_parquet(out / "users.parquet")
    assert not users["user_id"].isin(["u1", "u3"]).any()
    reasons = report["tables"]["users"]["reasons"]["excluded_no_consent"]
    assert reasons["erased on request"] == 1
    t = report["tables"]["events"]
    assert (
        t["input"]
        == t["kept"] + t["duplicates_merged"] + t["quarantined"] + t["excluded_no_consent"]
    )
