"""Edge cases: ids spelled differently per format, odd files and names, empty results."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tailwise.ingest.erasure import forget_user
from tailwise.ingest.errors import IngestError, IngestStopped
from tailwise.ingest.outcome import BUCKETS
from tailwise.ingest.pipeline import run_ingest
from tailwise.params import IngestParams
from tests.ingest.conftest import EVENTS, KEY, USER_COLUMNS, USERS, write_raw


def reconciled(report: dict) -> None:  # type: ignore[type-arg]
    for table, t in report["tables"].items():
        assert t["input"] == sum(t[b] for b in BUCKETS), table


def test_erased_person_stays_out_when_a_new_record_becomes_canonical(
    raw: Path, tmp_path: Path, params: IngestParams
) -> None:
    out = tmp_path / "clean"
    run_ingest(out, params, KEY, source=raw)
    forget_user(out, "u1", KEY)
    users = pd.read_csv(raw / "users.csv", dtype=str, keep_default_na=False)
    newer = users.loc[users["user_id"] == "u1"].assign(user_id="u0", signup_at="2025-01-01")
    pd.concat([users, newer]).to_csv(raw / "users.csv", index=False)
    report = run_ingest(out, params, KEY, source=raw)
    clean = pd.read_parquet(out / "users.parquet")
    assert not clean["user_id"].isin(["u0", "u1", "u3"]).any()
    assert not pd.read_parquet(out / "events")["user_id"].isin(["u0", "u1", "u3"]).any()
    assert not pd.read_parquet(out / "user_merges.parquet")["canonical_user_id"].isin(["u0"]).any()
    reconciled(report)


def test_no_event_kept_stops_and_still_reports(tmp_path: Path, params: IngestParams) -> None:
    raw = write_raw(tmp_path / "raw", "csv")
    users = pd.read_csv(raw / "users.csv", dtype=str)
    users["consent_personalization"] = "false"
    users.to_csv(raw / "users.csv", index=False)
    with pytest.raises(IngestStopped, match="events: no row of 13 was kept") as stop:
        run_ingest(tmp_path / "out", params, KEY, source=raw)
    assert "consent_personalization" in str(stop.value)
    report = json.loads((tmp_path / "out" / "rejected" / "quality_report.json").read_text())
    assert report["tables"]["events"]["kept"] == 0
    assert report["stopped"]
    assert not (tmp_path / "out" / "quality_report.json").exists()
    reconciled(report)


def test_numeric_ids_match_across_formats(tmp_path: Path, params: IngestParams) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    # A null makes pandas store integer ids as float (3.0); events say 3.
    users = pd.DataFrame(
        {
            "user_id": [1.0, 2.0, None, 3.0],
            "consent_personalization": True,
            "consent_tracking": True,
        }
    )
    users.to_parquet(raw / "users.parquet")
    pd.DataFrame({"item_id": [" 10 ", "11"]}).to_csv(raw / "items.csv", index=False)
    (raw / "events.jsonl").write_text(
        "\n".join(
            json.dumps(e)
            for e in [
                {"user_id": 3, "item_id": 10, "event_type": "purchase", "timestamp": "2026-01-01"},
                {
                    "user_id": "1",
                    "item_id": "11",
                    "event_type": "purchase",
                    "timestamp": "2026-01-02",
                },
            ]
        )
        + "\n"
    )
    report = run_ingest(tmp_path / "out", params, KEY, source=raw)
    assert report["tables"]["events"]["kept"] == 2
    assert report["tables"]["users"]["quarantined"] == 1
    assert sorted(pd.read_parquet(tmp_path / "out" / "events")["user_id"]) == ["1", "3"]


def test_items_without_category_or_brand(tmp_path: Path, params: IngestParams) -> None:
    raw = write_raw(tmp_path / "raw", "csv")
    pd.read_csv(raw / "items.csv").drop(columns=["category", "brand"]).to_csv(
        raw / "items.csv", index=False
    )
    run_ingest(tmp_path / "out", params, KEY, source=raw)
    items = pd.read_parquet(tmp_path / "out" / "items.parquet")
    assert items["category"].isna().all() and items["brand"].isna().all()


def test_late_odd_json_value_is_a_correction_not_a_crash(
    tmp_path: Path, params: IngestParams
) -> None:
    raw = write_raw(tmp_path / "raw", "csv")
    good = {
        "user_id": "u6",
        "item_id": "i5",
        "event_type": "add_to_cart",
        "value": 2,
        "timestamp": "2026-03-03T12:00:00Z",
    }
    rows = [dict(good, event_id=f"x{i}") for i in range(25_000)]
    rows.append(dict(good, event_id="odd", value="two", nested={"a": [1, 2]}))
    (raw / "events.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = run_ingest(tmp_path / "out", params, KEY, source=raw)
    assert report["tables"]["events"]["kept"] == 25_001
    assert report["tables"]["events"]["values_corrected"] == {"value: not a number": 1}


def test_out_of_range_dates_are_corrections(tmp_path: Path, params: IngestParams) -> None:
    raw = write_raw(tmp_path / "raw", "csv")
    users = pd.read_csv(raw / "users.csv", dtype=str)
    users.loc[users["user_id"] == "u6", "signup_at"] = "2099-01-01"
    users.to_csv(raw / "users.csv", index=False)
    items = pd.read_csv(raw / "items.csv", dtype=str)
    items.loc[items["item_id"] == "i5", "created_at"] = "1890-01-01"
    items.to_csv(raw / "items.csv", index=False)
    run_ingest(tmp_path / "out", params, KEY, source=raw)
    fixes = pd.read_parquet(tmp_path / "out" / "corrections.parquet")
    got = set(zip(fixes["id"], fixes["column_name"], strict=True))
    assert {("u6", "signup_at"), ("i5", "created_at")} <= got
    assert (
        pd.read_parquet(tmp_path / "out" / "users.parquet")
        .set_index("user_id")
        .loc["u6", "signup_at"]
        is pd.NaT
    )


def test_quotes_in_paths_and_event_types(tmp_path: Path) -> None:
    raw = write_raw(tmp_path / "bob's raw [2026]", "csv")
    lines = (raw / "events.jsonl").read_text().replace('"clik"', '"it\'s"')
    (raw / "events.jsonl").write_text(lines)
    params = IngestParams(
        duckdb_memory_limit="1GB",
        event_weights={
            "product_view": 1,
            "purchase": 5,
            "add_to_cart": 3,
            "rating": 2,
            "It's": 0.5,
        },
    )
    out = tmp_path / "o'clean"
    report = run_ingest(out, params, KEY, source=raw)
    assert "e8" in set(pd.read_parquet(out / "events")["event_id"])
    reconciled(report)


def test_folder_with_mixed_formats_is_refused(tmp_path: Path, params: IngestParams) -> None:
    raw = write_raw(tmp_path / "raw", "csv")
    (raw / "events").mkdir()
    (raw / "events.jsonl").rename(raw / "events" / "a.jsonl")
    pd.DataFrame([EVENTS[0]]).to_csv(raw / "events" / "b.csv", index=False)
    with pytest.raises(IngestError, match="several formats"):
        run_ingest(tmp_path / "out", params, KEY, source=raw)


def test_country_imputed_through_merged_ids(tmp_path: Path, params: IngestParams) -> None:
    raw = write_raw(tmp_path / "raw", "csv")
    users = pd.DataFrame(USERS, columns=USER_COLUMNS)
    users.loc[users["user_id"].isin(["u1", "u3"]), "country"] = ""
    users.to_csv(raw / "users.csv", index=False)
    run_ingest(tmp_path / "out", params, KEY, source=raw)
    clean = pd.read_parquet(tmp_path / "out" / "users.parquet").set_index("user_id")
    # Only u1's events carry DE; u1 was merged onto u3.
    assert clean.loc["u3", "country"] == "DE" and clean.loc["u3", "country_imputed"]


def test_rerun_replaces_only_its_own_outputs(
    raw: Path, tmp_path: Path, params: IngestParams
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    run_ingest(out, params, KEY, source=raw)
    run_ingest(out, params, KEY, source=raw)
    assert (out / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out-")]  # staging removed
