"""`tailwise train`'s stages end to end on the feature world, then batch recommendations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tailwise.lineage import data_version
from tailwise.user_list import read_user_ids
from tailwise.versions import read_manifest, version_folder
from training.batch import load_recommender, recommend_batch
from training.config import EvaluationParams
from training.pipeline import (
    CANDIDATES,
    MODEL,
    StageError,
    TrainingParams,
    evaluate_version,
    train,
    train_ranker,
)
from training.split import read_events

TINY = TrainingParams(
    retrieval={"embedding_dim": 16, "hidden_units": 32, "epochs": 1, "batch_size": 256, "seed": 3},
    ranker={
        "n_estimators": 20,
        "max_depth": 3,
        "n_candidates": 20,
        "seed": 3,
        "validation_share": 0.0,
        "label_windows": 2,
    },
)


@pytest.fixture(scope="module")
def trained(feature_world, tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("train")
    outcome = train(
        feature_world.clean,
        feature_world.store,
        EvaluationParams(),
        TINY,
        root / "models",
        ground_truth=feature_world.raw / "ground_truth",
        features=feature_world.features,
        work=root / "work",
    )
    return root, outcome


@pytest.mark.slow
def test_train_publishes_a_self_describing_evaluated_version(trained, feature_world) -> None:  # type: ignore[no-untyped-def]
    root, outcome = trained
    folder = version_folder(root / "models")
    assert folder == outcome.folder
    manifest = read_manifest(folder)
    assert manifest["feature_services"] == {"retrieval": "retrieval_v1", "ranking": "ranking_v1"}
    # The lineage version feature tables and the Feast registry record too.
    assert manifest["data_version"] == data_version(feature_world.clean)
    assert manifest["params"]["training"]["ranker"]["label_windows"] == 2
    assert manifest["feature_names"]["ranking"][:2] == ["retrieval_score", "retrieval_rank"]
    assert manifest["feature_names"]["retrieval"][0] == "user_id"
    assert manifest["files"]["cold_start"]["file"] == "cold_start.parquet"
    # What training decided about this data, for serving and for a reader.
    assert set(manifest["dropped_features"]) == {"retrieval", "retrieval_candidate", "ranking"}
    for model, names in manifest["dropped_features"].items():
        used = manifest["feature_names"].get(model, [])
        assert not set(names) & set(used), model
    assert set(manifest["recommend"]) == {"allow_repeats", "setting", "repeat_share", "basis"}
    assert manifest["windows"]["rule"] in {"configured", "quantile"}
    assert manifest["ranker_scored_by"] in {"ranker", "candidate order"}
    metrics = json.loads((folder / "metrics.json").read_text())
    assert {MODEL, CANDIDATES, "most_popular", "ease", "oracle", "ranker_lift"} <= set(metrics)
    assert 0 <= metrics[MODEL]["ndcg@10"] <= 1
    assert metrics["ranker_lift"]["ndcg@10"] == pytest.approx(
        metrics[MODEL]["ndcg@10"] / metrics[CANDIDATES]["ndcg@10"] - 1, abs=1e-5
    )
    for part in (
        "retrieval/query_model",
        "retrieval/item_embeddings.parquet",
        "ranker/model.json",
        "ranker/ranker.json",
        "cold_start.parquet",
        "report.md",
    ):
        assert (folder / part).exists(), part
    cold = pd.read_parquet(folder / "cold_start.parquet")
    assert list(cold.columns) == ["dimension", "value", "item_id", "rank", "score"]
    assert {"all", "device", "country"} == set(cold["dimension"])
    # The stages' outputs stay where DVC expects them; tuning did not run.
    work = root / "work"
    assert (work / "retrieval" / "candidates.parquet").exists()
    lists = pd.read_parquet(work / "retrieval" / "candidates.parquet")
    assert set(lists["window"]) == {0, 1} and set(lists["label"]) == {0.0, 1.0}
    history = pd.read_csv(work / "ranker" / "tuning" / "history.csv")
    assert list(history.columns) == ["trial", "value", "best"] and history.empty


@pytest.mark.slow
def test_published_version_recommends(trained, feature_world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, outcome = trained
    events = read_events(feature_world.clean)
    recommender = load_recommender(outcome.folder, feature_world.store, events)
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


@pytest.mark.slow
def test_stages_refuse_outputs_of_another_split(trained, feature_world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, outcome = trained
    shorter = EvaluationParams.model_validate({"split": {"test_days": 5}})
    with pytest.raises(StageError, match="test window now starts"):
        evaluate_version(feature_world.clean, feature_world.store, shorter, outcome.folder)
    retrieval = tmp_path / "retrieval"
    shutil.copytree(root / "work" / "retrieval", retrieval)
    stage = json.loads((retrieval / "stage.json").read_text())
    (retrieval / "stage.json").write_text(json.dumps({**stage, "data_version": "0" * 64}))
    with pytest.raises(StageError, match="data version"):
        train_ranker(
            feature_world.clean,
            feature_world.store,
            EvaluationParams(),
            TINY,
            retrieval,
            tmp_path / "ranker",
        )


UNION = TINY.model_copy(
    update={
        "ranker": {
            **TINY.ranker,
            "candidates": "union",
            "two_tower_source": False,
            "n_per_source": 10,
            "label_windows": 1,
        }
    }
)


@pytest.mark.slow
def test_union_examples_fetched_while_the_two_tower_trains_are_the_ranker_stages_own(
    feature_world, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """`train` fetches the union ranker's examples while the two-tower trains alongside;
    the ranker stage run on its own, fetching them itself, saves the same ranker."""
    work = tmp_path / "work"
    outcome = train(
        feature_world.clean,
        feature_world.store,
        EvaluationParams(),
        UNION,
        tmp_path / "models",
        work=work,
    )
    stage = json.loads((work / "retrieval" / "stage.json").read_text())
    assert "ranker_examples_early" in stage["stage_seconds"]
    assert read_manifest(outcome.folder)["stage_seconds"]["ranker_examples"] < 1.0
    again = train_ranker(
        feature_world.clean,
        feature_world.store,
        EvaluationParams(),
        UNION,
        work / "retrieval",
        tmp_path / "ranker",
    )
    for name in ("model.json", "ranker.json"):
        mine = json.loads((again / "version" / "ranker" / name).read_text())
        theirs = json.loads((outcome.folder / "ranker" / name).read_text())
        assert mine == theirs, name


def test_tuning_history_feeds_the_dvc_plot_and_is_empty_without_tuning(tmp_path: Path) -> None:
    from training.pipeline import _save_tuning
    from training.ranker import RankerConfig
    from training.tune import TuneOutcome

    trials = pd.DataFrame(
        {"trial": [0, 1, 2], "max_depth": [3, 5, 4], "ndcg@10": [0.1, float("nan"), 0.2]}
    ).assign(status=["TERMINATED", "ERROR", "TERMINATED"], seconds=[1.0, 0.5, 2.0])
    _save_tuning(TuneOutcome(RankerConfig(), 0.2, "ndcg@10", trials), tmp_path / "tuned")
    history = pd.read_csv(tmp_path / "tuned" / "history.csv")
    assert list(history["best"]) == [0.1, 0.1, 0.2] and history["value"].isna().sum() == 1
    assert (tmp_path / "tuned" / "best_config.json").exists()
    _save_tuning(None, tmp_path / "untuned")
    assert (tmp_path / "untuned" / "history.csv").read_text().strip() == "trial,value,best"


@pytest.mark.slow
def test_retrieval_stage_tunes_when_asked_and_trains_with_the_best(
    feature_world, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from training.pipeline import train_retrieval

    tune = {"num_samples": 1, "max_concurrent_trials": 1, "cpus": 1, "storage": tmp_path / "ray"}
    training = TINY.model_copy(update={"tune": tune, "ranker": {**TINY.ranker, "label_windows": 1}})
    out = train_retrieval(
        feature_world.clean,
        feature_world.store,
        EvaluationParams(),
        training,
        tmp_path / "retrieval",
        settings=feature_world.settings,
        tune=True,
    )
    history = pd.read_csv(out / "tuning" / "history.csv")
    assert len(history) == 1 and history["value"].between(0, 1).all()
    best = json.loads((out / "tuning" / "best_config.json").read_text())
    assert json.loads((out / "stage.json").read_text())["config"] == best
    assert (out / "model" / "query_model").exists()
