"""Model version folders: manifest checks, publishing with metrics, LATEST."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailwise import registry
from tailwise.versions import (
    ModelNotFoundError,
    publish,
    read_manifest,
    version_folder,
    write_manifest,
)


def staged(root: Path, version: str) -> Path:
    folder = root / "stage" / version
    (folder / "ranker").mkdir(parents=True)
    (folder / "ranker" / "model.json").write_text("{}")
    write_manifest(folder, {"version": version, "data_version": "abc"})
    return folder


def test_publish_copies_the_version_with_metrics_first_one_serves(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    first = publish(staged(tmp_path, "v1"), models, {"ease": {"ndcg@10": 0.1}}, "# v1\n")
    assert first == models / "v1" and version_folder(models) == first
    assert json.loads((first / "metrics.json").read_text()) == {"ease": {"ndcg@10": 0.1}}
    assert (first / "report.md").read_text() == "# v1\n" and (first / "ranker/model.json").exists()
    assert read_manifest(first)["format_version"] == 1
    second = publish(staged(tmp_path, "v2"), models, {}, "")
    # A later version is a challenger: v1 still serves until a challenge promotes v2.
    assert version_folder(models) == first and version_folder(models, "v2") == second
    again = publish(staged(tmp_path / "again", "v2"), models, {"x": {}}, "")  # replaces v2
    assert json.loads((again / "metrics.json").read_text()) == {"x": {}}
    assert not list(models.glob(".*"))  # no staging folder left behind
    log = registry.entries(models)
    assert [(e.action, e.version, e.champion) for e in log] == [
        ("published", "v1", None),
        ("published", "v2", "v1"),
        ("published", "v2", "v1"),
    ]
    assert "no champion" in log[0].reasons[0] and "challenger to v1" in log[1].reasons[0]
    assert log[0].scores == {"version": {}}


def test_publish_records_the_quality_figures_in_the_manifest(tmp_path: Path) -> None:
    quality = {"metric": "ndcg@10", "version": 0.12, "best_baseline": "ease"}
    quality |= {"best_baseline_value": 0.11, "beats_best_baseline": True}
    folder = publish(staged(tmp_path, "v1"), tmp_path / "models", {}, "", quality)
    manifest = read_manifest(folder)
    assert manifest["quality"] == quality
    assert manifest["data_version"] == "abc" and manifest["format_version"] == 1


def test_missing_versions_and_foreign_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="run `tailwise train`"):
        version_folder(tmp_path)
    with pytest.raises(ModelNotFoundError, match="not a model version"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ValueError, match="format_version 99"):
        read_manifest(tmp_path)
    publish(staged(tmp_path, "v1"), tmp_path, {}, "")
    with pytest.raises(ModelNotFoundError, match=r"have: \['v1'\]"):
        version_folder(tmp_path, "v9")
