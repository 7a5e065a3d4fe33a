"""The scenario's workspace: the repo's pipeline pointed at its own data, params merged."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench.scenario import clear_outputs
from bench.workspace import REPO, deep_merge, pipeline_for_workspace


def test_the_pipeline_keeps_stages_and_commands_but_not_generate() -> None:
    repo = yaml.safe_load((REPO / "dvc.yaml").read_text())
    mine = pipeline_for_workspace(repo, REPO)
    assert "generate" not in mine["stages"]
    assert set(mine["stages"]) == set(repo["stages"]) - {"generate"}
    ingest = mine["stages"]["ingest"]
    assert ingest["cmd"] == repo["stages"]["ingest"]["cmd"]
    assert "data/served/events" in ingest["deps"] and "data/raw" in ingest["deps"]
    code = [d for d in ingest["deps"] if not d.startswith("data/")]
    assert code and all(Path(d).is_absolute() and Path(d).exists() for d in code)


def test_overrides_merge_section_by_section() -> None:
    base = {"monitoring": {"window": "1d", "retrain": {"drift_share": 0.3, "min_scores": 1000}}}
    merged = deep_merge(base, {"monitoring": {"retrain": {"drift_share": None}}, "x": 1})
    assert merged == {
        "monitoring": {"window": "1d", "retrain": {"drift_share": None, "min_scores": 1000}},
        "x": 1,
    }
    assert base["monitoring"]["retrain"]["drift_share"] == 0.3  # not changed in place


def test_a_new_run_clears_the_last_runs_outputs_only(tmp_path: Path) -> None:
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "monitoring/reports").mkdir(parents=True)
    (tmp_path / "dvc.lock").write_text("old")
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    clear_outputs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".dvc", "notes.txt"]
