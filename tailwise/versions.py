"""Model versions: the folder layout, its manifest, finding a version and publishing one.

    <models>/<version>/
      retrieval/           exported query model (SavedModel, takes raw feature values by
                           name), item_embeddings.parquet, manifest.json (ordered inputs)
      ranker/              model.json (XGBoost), ranker.json (ordered feature names,
                           categories, config, feature service)
      cold_start.parquet   popular items by context for people the model does not know
      manifest.json        version, data version, windows, feature services, params, the
                           files above and how to read them, training figures
      metrics.json         test-window metrics of every model next to the baselines, and
      report.md            the full evaluation (both added when the version is published)

Training writes a folder (`write_manifest`) and, after evaluating it, `publish` copies it
to `<models>/<version>/` with its metrics, so a published version is always an evaluated
one. Serving and monitoring find a version with `version_folder` (the named one, or the
champion the registry's LATEST names) and read it with `read_manifest`. Who serves and
why is the registry's (tailwise/registry.py): the first published version becomes the
champion; later ones are challengers until `tailwise models challenge` promotes them.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tailwise import registry

MANIFEST, METRICS, REPORT = "manifest.json", "metrics.json", "report.md"
FORMAT_VERSION = 1


class ModelNotFoundError(FileNotFoundError):
    """No model version where one was asked for; the message says what exists."""


def new_version() -> str:
    """A version name: the UTC time it was trained, sortable."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / MANIFEST
    body = {"format_version": FORMAT_VERSION, **manifest}
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")
    return path


def read_manifest(folder: Path) -> dict[str, Any]:
    """The version's manifest; ModelNotFoundError when `folder` is not a version, ValueError
    when its format is one this code does not read."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise ModelNotFoundError(f"{path} not found: {folder} is not a model version folder")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {manifest.get('format_version')} unsupported")
    return manifest


def version_folder(models_dir: Path, version: str | None = None) -> Path:
    """The named version, or the champion (the one `models_dir/LATEST` names)."""
    if version is None:
        version = registry.champion(models_dir)
        if version is None:
            raise ModelNotFoundError(
                f"no trained model in {models_dir}: run `tailwise train` first"
            )
    folder = models_dir / version
    if not (folder / MANIFEST).exists():
        known = sorted(p.parent.name for p in models_dir.glob(f"*/{MANIFEST}"))
        raise ModelNotFoundError(f"model version {version!r} not in {models_dir} (have: {known})")
    return folder


def publish(
    folder: Path,
    models_dir: Path,
    metrics: dict[str, Any],
    report: str,
    quality: dict[str, Any] | None = None,
) -> Path:
    """Copy the version in `folder` to `models_dir/<version>/` with its metrics and report
    (and `quality`, the evaluation's headline figures, in its manifest), and record it in the
    registry; with no champion yet it becomes the champion. Publishing the same version
    again replaces its files."""
    manifest = read_manifest(folder)
    version = str(manifest["version"])
    target = models_dir / version
    staging = models_dir / f".{version}.publishing"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(folder, staging)
    if quality is not None:
        manifest.pop("format_version", None)
        write_manifest(staging, {**manifest, "quality": quality})
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
