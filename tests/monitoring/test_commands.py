"""`tailwise monitor run` end to end on a written served log: report, summary, index,
decision, alert; the command line prints the table and fails clearly on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from monitoring.summary import RunSummary
from tailwise.cli import app, load_plugins
from tests.monitoring.conftest import Monitored, Receiver


def test_a_run_writes_report_summary_and_index(monitored: Monitored) -> None:
    first, second = monitored.runs
    out = monitored.world.out
    for result in monitored.runs:
        assert result.report.exists() and result.report.stat().st_size > 100_000
        saved = RunSummary.model_validate_json((result.folder / "summary.json").read_text())
        assert saved.run_id == result.summary.run_id
    assert (out / "index.html").exists()
    assert monitored.source.calls == 1  # the reference was built once, then read

    quiet = first.summary
    assert quiet.run_id == "20261102T000000Z-1d" and quiet.model_version == "v1"
    assert quiet.feature_drift.measured and quiet.feature_drift.drifted == []
    assert not quiet.prediction_drift.measured
    assert "first served window" in quiet.prediction_drift.note
    assert not quiet.quality.measured  # nothing was served a day before the first day
    assert quiet.decision is not None and not quiet.decision.retrain

    drifted = second.summary
    assert set(drifted.feature_drift.drifted) == {"views_7d", "spend_30d", "country"}
    assert drifted.prediction_drift.measured and drifted.prediction_drift.drifted
    assert drifted.quality.measured and drifted.quality.requests == 270
    assert 0 < drifted.quality.kpis["ctr@10"] <= 1
    assert 0 < drifted.quality.kpis["conversion@10"] < drifted.quality.kpis["ctr@10"]
    assert drifted.decision is not None and drifted.decision.retrain
    assert drifted.events.rows > 0 and drifted.events.issues == []
    body = json.loads((second.folder / "summary.json").read_text())
    assert body["feature_drift"]["share"] == drifted.feature_drift.share
    assert body["decision"]["retrain"] is True
    html = second.report.read_text()
    assert "Tailwise monitoring run" in html and "first served window" in html


def test_the_command_prints_the_table_and_alerts_the_webhook(
    monitored: Monitored, receiver: Receiver, tmp_path: Path
) -> None:
    world = monitored.world
    root = tmp_path / "copy"
    shutil.copytree(world.root, root)
    params = tmp_path / "params.yaml"
    params.write_text(
        "monitoring:\n  reference_rows: 2000\n  retrain:\n    min_feature_rows: 100\n"
        "    min_scores: 100\n    min_requests: 20\n"
    )
    load_plugins()
    args = [
        "monitor",
        "run",
        "--window",
        "1d",
        "--end",
        "2026-11-03T00:00:00",
        "--models",
        str(root / "models"),
        "--served",
        str(root / "served"),
        "--clean",
        str(root / "clean"),
        "--out",
        str(root / "reports"),
        "--features",
        str(tmp_path / "no-features"),
        "--params",
        str(params),
    ]
    result = CliRunner().invoke(app, args, env={"TAILWISE_ALERT_WEBHOOK": receiver.url})
    assert result.exit_code == 0, result.output
    assert "feature drift" in result.output and "retrain:" in result.output
    assert "report" in result.output and "20261103T000000Z-1d" in result.output
    [alert] = receiver.received
    assert alert["body"]["retrain"] is True and alert["body"]["run_id"] == "20261103T000000Z-1d"
    saved = json.loads((root / "reports" / "20261103T000000Z-1d" / "summary.json").read_text())
    assert saved["alert_sent"] is True
    assert len(list((root / "reports").glob("*/summary.json"))) == 2  # the run was replaced


def test_bad_input_exits_3_with_a_message_naming_it(tmp_path: Path) -> None:
    load_plugins()
    runner = CliRunner()
    bad_window = runner.invoke(app, ["monitor", "run", "--window", "soon"])
    assert (
        bad_window.exit_code == 3 and "--window: expected a positive duration" in bad_window.output
    )
    no_model = runner.invoke(
        app,
        [
            "monitor",
            "run",
            "--models",
            str(tmp_path / "models"),
            "--served",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
            "--params",
            str(tmp_path / "absent.yaml"),
        ],
    )
    assert no_model.exit_code == 3 and "no trained model in" in no_model.output


def test_watch_says_what_is_missing(tmp_path: Path) -> None:
    load_plugins()
    runner = CliRunner()
    bad_every = runner.invoke(app, ["monitor", "watch", "--every", "often", "--once"])
    assert bad_every.exit_code == 3 and "--every: expected a positive duration" in bad_every.output
    no_model = runner.invoke(app, ["monitor", "watch", "--once", "--root", str(tmp_path)])
    assert no_model.exit_code == 1
    assert "loop pass failed" in no_model.output and "no champion in" in no_model.output
