"""Ingestion end to end on hand-made data: reconciliation, every defect kind, privacy, consent."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tailwise.ingest.outcome import BUCKETS
from tailwise.ingest.pipeline import run_ingest
from tests.ingest.conftest import KEY, write_raw


def ingest(raw: Path, out: Path, params) -> dict:  # type: ignore[no-untyped-def]
    return run_ingest(out, params, KEY, source=raw)


@pytest.fixture
def done(raw: Path, tmp_path: Path, params) -> tuple[dict, Path]:  # type: ignore[no-untyped-def]
    out = tmp_path / "clean"
    return ingest(raw, out, params), out


def test_every_row_is_accounted_for(done: tuple[dict, Path]) -> None:
    report, out = done
    expected = {"users": 7, "items": 6, "events": 13}
    for table, t in report["tables"].items():
        assert t["input"] == expected[table]
        assert t["input"] == sum(t[b] for b in BUCKETS), table
        for bucket, reasons in t["reasons"].items():
            assert sum(reasons.values()) == t[bucket], (table, bucket)
    on_disk = json.loads((out / "quality_report.json").read_text())
    assert on_disk["tables"] == report["tables"]


def test_event_outcomes(done: tuple[dict, Path]) -> None:
    report, out = done
    ev = report["tables"]["events"]
    assert ev["kept"] == 4  # e1, e2, e3, e11
    assert ev["duplicates_merged"] == 1  # e1 twice
    assert ev["excluded_no_consent"] == 2  # u4 said no, u5 gave no readable consent
    q = pd.read_parquet(out / "quarantine.parquet").query("table_name == 'events'")
    got = {
        (json.loads(r)["event_id"], c, reason)
        for r, c, reason in zip(q["row_json"], q["column_name"], q["reason"], strict=True)
    }
    assert got == {
        ("e5", "user_id", "not in the users table"),
        ("e6", "item_id", "not in the items table"),
        ("e7", "timestamp", "not ISO-8601 or epoch seconds"),
        (
            "e8",
            "event_type",
            "has no weight in params.yaml ingest.event_weights; add it or map it "
            "(known: add_to_cart, page_view, product_view, purchase, rating)",
        ),
        ("e9", "value", "a rating needs a value in 0..5"),
        ("e12", "timestamp", "more than 24 hours in the future"),
    }


def test_clean_events_are_typed_utc_and_weighted(done: tuple[dict, Path]) -> None:
    _, out = done
    ev = pd.read_parquet(out / "events").set_index("event_id")
    assert str(ev["timestamp"].dt.tz) == "UTC"
    assert ev.loc["e1", "timestamp"] == pd.Timestamp("2026-03-01T08:00:00Z")
    assert ev.loc["e2", "timestamp"] == pd.Timestamp(1772366400, unit="s", tz="UTC")
    assert ev.loc["e3", "timestamp"] == pd.Timestamp("2026-03-02T12:00:00Z")
    assert ev.loc["e2", "user_id"] == "u3"  # u3 is the canonical id of the Anna records
    assert ev.loc["e1", "user_id"] == "u3"
    assert pd.isna(ev.loc["e2", "price"])  # -3 corrected to unknown
    assert ev.loc["e3", "weight"] == pytest.approx(2.0 * 4 / 5)
    assert ev.loc["e1", "weight"] == 1.0
    assert ev.loc["e1", "device"] == "mobile"
    # u2 gave no tracking consent: context is not kept.
    assert ev.loc["e3", ["session_id", "device", "channel", "country"]].isna().all()
    parts = sorted(p.name for p in (out / "events").iterdir())
    assert parts == ["event_date=2026-03-01", "event_date=2026-03-02", "event_date=2026-03-03"]


def test_personal_data_never_in_the_clear(done: tuple[dict, Path]) -> None:
    _, out = done
    users = pd.read_parquet(out / "users.parquet")
    assert not {"email", "full_name", "phone", "marketing_source"} & set(users.columns)
    assert {"email_hmac", "full_name_hmac", "phone_hmac"} <= set(users.columns)
    for path in out.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            for secret in (b"example.com", b"M\xc3\xbcller", b"2345678", b"Dora"):
                assert secret not in blob, (path, secret)


def test_near_duplicate_people_are_merged(done: tuple[dict, Path]) -> None:
    report, out = done
    users = pd.read_parquet(out / "users.parquet").set_index("user_id")
    assert "u1" not in users.index
    assert users.loc["u3", "source_records"] == 2
    assert users.loc["u3", "age"] == 34 and not users.loc["u3", "age_imputed"]
    merges = pd.read_parquet(out / "user_merges.parquet")
    assert merges[["user_id", "canonical_user_id", "rule"]].values.tolist() == [
        ["u1", "u3", "email"]
    ]
    assert report["tables"]["users"]["duplicates_merged"] == 1


def test_corrections_and_imputation(done: tuple[dict, Path]) -> None:
    _, out = done
    fixes = pd.read_parquet(out / "corrections.parquet")
    got = set(zip(fixes["table_name"], fixes["id"], fixes["column_name"], strict=True))
    assert got == {
        ("users", "u2", "age"),
        ("items", "i2", "price"),
        ("items", "i4", "price"),
        ("events", "e2", "price"),
    }
    users = pd.read_parquet(out / "users.parquet").set_index("user_id")
    assert users.loc["u2", "age_imputed"] and 13 <= users.loc["u2", "age"] <= 110
    assert users.loc["u6", "country"] == "PL" and users.loc["u6", "country_imputed"]
    items = pd.read_parquet(out / "items.parquet").set_index("item_id")
    assert items.loc["i2", "price_imputed"] and items.loc["i2", "price"] > 0
    assert items.loc["i2", "category"] == items.loc["i4", "category"] == "Home/Kitchen"
    assert items.loc["i3", "category"] == "Fashion/Shoes|Sports/Running"
    assert items.loc["i2", "brand"] == "Acme"


def test_side_files_keep_nothing_of_excluded_people(done: tuple[dict, Path]) -> None:
    report, out = done
    # u4 (no consent) and u5 (unreadable consent) had bad values and events: none of it
    # stays, not even in corrections or quarantine; the counts still add up.
    fixes = pd.read_parquet(out / "corrections.parquet")
    assert not fixes["id"].isin(["u4", "u5", "e4", "e10"]).any()
    quarantine = pd.read_parquet(out / "quarantine.parquet")
    assert not quarantine["row_json"].fillna("").str.contains('"u4"|"u5"').any()
    assert report["tables"]["users"]["values_corrected"] == {
        "age: outside the possible range 13..110": 1
    }


def test_consent_is_honoured(done: tuple[dict, Path]) -> None:
    _, out = done
    users = pd.read_parquet(out / "users.parquet")
    events = pd.read_parquet(out / "events")
    assert not {"u4", "u5"} & (set(users["user_id"]) | set(events["user_id"]))


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_formats_give_the_same_result(tmp_path: Path, params, done, fmt: str) -> None:  # type: ignore[no-untyped-def]
    report_csv, out_csv = done
    raw = write_raw(tmp_path / fmt, fmt)
    report = ingest(raw, tmp_path / f"clean_{fmt}", params)
    assert report["tables"] == report_csv["tables"]
    a = pd.read_parquet(out_csv / "users.parquet")
    b = pd.read_parquet(tmp_path / f"clean_{fmt}" / "users.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_deterministic(raw: Path, tmp_path: Path, params, done) -> None:  # type: ignore[no-untyped-def]
    _, first = done
    ingest(raw, tmp_path / "again", params)
    for name in ("users.parquet", "items.parquet", "quarantine.parquet", "corrections.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(first / name), pd.read_parquet(tmp_path / "again" / name)
        )
    sort = ["event_id"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(first / "events").sort_values(sort).reset_index(drop=True),
        pd.read_parquet(tmp_path / "again" / "events").sort_values(sort).reset_index(drop=True),
    )
