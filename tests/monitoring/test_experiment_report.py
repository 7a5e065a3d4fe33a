"""`tailwise experiments report`: JSON and HTML written, linked from the monitoring index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from monitoring.report import write_index
from tailwise.cli import app, load_plugins
from tests.experiments.tables import experiment_tables
from tests.monitoring.conftest import Receiver


def test_the_command_writes_json_html_and_links_the_index(tmp_path: Path) -> None:
    exp, out = experiment_tables(
        np.random.default_rng(3), 3000, {"control": 0.5, "b": 0.5}, {"control": 0.05, "b": 0.09}
    )
    exp.to_parquet(tmp_path / "exposures.parquet")
    out.to_parquet(tmp_path / "outcomes.parquet")
    reports = tmp_path / "reports"
    load_plugins()
    args = ["experiments", "report", "exp", "--exposures", str(tmp_path / "exposures.parquet"),
            "--outcomes", str(tmp_path / "outcomes.parquet"), "--out", str(reports)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "no mismatch" in result.output
    data = json.loads((reports / "experiments/exp/report.json").read_text())
    assert data["comparisons"]["b"]["ctr"]["significant"]
    page = (reports / "experiments/exp/report.html").read_text()
    for anchor in ('id="variants"', 'id="comparisons"', 'id="plot-ctr"', 'id="plot-allocation"'):
        assert anchor in page
    assert page.count("<svg") == 3
    index = write_index(reports).read_text()
    assert 'href="experiments/exp/report.html"' in index


def test_bad_input_exits_3_naming_it(tmp_path: Path) -> None:
    load_plugins()
    missing = CliRunner().invoke(
        app, ["experiments", "report", "exp", "--exposures", str(tmp_path / "nope.parquet")]
    )
    assert missing.exit_code == 3 and "--exposures" in missing.output
    weights = CliRunner().invoke(app, ["experiments", "report", "exp", "--weights", "a=x"])
    assert weights.exit_code == 3 and "--weights" in weights.output


def test_metrics_without_a_value_are_null_in_json(tmp_path: Path) -> None:
    from monitoring.experiments import write_experiment_report
    from tailwise.experiments.analysis import AnalysisConfig

    exp, out = experiment_tables(
        np.random.default_rng(5), 400, {"control": 0.5, "b": 0.5}, {"control": 0.0, "b": 0.05}
    )
    result, folder = write_experiment_report("exp", exp, out, AnalysisConfig(), tmp_path)
    assert result["variants"]["control"]["aov"] is None  # no orders in the control
    assert result["comparisons"]["b"]["ctr"]["relative"] is None
    assert json.loads((folder / "report.json").read_text())["variants"]["control"]["ctr"] == 0
    assert "<td>-</td>" in (folder / "report.html").read_text()


def test_a_kpi_decline_is_in_the_report_and_reaches_the_webhook(
    tmp_path: Path, receiver: Receiver
) -> None:
    exp, out = experiment_tables(
        np.random.default_rng(7),
        4000,
        {"control": 0.5, "worse": 0.5},
        {"control": 0.1, "worse": 0.05},
    )
    exp.to_parquet(tmp_path / "exposures.parquet")
    out.to_parquet(tmp_path / "outcomes.parquet")
    params = tmp_path / "params.yaml"
    params.write_text(
        f"monitoring:\n  alert_webhook: {receiver.url}\nexperiments:\n  declines: {{drop: 0.2}}\n"
    )
    reports = tmp_path / "reports"
    load_plugins()
    args = ["experiments", "report", "exp", "--exposures", str(tmp_path / "exposures.parquet"),
            "--outcomes", str(tmp_path / "outcomes.parquet"), "--out", str(reports),
            "--params", str(params)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads((reports / "experiments/exp/report.json").read_text())
    assert {(d["variant"], d["against"]) for d in data["declines"]} == {("worse", "control")}
    page = (reports / "experiments/exp/report.html").read_text()
    assert 'id="declines" class="bad"' in page and "worse: ctr" in page
    [alert] = receiver.received
    body = alert["body"]
    assert body["experiment"] == "exp" and body["declines"] == data["declines"]
    assert body["text"].startswith("Tailwise experiment exp: KPI decline on worse: ctr")


def test_a_bad_decline_policy_is_named(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("experiments:\n  declines: {drop: 2}\n")
    load_plugins()
    result = CliRunner().invoke(app, ["experiments", "report", "exp", "--params", str(params)])
    assert result.exit_code == 3 and "experiments.declines.drop" in result.output


def test_a_group_sequential_report_counts_its_looks_from_the_last_report(tmp_path: Path) -> None:
    from monitoring.experiments import write_experiment_report
    from tailwise.experiments.analysis import AnalysisConfig
    from tailwise.experiments.group_sequential import SequentialPlan

    exp, out = experiment_tables(
        np.random.default_rng(7), 3000, {"control": 0.5, "b": 0.5}, {"control": 0.05, "b": 0.08}
    )
    plan = SequentialPlan(method="group_sequential", planned_users=3000, spending="pocock")
    cfg = AnalysisConfig(sequential=plan)
    early = exp.loc[exp["timestamp"] < exp["timestamp"].min() + pd.Timedelta(days=1)]
    first, _ = write_experiment_report("exp", early, out, cfg, tmp_path)
    result, folder = write_experiment_report("exp", exp, out, cfg, tmp_path)
    assert first["sequential"]["look"] == 1 and result["sequential"]["look"] == 2
    assert result["sequential"]["final"]  # all planned users: the last look
    recorded = json.loads((folder / "report.json").read_text())["sequential"]
    assert [lk["users"] for lk in recorded["looks"]] == [
        early["user_id"].nunique(),
        exp["user_id"].nunique(),
    ]
    page = (folder / "report.html").read_text()
    assert "group sequential, pocock spending" in page and "look <strong>2</strong>" in page
    assert "|z| / boundary (Holm)" in page and "crossed" in page


def test_the_command_takes_the_plan_from_the_definition_and_names_a_bad_field(
    tmp_path: Path,
) -> None:
    import yaml

    exp, out = experiment_tables(
        np.random.default_rng(3), 1500, {"control": 0.5, "b": 0.5}, {"control": 0.05, "b": 0.09}
    )
    exp.to_parquet(tmp_path / "exposures.parquet")
    out.to_parquet(tmp_path / "outcomes.parquet")
    definition = {
        "name": "exp",
        "salt": "exp-salt",
        "start": "2026-11-01",
        "variants": [{"name": "control", "weight": 0.5}, {"name": "b", "weight": 0.5}],
        "sequential": {"method": "group_sequential", "planned_users": 6000},
    }
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "exp.yaml").write_text(yaml.safe_dump(definition))
    params = tmp_path / "params.yaml"
    params.write_text(f"experiments: {{dir: {tmp_path / 'defs'}}}\n")
    load_plugins()
    args = ["experiments", "report", "exp", "--exposures", str(tmp_path / "exposures.parquet"),
            "--outcomes", str(tmp_path / "outcomes.parquet"), "--out", str(tmp_path / "r"),
            "--params", str(params)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "group sequential (obrien_fleming): look 1" in result.output
    data = json.loads((tmp_path / "r/experiments/exp/report.json").read_text())
    assert data["sequential"]["looks"][0]["fraction"] == exp["user_id"].nunique() / 6000
    definition["sequential"] = {"method": "group_sequential", "spending": "pocock"}
    (tmp_path / "defs" / "exp.yaml").write_text(yaml.safe_dump(definition))
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 3 and "sequential.planned_users" in bad.output
