"""`tailwise evaluate`: found through the plugin entry point, writes DVC metrics and plots."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from tailwise.cli import app, load_plugins


def test_evaluate_command_writes_metrics_and_plots(
    generated: tuple[Path, Path], tmp_path: Path
) -> None:
    raw, clean = generated
    load_plugins()
    out = tmp_path / "evaluation"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--data",
            str(clean),
            "--features",
            str(tmp_path / "none"),
            "--ground-truth",
            str(raw / "ground_truth"),
            "--out",
            str(out),
            "--params",
            str(tmp_path / "absent.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {
        "most_popular",
        "recently_popular",
        "item_cooccurrence",
        "ease",
        "oracle",
    }
    assert 0 < metrics["most_popular"]["ndcg@10"] < metrics["oracle"]["ndcg@10"]
    plot = pd.read_csv(out / "ndcg_at_k.csv")
    assert list(plot.columns) == ["model", "k", "ndcg"] and set(plot["k"]) == {5, 10, 20}
