"""Optional means optional: any optional contract column may be absent from the source or
present without a value, in any combination and format, and the clean tables still carry
every column with its contract type (never Arrow's `null` type)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tailwise.cli import app
from tailwise.ingest.errors import IngestStopped
from tailwise.ingest.impute import impute_demographics
from tailwise.ingest.output import arrow_schema
from tailwise.ingest.pipeline import run_ingest
from tailwise.params import IngestParams
from tailwise.schema import CLEAN_EVENTS, CLEAN_ITEMS, CLEAN_USERS, USER_MERGES
from tests.contract_shapes import FORMATS, OPTIONAL, Shape, write_shape
from tests.ingest.conftest import KEY

# A dataset without consent columns: its owner has consent by other means.
PARAMS = IngestParams(duckdb_memory_limit="1GB", consent_default=True)
CLEAN = {"users.parquet": CLEAN_USERS, "items.parquet": CLEAN_ITEMS}


def _cases() -> list[object]:
    cases: list[object] = []
    for table, columns in OPTIONAL.items():
        half = len(columns) // 2
        combos = {
            "absent": (tuple(columns), ()),
            "null": ((), tuple(columns)),
            "mixed": (tuple(columns[:half]), tuple(columns[half:])),
        }
        for name, (absent, nulled) in combos.items():
            for fmt in FORMATS:
                cases.append(pytest.param(table, absent, nulled, fmt, id=f"{table}-{name}-{fmt}"))
    return cases


def assert_typed(out: Path) -> None:
    """Every clean file holds exactly its contract columns with their types."""
    for name, columns in CLEAN.items():
        schema = pq.read_schema(out / name)
        assert schema.remove_metadata() == arrow_schema(columns), name
    merges = pq.read_schema(out / "user_merges.parquet").remove_metadata()
    assert merges == arrow_schema(USER_MERGES)
    for part in (out / "events").rglob("*.parquet"):
        assert pq.read_schema(part).remove_metadata() == arrow_schema(CLEAN_EVENTS), part


@pytest.mark.parametrize(("table", "absent", "nulled", "fmt"), _cases())
def test_optional_columns_absent_or_null(
    tmp_path: Path, table: str, absent: tuple[str, ...], nulled: tuple[str, ...], fmt: str
) -> None:
    shape = Shape(absent={table: absent}, nulled={table: nulled}, formats=(fmt, fmt, fmt))
    write_shape(shape, tmp_path / "raw")
    report = run_ingest(tmp_path / "out", PARAMS, KEY, source=tmp_path / "raw")
    for name, t in report["tables"].items():
        assert t["kept"] > 0, name
    assert set(report["tables"][table]["columns_without_values"]) == {*absent, *nulled}
    for other in {"users", "items", "events"} - {table}:
        assert report["tables"][other]["columns_without_values"] == [], other
    assert_typed(tmp_path / "out")


def _only_required(folder: Path, fmt: str) -> Path:
    folder.mkdir(parents=True)
    frames = {
        "users": pd.DataFrame({"user_id": ["a", "b", "c"]}),
        "items": pd.DataFrame({"item_id": ["x", "y"]}),
        "events": pd.DataFrame(
            {
                "user_id": ["a", "b", "c", "a"],
                "item_id": ["x", "y", "x", "y"],
                "event_type": "purchase",
                "timestamp": ["2024-05-01T10:00:00Z"] * 4,
            }
        ),
    }
    for name, frame in frames.items():
        if fmt == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        elif fmt == "parquet":
            frame.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            frame.to_json(folder / f"{name}.jsonl", orient="records", lines=True)
    return folder


@pytest.mark.parametrize("fmt", FORMATS)
def test_only_required_columns_ingest(tmp_path: Path, fmt: str) -> None:
    raw = _only_required(tmp_path / "raw", fmt)
    report = run_ingest(tmp_path / "out", PARAMS, KEY, source=raw)
    assert {t: v["kept"] for t, v in report["tables"].items()} == {
        "users": 3,
        "items": 2,
        "events": 4,
    }
    assert set(report["tables"]["users"]["columns_without_values"]) == set(OPTIONAL["users"])
    assert set(report["tables"]["items"]["columns_without_values"]) == set(OPTIONAL["items"])
    assert set(report["tables"]["events"]["columns_without_values"]) == set(OPTIONAL["events"])
    assert_typed(tmp_path / "out")
    users = pd.read_parquet(tmp_path / "out" / "users.parquet")
    assert users["gender"].eq("unknown").all()
    assert users["age"].isna().all() and users["income_band"].isna().all()


def test_only_required_columns_without_consent_default_stop_naming_it(tmp_path: Path) -> None:
    raw = _only_required(tmp_path / "raw", "csv")
    with pytest.raises(IngestStopped, match=r"ingest\.consent_default"):
        run_ingest(tmp_path / "out", IngestParams(duckdb_memory_limit="1GB"), KEY, source=raw)


def test_all_null_consent_column_is_read_as_absent(tmp_path: Path) -> None:
    raw = _only_required(tmp_path / "raw", "csv")
    users = pd.read_csv(raw / "users.csv")
    users["consent_personalization"] = ""
    users.to_csv(raw / "users.csv", index=False)
    report = run_ingest(tmp_path / "out", PARAMS, KEY, source=raw)
    assert report["tables"]["users"]["kept"] == 3
    assert "consent_personalization" in report["tables"]["users"]["columns_without_values"]


@pytest.mark.parametrize("band", [None, np.nan], ids=["object", "float"])
def test_imputation_without_any_income_band(band: object) -> None:
    """Groups large enough to impute from, keyed on an income band nobody has (the merge
    of object and float64 keys failed here)."""
    n = 60
    rng = np.random.default_rng(0)
    age = rng.integers(20, 70, n).astype(float)
    age[::4] = np.nan
    users = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "age": age,
            "gender": None,
            "country": "DE",
            "region": None,
            "income_band": pd.Series([band] * n, dtype=object if band is None else float),
        }
    )
    out = impute_demographics(users, pd.DataFrame({"user_id": [], "country": []}))
    assert out["age"].notna().all()
    assert out.loc[::4, "age"].eq(round(np.nanmedian(age))).all()
    assert out["income_band"].isna().all() and out["income_band_imputed"].all()


def test_users_without_income_band_and_some_ages_ingest(tmp_path: Path) -> None:
    shape = Shape(users=200, absent={"users": ("income_band",)})
    frames = write_shape(shape, tmp_path / "raw")
    users = frames["users"].assign(age=frames["users"]["age"].where(lambda a: a % 3 != 0))
    users.to_csv(tmp_path / "raw" / "users.csv", index=False)
    run_ingest(tmp_path / "out", PARAMS, KEY, source=tmp_path / "raw")
    clean = pd.read_parquet(tmp_path / "out" / "users.parquet")
    assert clean["age"].notna().all()
    assert clean["age_imputed"].any()


def test_cli_report_lists_columns_without_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAILWISE_HMAC_KEY", "f" * 64)
    monkeypatch.setenv("TAILWISE_HOME", str(tmp_path / "home"))
    _only_required(tmp_path / "raw", "csv")
    (tmp_path / "params.yaml").write_text("ingest:\n  consent_default: true\n")
    result = CliRunner().invoke(app, ["ingest", "--source", "raw", "--out", "clean"])
    assert result.exit_code == 0, result.output
    assert "items: no values for title, description, category, brand, price, created_at" in (
        " ".join(result.output.split())
    )
