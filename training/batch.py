"""Batch recommendations from a saved model version (`tailwise recommend`).

A version folder (data/models/<version>/) is loaded as it was trained: the exported
query model and item embeddings (retrieval/) and the XGBoost ranker (ranker/). Features
come from Feast as of the newest event, already-seen items come from the clean events,
and the same Reranker code that evaluation measured produces the list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from training import ranker as ranker_io
from training import retrieval as retrieval_io
from training.ranker import Reranker
from training.retrieval import TwoTowerRecommender
from training.split import read_events


class ModelNotFoundError(FileNotFoundError):
    """No model version where one was asked for; the message says what exists."""


def version_folder(models_dir: Path, version: str | None = None) -> Path:
    """The named version, or the one data/models/LATEST names."""
    if version is None:
        latest = models_dir / "LATEST"
        if not latest.exists():
            raise ModelNotFoundError(
                f"no trained model in {models_dir}: run `tailwise train` first"
            )
        version = latest.read_text().strip()
    folder = models_dir / version
    if not (folder / "manifest.json").exists():
        known = sorted(p.name for p in models_dir.glob("*/manifest.json"))
        raise ModelNotFoundError(f"model version {version!r} not in {models_dir} (have: {known})")
    return folder


def load_recommender(folder: Path, store: Any, clean: Path) -> Reranker:
    events = read_events(clean)
    retrieval = retrieval_io.load(folder / "retrieval")
    candidates = TwoTowerRecommender(store, retrieval.config).attach(retrieval, events)
    ranker = ranker_io.load(folder / "ranker")
    return Reranker(None, store, ranker.config).attach(ranker, candidates, events)


def read_user_ids(path: Path) -> list[str]:
    """One user id per line; blank lines and '#' comments are skipped."""
    ids = [line.strip() for line in path.read_text().splitlines()]
    ids = [i for i in ids if i and not i.startswith("#")]
    if not ids:
        raise ValueError(f"{path}: no user ids (expected one id per line)")
    return list(dict.fromkeys(ids))


def recommend_batch(recommender: Reranker, user_ids: list[str], k: int) -> pd.DataFrame:
    if not 1 <= k <= 1000:
        raise ValueError(f"k must be between 1 and 1000, got {k}")
    recs = recommender.recommend(user_ids, k, exclude_seen=True)
    return recs[["user_id", "item_id", "rank", "score"]]
