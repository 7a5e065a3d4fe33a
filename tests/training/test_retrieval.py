"""Two-tower retriever: examples, tiny fit, save/load, signature, behaviour, index."""

from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # TFRS needs Keras 2; before any tensorflow import

import numpy as np
import pandas as pd
import pytest

from training.baselines import MostPopular
from training.config import SplitParams
from training.dataset import positive_events, retrieval_examples, user_features
from training.evaluate import evaluate
from training.index import ExactIndex, recall_at_k
from training.retrieval import (
    EpochFigures,
    RetrievalConfig,
    TwoTowerRecommender,
    load,
    save,
    train_retrieval,
)
from training.split import read_events, read_items, temporal_split

TINY = RetrievalConfig(
    embedding_dim=16,
    hidden_layers=(32,),
    epochs=2,
    batch_size=256,
    seed=3,
    history_items=3,  # the item_history input
    validation_share=0.2,  # early stopping on held-out recall, then the refit
    validation_n=20,
    patience=1,
)


@pytest.fixture(scope="module")
def split(feature_world):
    clean = feature_world.clean
    return temporal_split(read_events(clean), SplitParams(), read_items(clean))


@pytest.fixture(scope="module")
def fitted(feature_world, split) -> TwoTowerRecommender:
    model = TwoTowerRecommender(feature_world.store, TINY, as_of=split.start("validation"))
    return model.fit(split.history("validation"), split.candidate_items("validation"))


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    return save(fitted.result, tmp_path_factory.mktemp("model") / "retrieval")


@pytest.mark.slow
def test_examples_are_positive_events_with_point_in_time_features(feature_world, split) -> None:
    history = split.history("validation").iloc[:400]
    examples = retrieval_examples(feature_world.store, history, split.items)
    positives = positive_events(history)
    assert len(examples) == len(positives)
    assert (examples["weight"] > 0).all()
    names = [f.name for f in user_features(feature_world.store)]
    assert "rt_last_items" not in names and "ctx_daypart" in names
    assert set(names) <= set(examples.columns)
    assert examples[["category", "category_l1", "brand", "price"]].notna().all().all()
    # Daily snapshots only use earlier days: nothing about the event itself leaks in.
    first = examples.sort_values("event_timestamp").iloc[0]
    assert pd.isna(first["events_30d"]) or first["events_30d"] >= 0


@pytest.mark.slow
def test_save_load_gives_same_embeddings_and_top_k(fitted, saved) -> None:
    loaded = load(saved)
    frame = fitted.examples.iloc[:50]
    np.testing.assert_allclose(
        loaded.query_embeddings(frame), fitted.result.query_embeddings(frame), atol=1e-6
    )
    np.testing.assert_array_equal(loaded.item_ids, fitted.result.item_ids)
    queries = loaded.query_embeddings(frame)
    a = loaded.index().search(queries, 10)
    b = fitted.result.index().search(fitted.result.query_embeddings(frame), 10)
    np.testing.assert_array_equal(a.ids, b.ids)


@pytest.mark.slow
def test_signature_inputs_are_the_recorded_service_features(fitted, feature_world, saved):
    import json

    import tensorflow as tf

    folder = saved
    manifest = json.loads((folder / "manifest.json").read_text())
    signature = tf.saved_model.load(str(folder / "query_model")).signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    assert sorted(inputs) == sorted(manifest["feature_names"])
    assert manifest["feature_names"] == [d["name"] for d in manifest["inputs"]]
    assert manifest["feature_service"] == "retrieval_v1"
    service = {f.name for f in user_features(feature_world.store, "retrieval_v1")}
    assert set(manifest["feature_names"]) - service == {"user_id", "history_items"}
    assert manifest["inputs"][-1] == {
        "name": "history_items",
        "kind": "item_history",
        "length": 3,
        "dtype": "string",
        "shape": [None, 3],
    }
    for spec in manifest["inputs"]:
        assert inputs[spec["name"]].dtype.name == spec["dtype"]
        assert list(inputs[spec["name"]].shape) == spec["shape"]
    assert len(pd.read_parquet(folder / "item_embeddings.parquet")) == len(fitted.result.item_ids)
    # The plain export serving evaluates lists the same inputs, in the same order.
    export = json.loads((folder / "query_tower.json").read_text())
    assert export["inputs"] == manifest["inputs"]
    assert [d["activation"] for d in export["dense"]] == ["relu", "linear"]


@pytest.mark.slow
def test_examples_hold_the_users_items_before_each_event(fitted) -> None:
    examples = fitted.examples
    assert examples["history_items"].map(len).le(3).all()
    had = [i in h for i, h in zip(examples["item_id"], examples["history_items"], strict=True)]
    # An item among the user's latest ones was touched before: never a first touch.
    assert not (np.array(had) & examples["first_touch"].to_numpy()).any()
    assert examples["first_touch"].any() and not examples["first_touch"].all()
    first = examples.sort_values("event_timestamp").groupby("user_id").head(1)
    assert first["history_items"].map(len).eq(0).all()  # nothing before a first event


