"""`tailwise train`: split, train the retriever and the ranker, evaluate, write a version.

    clean events --temporal_split--> train+validation | test
    Reranker(two-tower candidates) fit on train+validation (features from Feast, as of
    each event) --> evaluated on the test window next to the baselines (+ oracle)
    --> data/models/<version>/ {retrieval/, ranker/, metrics.json, report.md, manifest.json}
        and data/models/LATEST naming it.

The saved models are the evaluated ones: trained on everything before the test window.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from training import ranker as ranker_io
from training import retrieval as retrieval_io
from training.config import EvaluationParams
from training.evaluate import EvaluationResult, baselines, evaluate, segments_at
from training.oracle import Oracle
from training.ranker import RankerConfig, Reranker
from training.retrieval import RetrievalConfig, TwoTowerRecommender
from training.split import read_events, read_items, temporal_split

MODEL = "two_tower+ranker"
CANDIDATES = "two_tower"


class TrainingParams(BaseModel):
    """The `training:` section of params.yaml."""

    model_config = ConfigDict(extra="forbid")

    retrieval: dict[str, Any] = Field(default_factory=dict, description="RetrievalConfig fields")
    ranker: dict[str, Any] = Field(default_factory=dict, description="RankerConfig fields")
    tune: dict[str, Any] = Field(default_factory=dict, description="TuneParams fields")


@dataclass
class TrainOutcome:
    version: str
    folder: Path
    result: EvaluationResult
    seconds: float


def data_version(clean: Path) -> str:
    """A fingerprint of the clean data: its quality report and every file's size."""
    digest = hashlib.sha256((clean / "quality_report.json").read_bytes())
    for path in sorted(clean.rglob("*.parquet")):
        digest.update(f"{path.relative_to(clean)}:{path.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def train(
    clean: Path,
    store: Any,
    evaluation: EvaluationParams,
    training: TrainingParams,
    models_dir: Path,
    ground_truth: Path | None = None,
    features: Path | None = None,
) -> TrainOutcome:
    started = time.perf_counter()
    split = temporal_split(read_events(clean), evaluation.split, read_items(clean))
    segments = segments_at(features, split.test_start)
    retrieval_cfg = RetrievalConfig(**training.retrieval)
    reranker = Reranker(
        lambda: TwoTowerRecommender(store, retrieval_cfg),
        store,
        RankerConfig(**training.ranker),
        evaluation.split,
    )
    models: dict[str, Any] = {**baselines(evaluation), MODEL: reranker}
    if ground_truth is not None:
        models["oracle"] = Oracle(ground_truth, at=split.test_start)
    result = evaluate(models, split, evaluation.ks, segments, window="test", fit=True)
    own_order = evaluate(
        {CANDIDATES: reranker.candidate_model}, split, evaluation.ks, segments, window="test"
    )
    result = _merge(result, own_order)
    version = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = models_dir / version
    dv = data_version(clean)
    retrieval_io.save(reranker.candidate_model.result, folder / "retrieval")
    ranker_io.save(reranker.result, folder / "ranker", data_version=dv)
    seconds = time.perf_counter() - started
    _write_version(folder, version, dv, result, training, evaluation, split, seconds)
    (models_dir / "LATEST").write_text(version + "\n")
    return TrainOutcome(version, folder, result, seconds)


def tune_both(
    settings: Any,
    clean: Path,
    evaluation: EvaluationParams,
    training: TrainingParams,
    out: Path,
) -> TrainingParams:
    """Search the retriever's then the ranker's settings on the validation window (the test
    window is never seen); keep every trial under `out`; return the best settings."""
    from tailwise.features.store import open_store
    from training.config import TuneParams
    from training.tune import save as save_tuning
    from training.tune import tune_ranker, tune_retrieval

    params = TuneParams(**training.tune)
    settings = settings.resolved()  # trials run in their own working folders
    split = temporal_split(read_events(clean), evaluation.split, read_items(clean))
    found = tune_retrieval(settings, split, RetrievalConfig(**training.retrieval), params)
    save_tuning(found, out / "retrieval")
    best_retrieval = found.best_config

    def candidates() -> TwoTowerRecommender:
        return TwoTowerRecommender(open_store(settings), best_retrieval)  # type: ignore[arg-type]

    ranked = tune_ranker(settings, split, candidates, RankerConfig(**training.ranker), params)
    save_tuning(ranked, out / "ranker")
    return training.model_copy(
        update={
            "retrieval": best_retrieval.model_dump(mode="json"),
            "ranker": ranked.best_config.model_dump(mode="json"),
        }
    )


def _merge(a: EvaluationResult, b: EvaluationResult) -> EvaluationResult:
    a.table = pd.concat([a.table, b.table], ignore_index=True)
    a.per_user = pd.concat([a.per_user, b.per_user], ignore_index=True)
    a.timings.update(b.timings)
    return a


def _write_version(
    folder: Path,
    version: str,
    dv: str,
    result: EvaluationResult,
    training: TrainingParams,
    evaluation: EvaluationParams,
    split: Any,
    seconds: float,
) -> None:
    overall = result.table.loc[result.table["slice"] == "all"]
    metrics: dict[str, dict[str, float]] = {}
    for row in overall.itertuples():
        metrics.setdefault(row.model, {})[f"{row.metric}@{row.k}"] = round(float(row.value), 6)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (folder / "report.md").write_text(result.to_markdown() + "\n")
    manifest = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_version": dv,
        "trained_on": f"events before {split.test_start.isoformat()}",
        "evaluated_on": f"{split.test_start.isoformat()} .. {split.end.isoformat()}",
        "feature_services": {"retrieval": "retrieval_v1", "ranking": "ranking_v1"},
        "params": {
            "training": training.model_dump(),
            "evaluation": evaluation.model_dump(mode="json"),
        },
        "training_seconds": round(seconds, 1),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
