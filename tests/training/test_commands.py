"""`tailwise evaluate`: found through the plugin entry point, writes DVC metrics and plots;
the training stage commands are registered."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
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
    plot = pd.read_csv(out / "ndcg_at_k.csv")  # wide: one line per model in `dvc plots`
    assert list(plot.columns) == ["k", *metrics] and list(plot["k"]) == [5, 10, 20]
    assert plot.loc[plot["k"] == 10, "ease"].item() == metrics["ease"]["ndcg@10"]


def test_training_commands_are_registered() -> None:
    load_plugins()
    for name in ("train", "train-retrieval", "train-ranker", "recommend"):
        result = CliRunner().invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
    assert "--tune" in CliRunner().invoke(app, ["train", "--help"]).output


@pytest.mark.slow
def test_train_command_runs_every_stage_and_prints_the_table(
    feature_world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    # The CLI builds its Settings from the environment: point it at the feature world's
    # own Feast project and registry.
    monkeypatch.setenv("TAILWISE_FEAST_PROJECT", str(feature_world.settings.feast_project))
    monkeypatch.setenv("TAILWISE_FEAST_REGISTRY", str(feature_world.settings.feast_registry))
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "training": {
                    "retrieval": {"embedding_dim": 16, "epochs": 1, "batch_size": 256},
                    "ranker": {"n_estimators": 10, "n_candidates": 20, "validation_share": 0.0},
                }
            }
        )
    )
    load_plugins()
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(feature_world.clean),
            "--features",
            str(feature_world.features),
            "--ground-truth",
            str(feature_world.raw / "ground_truth"),
            "--models",
            str(tmp_path / "models"),
            "--work",
            str(tmp_path / "training"),
            "--evaluation",
            str(tmp_path / "evaluation"),
            "--params",
            str(params),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "two_tower+ranker" in result.output and "oracle" in result.output
    version = (tmp_path / "models" / "LATEST").read_text().strip()
    assert (tmp_path / "models" / version / "cold_start.parquet").exists()
    metrics = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert "ranker_lift" in metrics and "two_tower" in metrics
