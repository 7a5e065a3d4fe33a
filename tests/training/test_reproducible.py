"""The same clean data and seeds give the same model version, feature build included.

The closed-loop scenario once promoted nothing because its challenger scored lower than in
the run before on the same code: each feature build gave users other segments (K-Means on
rows in DuckDB's arbitrary order), so the towers and the ranker learnt from other inputs.
Here the path after ingestion runs twice as `dvc repro` runs it, each command in its own
process, with its own feature build and Feast project; the two versions must agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.feast_project import ROOT, isolated_feast_settings

pytestmark = pytest.mark.slow

# The drift scenario's tiny training (monitoring.scenario.TINY_PARAMS).
TINY = {
    "evaluation": {"split": {"validation_days": 5, "test_days": 5}, "ks": [5, 10]},
    "training": {
        "retrieval": {"epochs": 1, "batch_size": 256, "embedding_dim": 8, "seed": 0},
        "ranker": {"n_estimators": 20, "min_child_weight": 1, "n_candidates": 50, "seed": 0},
    },
}


def _tailwise(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tailwise.cli", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"tailwise {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def _build_and_train(clean: Path, root: Path) -> Path:
    """`features build` then `train` in their own processes; the published version."""
    root.mkdir()
    settings = isolated_feast_settings(root / "features", root / "registry.db", "tw_repro")
    (root / "params.yaml").write_text(yaml.safe_dump(TINY))
    env = {
        **os.environ,
        "TF_USE_LEGACY_KERAS": "1",
        "TAILWISE_FEATURE_REPO": str(ROOT / "feature_repo"),
        "TAILWISE_FEATURES_DIR": str(root / "features"),
        "TAILWISE_FEAST_PROJECT": str(settings.feast_project),
        "TAILWISE_FEAST_REGISTRY": str(root / "registry.db"),
    }
    _tailwise(["features", "build", "--data", str(clean), "--out", str(root / "features")], env)
    paths = {"models": "models", "work": "work", "evaluation": "evaluation"}
    options = [a for k, v in paths.items() for a in (f"--{k}", str(root / v))]
    data = ["--data", str(clean), "--features", str(root / "features")]
    _tailwise(["train", *data, *options, "--params", str(root / "params.yaml")], env)
    return root / "models" / (root / "models/LATEST").read_text().strip()


@pytest.fixture(scope="module")
def versions(
    generated: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """Two versions of the same clean data, each from its own feature build and training."""
    _, clean = generated
    root = tmp_path_factory.mktemp("reproducible")
    one, two = (_build_and_train(clean, root / name) for name in ("one", "two"))
    return one, two


RANKER_METRICS = ("two_tower+ranker", "ranker_lift")


def test_two_builds_give_the_same_segments_retriever_and_baselines(
    versions: tuple[Path, Path],
) -> None:
    one, two = versions
    keys = ["user_id", "event_timestamp"]
    segments = [
        pd.read_parquet(folder.parents[1] / "features/user_daily.parquet")
        .sort_values(keys)[[*keys, "segment", "segment_name"]]
        .reset_index(drop=True)
        for folder in (one, two)
    ]
    pd.testing.assert_frame_equal(*segments)
    metrics = [json.loads((folder / "metrics.json").read_text()) for folder in (one, two)]
    kept = [{k: v for k, v in m.items() if k not in RANKER_METRICS} for m in metrics]
    assert kept[0] == kept[1]
    vectors = [pd.read_parquet(f / "retrieval/item_embeddings.parquet") for f in (one, two)]
    # Equal to float32 rounding, not bit for bit: TensorFlow's CPU kernels may sum in
    # another order between processes (seen under CI: differences of ~1e-5).
    assert vectors[0]["item_id"].tolist() == vectors[1]["item_id"].tolist()
    np.testing.assert_allclose(
        np.stack(vectors[0]["vector"]), np.stack(vectors[1]["vector"]), atol=1e-3
    )


@pytest.mark.xfail(
    strict=False,
    reason="open: the retrievers of two separate builds have differed by ~1e-5 (TensorFlow "
    "on CPU), and the rankers trained on their candidates then differed (ranker_lift "
    "ndcg@10 -0.119 in one, -0.304 in the other)",
)
def test_two_builds_give_the_same_ranker(versions: tuple[Path, Path]) -> None:
    one, two = versions
    metrics = [json.loads((folder / "metrics.json").read_text()) for folder in (one, two)]
    first, second = ({k: m.get(k) for k in RANKER_METRICS} for m in metrics)
    assert first == second
    rankers = [(folder / "ranker/model.json").read_bytes() for folder in (one, two)]
    assert rankers[0] == rankers[1]
