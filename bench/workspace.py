"""A deployment folder of its own: the project's DVC pipeline over its own data and Redis keys.

    repo dvc.yaml --pipeline_for_workspace--> <root>/dvc.yaml  (the same stages and commands;
        `generate` left out, the data comes from outside; code dependencies point at the
        repo's packages, so dvc.lock still ties each model to the code that made it)
    repo params.yaml + overrides --write_params--> <root>/params.yaml
    dvc init --no-scm  -> <root>/.dvc (own cache and lock)
    workspace_env      -> the environment every command runs with: its own Feast project
                          (Redis keys), registry and feature tables, the repo's feature_repo

The drift scenario runs two of these side by side (control and shift) without touching the
repo's own data/ or the demo's Redis project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent


class WorkspaceError(RuntimeError):
    """The workspace cannot be prepared; the message says which file or command."""


def deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `update` merged in, section by section (a mapping merges, a value wins)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def pipeline_for_workspace(pipeline: dict[str, Any], repo: Path) -> dict[str, Any]:
    """The repo's dvc.yaml for a folder outside it: no `generate`, code deps absolute."""
    stages = {}
    for name, stage in pipeline["stages"].items():
        if name == "generate":
            continue
        stage = dict(stage)
        stage["deps"] = [
            d if str(d).startswith("data/") else str((repo / d).resolve())
            for d in stage.get("deps", [])
        ]
        stages[name] = stage
    return {"stages": stages, **({"plots": pipeline["plots"]} if "plots" in pipeline else {})}


def prepare(root: Path, overrides: Mapping[str, Any], repo: Path = REPO) -> None:
    """dvc.yaml, params.yaml and a DVC project in `root` (kept when already there)."""
    root.mkdir(parents=True, exist_ok=True)
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    (root / "dvc.yaml").write_text(
        "# Written by bench/workspace.py from the repo's dvc.yaml.\n"
        + yaml.safe_dump(pipeline_for_workspace(pipeline, repo), sort_keys=False)
    )
    params = yaml.safe_load((repo / "params.yaml").read_text()) or {}
    (root / "params.yaml").write_text(
        yaml.safe_dump(deep_merge(params, overrides), sort_keys=False)
    )
    (root / "data/served/events").mkdir(parents=True, exist_ok=True)
    (root / ".dvcignore").write_text("__pycache__/\n*.pyc\n")
    if not (root / ".dvc").exists():
        dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or "dvc"
        done = subprocess.run(
            [dvc, "init", "--no-scm", "-q"], cwd=root, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise WorkspaceError(f"dvc init in {root} failed: {done.stderr.strip()}")


def workspace_env(
    root: Path, project: str, redis_url: str, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What every command of this workspace runs with (absolute paths: Ray Serve replicas
    do not share the caller's working directory)."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            "TF_USE_LEGACY_KERAS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "REDIS_URL": redis_url,
            "TAILWISE_FEATURE_REPO": str(REPO / "feature_repo"),
            "TAILWISE_FEATURES_DIR": str(root.resolve() / "data/features"),
            "TAILWISE_FEAST_PROJECT": project,
            "TAILWISE_FEAST_REGISTRY": str(root.resolve() / "data/feast/registry.db"),
        }
    )
    return env
