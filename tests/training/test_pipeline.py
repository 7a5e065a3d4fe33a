"""`tailwise train` end to end on the feature world, then batch recommendations."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from training.batch import load_recommender, read_user_ids, recommend_batch, version_folder
from training.config import EvaluationParams
from training.pipeline import CANDIDATES, MODEL, TrainingParams, train
from training.split import read_events

TINY = TrainingParams(
    retrieval={"embedding_dim": 16, "hidden_units": 32, "epochs": 1, "batch_size": 256, "seed": 3},
    ranker={
        "n_estimators": 20,
        "max_depth": 3,
        "n_candidates": 20,
        "seed": 3,
        "validation_share": 0.0,
    },
)


@pytest.mark.slow
def test_train_writes_a_version_that_recommends(feature_world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    models = tmp_path / "models"
    outcome = train(
        feature_world.clean,
        feature_world.store,
        EvaluationParams(),
        TINY,
        models,
        ground_truth=feature_world.raw / "ground_truth",
    )
    folder = version_folder(models)
    assert folder == outcome.folder
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["feature_services"] == {"retrieval": "retrieval_v1", "ranking": "ranking_v1"}
    assert len(manifest["data_version"]) == 16
    metrics = json.loads((folder / "metrics.json").read_text())
    assert {MODEL, CANDIDATES, "most_popular", "ease", "oracle"} <= set(metrics)
    assert 0 <= metrics[MODEL]["ndcg@10"] <= 1
    for part in ("retrieval/query_model", "retrieval/item_embeddings.parquet", "ranker"):
        assert (folder / part).exists(), part

    recommender = load_recommender(folder, feature_world.store, feature_world.clean)
    events = read_events(feature_world.clean)
    known = list(events["user_id"].drop_duplicates()[:5])
    users_file = tmp_path / "users.txt"
    users_file.write_text("\n".join([*known, "# a comment", "never-seen-user"]) + "\n")
    recs = recommend_batch(recommender, read_user_ids(users_file), k=7)
    assert set(recs["user_id"]) == {*known, "never-seen-user"}
    assert recs.groupby("user_id").size().max() <= 7
    seen = events[["user_id", "item_id"]].drop_duplicates()
    assert recs.merge(seen, on=["user_id", "item_id"]).empty
    assert (
        recs.groupby("user_id")["rank"].apply(lambda r: list(r) == list(range(1, len(r) + 1))).all()
    )
    assert pd.api.types.is_numeric_dtype(recs["score"])
