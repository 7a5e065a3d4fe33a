"""Data versions: what they hash, what the build records, and who refuses a mismatch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tailwise.cli import app, load_plugins
from tailwise.console import EXIT_BAD_INPUT
from tailwise.features.build import build_features
from tailwise.features.config import FeaturesParams
from tailwise.features.store import (
    apply,
    check_registry,
    materialize,
    registry_data_version,
    teardown,
)
from tailwise.lineage import DataMismatchError, as_of, check_features, data_version
from tests.feast_project import isolated_feast_settings
from tests.features.conftest import event, item, user, write_clean

load_plugins()  # train, evaluate: the training stage's commands


def _clean(root: Path, last_day: int = 5) -> Path:
    events = [
        event(f"u{i}", f"i{(i + d) % 3}", f"2026-02-0{d}T12:00:00")
        for i in range(3)
        for d in range(1, last_day + 1)
    ]
    clean = write_clean(
        root, [user(f"u{i}") for i in range(3)], [item(f"i{j}") for j in range(3)], events
    )
    (clean / "quality_report.json").write_text('{"events": {"kept": 15}}\n')
    return clean


def test_data_version_ignores_rejected_rows_and_follows_the_data(tmp_path: Path) -> None:
    clean = _clean(tmp_path / "clean")
    first = data_version(clean)
    (clean / "rejected").mkdir()
    pd.DataFrame({"reason": ["bad timestamp"]}).to_parquet(clean / "rejected" / "events.parquet")
    assert data_version(clean) == first
    # The same bytes elsewhere are the same data version.
    shutil.copytree(clean, tmp_path / "copy")
    assert data_version(tmp_path / "copy") == first
    (clean / "quality_report.json").write_text('{"events": {"kept": 14}}\n')
    assert data_version(clean) != first
    assert data_version(_clean(tmp_path / "shorter", last_day=4)) != first


def test_build_records_version_and_as_of(tmp_path: Path) -> None:
    clean = _clean(tmp_path / "clean")
    build_features(clean, tmp_path / "features", FeaturesParams(n_segments=2))
    record = json.loads((tmp_path / "features" / "data_version.json").read_text())
    assert record["data_version"] == data_version(clean)
    assert pd.Timestamp(record["as_of"]) == as_of(clean) == pd.Timestamp("2026-02-05T12:00Z")
    check_features(tmp_path / "features", clean, "train")  # same data: accepted


def test_features_of_other_data_are_refused_naming_the_rebuild(tmp_path: Path) -> None:
    clean = _clean(tmp_path / "clean")
    other = _clean(tmp_path / "other", last_day=4)
    features = tmp_path / "features"
    build_features(clean, features, FeaturesParams(n_segments=2))
    with pytest.raises(DataMismatchError, match="tailwise features build --data"):
        check_features(features, other, "train")
    (features / "data_version.json").unlink()
    with pytest.raises(DataMismatchError, match="record no data version"):
        check_features(features, clean, "train")
    check_features(tmp_path / "nothing-built", clean, "train")  # nothing to compare yet


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_train_and_evaluate_exit_3_on_features_of_other_data(tmp_path: Path, command: str) -> None:
    clean = _clean(tmp_path / "clean")
    other = _clean(tmp_path / "other", last_day=4)
    features = tmp_path / "features"
    build_features(clean, features, FeaturesParams(n_segments=2))
    result = CliRunner().invoke(app, [command, "--data", str(other), "--features", str(features)])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    flat = "".join(result.output.split())
    assert f"tailwisefeaturesbuild--data{other}--out{features}" in flat, result.output
    assert "Traceback" not in result.output


@pytest.mark.integration  # a Feast repo of its own
def test_registry_carries_the_version_and_materialize_refuses_other_tables(tmp_path: Path) -> None:
    clean = _clean(tmp_path / "clean")
    features = tmp_path / "features"
    build_features(clean, features, FeaturesParams(n_segments=2))
    settings = isolated_feast_settings(features, tmp_path / "registry.db")
    store, _ = apply(settings)
    try:
        assert registry_data_version(store) == data_version(clean)
        check_registry(store, data_version(clean), "model version v1", "`x`")
        check_registry(store, None, "model version v0", "`x`")  # no version recorded: skip
        check_registry(store, "3f2a9c0d11e4b7a8", "model version v0", "`x`")  # older kind
        with pytest.raises(DataMismatchError, match="model version v2 comes from data version"):
            check_registry(store, "0" * 64, "model version v2", "`tailwise features apply`")
        # Tables rebuilt from other data but not applied: materialize refuses them.
        build_features(_clean(tmp_path / "other", 4), features, FeaturesParams(n_segments=2))
        with pytest.raises(DataMismatchError, match="tailwise features apply --features"):
            materialize(settings)
    finally:
        teardown(settings, store)