@pytest.mark.slow
def test_early_stopping_reports_every_epoch_and_keeps_the_best(fitted, split) -> None:
    info = fitted.result.info
    epochs = info["validation"]["epochs"]
    assert info["validation"]["pairs"] > 0 and 1 <= len(epochs) <= TINY.epochs
    recall = [e["val_recall_at_20"] for e in epochs]
    assert info["best_epoch"] == int(np.argmax(recall)) + 1
    assert len(info["loss"]) == info["best_epoch"]  # the refit ran the best epoch count
    seen: list[float] = []
    cfg = TINY.model_copy(update={"refit": False, "epochs": 2, "patience": 5})
    train_retrieval(
        cfg, fitted.examples.iloc[:2000], split.candidate_items("validation"),
        on_epoch=lambda figures: seen.append(figures.metric("recall", 20)),
    )  # fmt: skip
    assert len(seen) == 2 and all(0.0 <= v <= 1.0 for v in seen)
    with pytest.raises(ValueError, match="history_items"):
        train_retrieval(TINY, fitted.examples.drop(columns="history_items"), split.items)


@pytest.mark.slow
def test_recommend_excludes_seen_items_and_respects_k(fitted, split) -> None:
    users = split.truth("validation").users["user_id"].tolist()[:40]
    recs = fitted.recommend(users, 5)
    assert set(recs["user_id"]) == set(users)
    assert recs.groupby("user_id").size().max() <= 5
    ranks = recs.groupby("user_id")["rank"].apply(list)
    assert all(r == list(range(1, len(r) + 1)) for r in ranks)
    seen = split.history("validation")[["user_id", "item_id"]].drop_duplicates()
    assert recs.merge(seen, on=["user_id", "item_id"]).empty
    assert not recs.duplicated(["user_id", "item_id"]).any()
    with_seen = fitted.recommend(users, 5, exclude_seen=False)
    assert with_seen.groupby("user_id").size().eq(5).all()


@pytest.mark.slow
def test_training_is_deterministic_for_a_seed(fitted, split) -> None:
    examples = fitted.examples.iloc[:1500]
    cfg = TINY.model_copy(update={"epochs": 1, "refit": False})  # one fit, held-out figures
    items = split.candidate_items("validation")
    one, two = (train_retrieval(cfg, examples, items) for _ in range(2))
    np.testing.assert_array_equal(one.item_vectors, two.item_vectors)
    np.testing.assert_array_equal(
        one.query_embeddings(examples.iloc[:20]), two.query_embeddings(examples.iloc[:20])
    )
    users = split.truth("validation").users["user_id"].tolist()[:10]
    pd.testing.assert_frame_equal(fitted.recommend(users, 10), fitted.recommend(users, 10))


@pytest.mark.slow
def test_cold_start_user_gets_sensible_items(fitted) -> None:
    recs = fitted.recommend(["u_never_seen_anywhere"], 10)
    assert len(recs) == 10
    assert recs["item_id"].is_unique
    assert np.isfinite(recs["score"]).all()
    assert set(recs["item_id"]) <= set(fitted.result.item_ids)


@pytest.mark.slow
def test_validation_ndcg_is_reported(fitted, split) -> None:
    popular = MostPopular().fit(split.history("validation"), split.candidate_items("validation"))
    result = evaluate({"two_tower": fitted, "most_popular": popular}, split, ks=(10,),
                      window="validation")  # fmt: skip
    ndcg = result.value("two_tower", "ndcg", 10)
    print(f"\nfeature_world validation NDCG@10: two_tower {ndcg:.4f}, "
          f"most_popular {result.value('most_popular', 'ndcg', 10):.4f}")  # fmt: skip
    assert 0.0 <= ndcg <= 1.0
    assert not any("had seen" in note for note in result.notes)


def _random(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_index_matches_brute_force_with_exclusions() -> None:
    items, queries = _random(300, 8, 0), _random(20, 8, 1)
    ids = [f"i{n:03d}" for n in range(300)]
    exclude = [{ids[q], ids[q + 1]} for q in range(20)]
    found = ExactIndex().build(ids, items).search(queries, 7, exclude)
    scores = queries @ items.T
    for q in range(20):
        scores[q, [q, q + 1]] = -np.inf
        expected = [ids[j] for j in np.argsort(-scores[q], kind="stable")[:7]]
        assert list(found.ids[q]) == expected
    short = ExactIndex().build(ids[:3], items[:3]).search(queries[:1], 5, [{ids[0]}])
    assert set(short.ids[0][:2]) == {ids[1], ids[2]} and list(short.ids[0][2:]) == ["", "", ""]
    assert short.found.sum() == 2


def test_hnsw_recall_against_exact() -> None:
    pytest.importorskip("hnswlib")
    from training.index import HNSWIndex

    items, queries = _random(5000, 32, 2), _random(200, 32, 3)
    ids = [f"i{n:05d}" for n in range(5000)]
    exclude = [set(ids[q * 3 : q * 3 + 3]) for q in range(200)]
    exact = ExactIndex().build(ids, items).search(queries, 10, exclude)
    approximate = (
        HNSWIndex(m=16, ef_construction=200, ef=64).build(ids, items).search(queries, 10, exclude)
    )
    recall = recall_at_k(approximate, exact)
    print(f"\nHNSW recall@10 vs exact (5000 random 32-d items, ef=64): {recall:.4f}")
    assert recall >= 0.9
    assert not any(set(row) & seen for row, seen in zip(approximate.ids, exclude, strict=True))


def test_held_out_figures_of_ranks() -> None:
    figures = EpochFigures(1, np.array([1, 3, 40]), 0.5)
    assert figures.metric("recall", 10) == pytest.approx(2 / 3)
    assert figures.metric("ndcg", 10) == pytest.approx((1 + 1 / np.log2(4)) / 3)
    assert figures.metric("map", 2) == pytest.approx(1 / 3)
    assert EpochFigures(1, np.array([], dtype=int), 0.0).metric("recall", 5) == 0.0
    with pytest.raises(ValueError, match="coverage"):
        figures.metric("coverage", 10)
