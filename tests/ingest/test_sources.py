"""Bad files get clear errors naming the file and column; mapping files work."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tailwise.ingest.errors import IngestError
from tailwise.ingest.pipeline import run_ingest
from tests.ingest.conftest import KEY, write_raw


def test_missing_required_column_is_named(raw: Path, tmp_path: Path, params) -> None:  # type: ignore[no-untyped-def]
    users = pd.read_csv(raw / "users.csv").drop(columns=["user_id"])
    users.to_csv(raw / "users.csv", index=False)
    with pytest.raises(IngestError, match=r"users: required column 'user_id' is missing"):
        run_ingest(tmp_path / "out", params, KEY, source=raw)


def test_empty_file(raw: Path, tmp_path: Path, params) -> None:  # type: ignore[no-untyped-def]
    (raw / "items.csv").write_text("")
    with pytest.raises(IngestError, match=r"items: .*items.csv is empty"):
        run_ingest(tmp_path / "out", params, KEY, source=raw)


def test_header_only(raw: Path, tmp_path: Path, params) -> None:  # type: ignore[no-untyped-def]
    (raw / "items.csv").write_text("item_id,title\n")
    with pytest.raises(IngestError, match=r"items: .* has a header but no rows"):
        run_ingest(tmp_path / "out", params, KEY, source=raw)


def test_unreadable_file(raw: Path, tmp_path: Path, params) -> None:  # type: ignore[no-untyped-def]
    (raw / "users.csv").unlink()
    (raw / "users.parquet").write_bytes(b"this is not parquet at all")
    with pytest.raises(IngestError, match=r"users: cannot read .*users.parquet as parquet"):
        run_ingest(tmp_path / "out", params, KEY, source=raw)


def test_missing_table(raw: Path, tmp_path: Path, params) -> None:  # type: ignore[no-untyped-def]
    (raw / "events.jsonl").unlink()
    with pytest.raises(IngestError, match=r"no events table found"):
        run_ingest(tmp_path / "out", params, KEY, source=raw)


def test_wrong_types_become_row_level_findings(raw: Path, tmp_path: Path, params) -> None:  # type: ignore[no-untyped-def]
    items = pd.read_csv(raw / "items.csv", dtype=str)
    items.loc[0, "price"] = "twelve"
    items.to_csv(raw / "items.csv", index=False)
    run_ingest(tmp_path / "out", params, KEY, source=raw)
    fixes = pd.read_parquet(tmp_path / "out" / "corrections.parquet")
    row = fixes.query("id == 'i1'").iloc[0]
    assert (row["column_name"], row["value"], row["reason"]) == ("price", "twelve", "not a number")


def test_mapping_file_renames_and_keeps_declared_extras(tmp_path: Path, params) -> None:  # type: ignore[no-untyped-def]
    raw = write_raw(tmp_path / "shop", "csv")
    users = pd.read_csv(raw / "users.csv", dtype=str).rename(
        columns={"user_id": "customer_no", "email": "mail"}
    )
    users["loyalty_tier"] = "gold"
    users["lifetime_value"] = "120.5"
    users.to_csv(raw / "customers.csv", index=False)
    (raw / "users.csv").unlink()
    mapping = {
        "users": {
            "path": "shop/customers.csv",
            "columns": {"user_id": "customer_no", "email": "mail"},
            "extra_categorical": ["loyalty_tier"],
            "extra_numeric": ["lifetime_value"],
        },
        "items": {"path": "shop/items.csv"},
        "events": {"path": "shop/events.jsonl", "event_types": {"clik": "product_view"}},
    }
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(mapping))
    report = run_ingest(tmp_path / "out", params, KEY, mapping=path)
    clean = pd.read_parquet(tmp_path / "out" / "users.parquet")
    assert {"loyalty_tier", "lifetime_value"} <= set(clean.columns)
    assert "marketing_source" not in clean.columns  # undeclared extras are dropped
    assert clean["lifetime_value"].eq(120.5).all()
    reasons = report["tables"]["events"]["reasons"]["quarantined"]
    assert not any("event_type" in r for r in reasons)  # 'clik' was mapped


def test_mapping_errors_name_the_key(tmp_path: Path, params) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "mapping.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "users": {"path": "u.csv", "colums": {}},
                "items": {"path": "i.csv"},
                "events": {"path": "e.csv"},
            }
        )
    )
    with pytest.raises(IngestError, match=r"users.colums: Extra inputs are not permitted"):
        run_ingest(tmp_path / "out", params, KEY, mapping=path)
    write_raw(tmp_path / "shop", "csv")
    path.write_text(
        yaml.safe_dump(
            {
                "users": {"path": "shop/users.csv", "columns": {"nickname": "x"}},
                "items": {"path": "shop/items.csv"},
                "events": {"path": "shop/events.jsonl"},
            }
        )
    )
    with pytest.raises(IngestError, match=r"users: mapping names \['nickname'\]"):
        run_ingest(tmp_path / "out", params, KEY, mapping=path)


def test_example_mapping_parses() -> None:
    from tailwise.ingest.sources import load_mapping

    root = Path(__file__).resolve().parents[2]
    spec, base = load_mapping(root / "data" / "mappings" / "example.yaml")
    assert spec.users.columns["user_id"] == "customer_no"
    assert spec.events.event_types["order"] == "purchase"
    assert base == root / "data" / "mappings"
