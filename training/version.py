"""A model version: one folder that says what it is, and publishing it after evaluation.

    <version>/
      retrieval/           exported query model (SavedModel, takes raw feature values by
                           name), item_embeddings.parquet, manifest.json (ordered inputs)
      ranker/              model.json (XGBoost), ranker.json (ordered feature names,
                           categories, config, feature service)
      cold_start.parquet   popular items by context for people the model does not know
      manifest.json        version, data version, windows, feature services, params, the
                           files above and how to read them, training figures
      metrics.json         test-window metrics of every model next to the baselines, and
      report.md            the full evaluation (both added when the version is published)

`tailwise train` and the DVC stages write the folder without metrics (train_ranker), the
evaluation measures it, and `publish` copies it to `<models>/<version>/` with its metrics,
so a published version is always an evaluated one. The first version becomes the champion
(`<models>/LATEST`); later ones are challengers until `tailwise models challenge` (see
challenge.py) promotes them. Both decisions go to the registry (tailwise/registry.py).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tailwise import registry
from tailwise.lineage import data_version as _lineage_data_version

MANIFEST, METRICS, REPORT, LATEST = "manifest.json", "metrics.json", "report.md", "LATEST"
FORMAT_VERSION = 1


class ModelNotFoundError(FileNotFoundError):
    """No model version where one was asked for; the message says what exists."""


def new_version() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def data_version(clean: Path) -> str:
    """The clean data's version (tailwise.lineage.data_version): the one feature tables and
    the Feast registry record, so a version can be matched with the features it needs."""
    return str(_lineage_data_version(clean))


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / MANIFEST
    body = {"format_version": FORMAT_VERSION, **manifest}
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")
    return path


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise ModelNotFoundError(f"{path} not found: {folder} is not a model version folder")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {manifest.get('format_version')} unsupported")
    return manifest


def metrics_table(table: Any) -> dict[str, dict[str, float]]:
    """{model: {'<metric>@<k>': value}} of the 'all' slice of an evaluation table."""
    overall = table.loc[table["slice"] == "all"]
    metrics: dict[str, dict[str, float]] = {}
    for row in overall.itertuples():
        metrics.setdefault(row.model, {})[f"{row.metric}@{row.k}"] = round(float(row.value), 6)
    return metrics


def publish(folder: Path, models_dir: Path, metrics: dict[str, Any], report: str) -> Path:
    """Copy the version in `folder` to `models_dir/<version>/` with its metrics and report,
    and record it in the registry; with no champion yet it becomes the champion. Publishing
    the same version again replaces its files."""
    version = str(read_manifest(folder)["version"])
    target = models_dir / version
    staging = models_dir / f".{version}.publishing"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(folder, staging)
    (staging / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    (staging / REPORT).write_text(report)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    current = registry.champion(models_dir)
    if current is None:
        registry.set_champion(models_dir, version)
        reasons = ["first version: no champion to beat, so it serves"]
    elif current == version:
        reasons = ["published again: it is the champion, its files were replaced"]
    else:
        reasons = [f"challenger to {current}: `tailwise models challenge` decides"]
    scores = {"version": metrics.get("two_tower+ranker", {})} if metrics else {}
    entry = registry.Entry(
        at=registry.now(),
        action="published",
        version=version,
        champion=current,
        reasons=reasons,
        scores=scores,
    )
    registry.record(models_dir, entry)
    return target


def version_folder(models_dir: Path, version: str | None = None) -> Path:
    """The named version, or the one `models_dir/LATEST` names."""
    if version is None:
        latest = models_dir / LATEST
        if not latest.exists():
            raise ModelNotFoundError(
                f"no trained model in {models_dir}: run `tailwise train` first"
            )
        version = latest.read_text().strip()
    folder = models_dir / version
    if not (folder / MANIFEST).exists():
        known = sorted(p.parent.name for p in models_dir.glob(f"*/{MANIFEST}"))
        raise ModelNotFoundError(f"model version {version!r} not in {models_dir} (have: {known})")
    return folder
