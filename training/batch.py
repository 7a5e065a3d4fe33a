"""Batch recommendations from a saved model version (`tailwise recommend`).

A version folder (data/models/<version>/, see tailwise.versions) is loaded as it was
trained: the exported query model and item embeddings (retrieval/) and the XGBoost ranker
(ranker/). Features come from Feast as of the newest event given, already-seen items come
from those events, and the same Reranker code that evaluation measured produces the list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tailwise.versions import read_manifest
from training import ranker as ranker_io
from training import retrieval as retrieval_io
from training.reranker import Reranker
from training.retrieval import TwoTowerRecommender
from training.union import SOURCES_DIR, UnionRecommender, load_sources, user_profiles


def load_recommender(folder: Path, store: Any, events: pd.DataFrame) -> Any:
    """The version in `folder` behind the harness interface; `events` are what users have
    seen (and their latest context), as of their last one. A version ranking the union
    of candidate sources (training.ranker.candidates: union) reads its sources/ tables."""
    retrieval = retrieval_io.load(folder / "retrieval")
    candidates = TwoTowerRecommender(store, retrieval.config).attach(retrieval, events)
    ranker = ranker_io.load(folder / "ranker")
    allow = bool((read_manifest(folder).get("recommend") or {}).get("allow_repeats", False))
    if ranker.config.candidates == "union":
        # A union ranked without the two-tower source must get the same union back.
        source = candidates if ranker.config.two_tower_source else None
        profiles = user_profiles(store)
        sources = load_sources(folder / SOURCES_DIR, source, allow, profiles)
        return UnionRecommender(store, ranker.config).attach(ranker, sources, events)
    reranker = Reranker(None, store, ranker.config, allow_repeats=allow)
    return reranker.attach(ranker, candidates, events)


def recommend_batch(recommender: Any, user_ids: list[str], k: int) -> pd.DataFrame:
    if not 1 <= k <= 1000:
        raise ValueError(f"k must be between 1 and 1000, got {k}")
    recs = recommender.recommend(user_ids, k, exclude_seen=not recommender.allow_repeats)
    return recs[["user_id", "item_id", "rank", "score"]]
