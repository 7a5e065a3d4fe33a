"""Nothing dropped quietly: a table that keeps nothing, or loses more than
`ingest.max_quarantine_share` to one reason, stops ingest with a message naming the table,
reason, count and parameter; the reports go to OUT/rejected/ and the clean tables stay."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from tailwise.cli import app
from tailwise.console import EXIT_BAD_INPUT
from tailwise.ingest.errors import IngestStopped
from tailwise.ingest.pipeline import run_ingest
from tailwise.params import IngestParams
from tests.ingest.conftest import KEY

PARAMS = IngestParams(duckdb_memory_limit="1GB")


def _write(folder: Path, years: list[int], event_types: list[str] | None = None) -> Path:
    """Two consenting users, two items, one event per entry of `years` (distinct days)."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"user_id": ["a", "b"], "consent_personalization": True, "consent_tracking": True}
    ).to_csv(folder / "users.csv", index=False)
    pd.DataFrame({"item_id": ["x", "y"]}).to_csv(folder / "items.csv", index=False)
    n = len(years)
    frame = pd.DataFrame(
        {
            "user_id": ["a", "b"] * (n // 2) + ["a"] * (n % 2),
            "item_id": "x",
            "event_type": event_types or ["purchase"] * n,
            "timestamp": [
                (pd.Timestamp(f"{y}-01-01", tz="UTC") + pd.Timedelta(days=i)).isoformat()
                for i, y in enumerate(years)
            ],
        }
    )
    frame.to_csv(folder / "events.csv", index=False)
    return folder


def test_one_reason_over_the_share_stops_naming_table_reason_count_and_parameter(
    tmp_path: Path,
) -> None:
    raw = _write(tmp_path / "raw", [1997] * 7 + [2024] * 3)
    params = PARAMS.model_copy(update={"earliest_timestamp": datetime(2000, 1, 1)})
    with pytest.raises(IngestStopped) as stop:
        run_ingest(tmp_path / "out", params, KEY, source=raw)
    message = str(stop.value)
    for words in (
        "events",
        "7 of 10 rows (70%)",
        "timestamp: before 2000-01-01",
        "ingest.max_quarantine_share (0.5)",
        "ingest.earliest_timestamp",
    ):
        assert words in message, (words, message)
    rejected = tmp_path / "out" / "rejected"
    report = json.loads((rejected / "quality_report.json").read_text())
    assert report["tables"]["events"]["quarantined"] == 7
    assert report["stopped"] == [message.removeprefix("ingest stopped: ").split(" The ")[0]]
    quarantine = pd.read_parquet(rejected / "quarantine.parquet")
    assert len(quarantine) == 7 and quarantine["row_json"].str.contains("1997").all()
    # Nothing in OUT looks like a clean dataset.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["rejected"]


def test_a_share_under_the_limit_is_kept_and_reported(tmp_path: Path) -> None:
    types = ["purchase"] * 6 + ["wishlist"] * 4
    raw = _write(tmp_path / "raw", [2024] * 10, types)
    report = run_ingest(tmp_path / "out", PARAMS, KEY, source=raw)
    events = report["tables"]["events"]
    assert events["kept"] == 6 and events["quarantined"] == 4
    assert "stopped" not in report


def test_the_share_is_a_parameter(tmp_path: Path) -> None:
    types = ["purchase"] * 6 + ["wishlist"] * 4
    raw = _write(tmp_path / "raw", [2024] * 10, types)
    params = PARAMS.model_copy(update={"max_quarantine_share": 0.3})
    with pytest.raises(IngestStopped, match=r"4 of 10 rows .*ingest\.event_weights"):
        run_ingest(tmp_path / "out", params, KEY, source=raw)


@pytest.mark.parametrize("share", [0, -0.1, 1.5])
def test_share_must_be_within_0_and_1(share: float) -> None:
    with pytest.raises(ValidationError, match="max_quarantine_share"):
        IngestParams(max_quarantine_share=share)


def test_users_without_consent_column_name_consent_default(tmp_path: Path) -> None:
    raw = _write(tmp_path / "raw", [2024] * 4)
    pd.DataFrame({"user_id": ["a", "b"]}).to_csv(raw / "users.csv", index=False)
    with pytest.raises(IngestStopped) as stop:
        run_ingest(tmp_path / "out", PARAMS, KEY, source=raw)
    message = str(stop.value)
    assert "users: no row of 2 was kept" in message
    assert "events: no row of 4 was kept" in message
    assert "ingest.consent_default" in message


def test_a_stopped_run_leaves_the_last_clean_tables_and_a_good_run_clears_rejected(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    good = _write(tmp_path / "good", [2024] * 4)
    run_ingest(out, PARAMS, KEY, source=good)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    bad = _write(tmp_path / "bad", [2024] * 4, ["wishlist"] * 4)
    with pytest.raises(IngestStopped, match="events: no row of 4 was kept"):
        run_ingest(out, PARAMS, KEY, source=bad)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert {k: v for k, v in after.items() if k.parts[0] != "rejected"} == before
    assert (out / "rejected" / "quality_report.json").exists()
    run_ingest(out, PARAMS, KEY, source=good)
    assert not (out / "rejected").exists()


def test_cli_exits_3_with_one_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAILWISE_HMAC_KEY", "f" * 64)
    monkeypatch.setenv("TAILWISE_HOME", str(tmp_path / "home"))
    _write(tmp_path / "raw", [1990] * 3 + [2024], ["purchase"] * 4)
    (tmp_path / "params.yaml").write_text("ingest:\n  earliest_timestamp: '2000-01-01'\n")
    result = CliRunner().invoke(app, ["ingest", "--source", "raw", "--out", "clean"])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "Traceback" not in result.output
    assert "ingest.earliest_timestamp" in " ".join(result.output.split())
    assert (tmp_path / "clean" / "rejected" / "quality_report.json").exists()


def test_ratings_without_values_stop_naming_the_column(tmp_path: Path) -> None:
    raw = _write(tmp_path / "raw", [2024] * 4, ["rating"] * 4)
    with pytest.raises(IngestStopped, match=r"column 'value' of events.*value_weighted_types"):
        run_ingest(tmp_path / "out", PARAMS, KEY, source=raw)
