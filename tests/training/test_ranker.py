"""Ranker and reranker: cross features by hand, ranking examples from Feast, save/load,
determinism, stacked label windows, the Reranker's harness behaviour and its NDCG@10 next
to its candidate model's order."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tailwise.features.cross import CROSS_FEATURES, cross_features
from training.baselines import EASE
from training.config import SplitParams
from training.evaluate import evaluate
from training.ranker import (
    RankerConfig,
    feature_columns,
    load,
    ranking_examples,
    save,
    train_ranker,
)
from training.reranker import Reranker
from training.split import read_events, read_items, temporal_split

TINY = RankerConfig(n_estimators=20, max_depth=3, n_candidates=20, seed=3, validation_share=0.0)


def hand_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ["i1", "i2", "i3"],
            "category": ["A/x", "B/y", None],
            "category_l1": ["A", "B", "A"],
            "top_categories": [["B/y", "A/x", "A/z"], [], None],
            "top_category_shares": [np.array([0.5, 0.3, 0.1], dtype="float32"), [], None],
            "brand": ["b1", "b2", "b3"],
            "top_brands": [["b1", "b9"], ["b1"], None],
            "price": [20.0, 10.0, 5.0],
            "avg_price_30d": [10.0, 0.0, None],
            "recent_items": [["i1"], [], None],
            "rt_last_items": [None, ["i7", "i2"], ["i9"]],
            "rt_last_category": ["A/x", "A/x", None],
            "item_popularity_rank_7d": [1, 10, None],
            "item_conversion_7d": [0.1, None, 0.0],
            "item_age_days": [3.0, 30.0, None],
            "ctx_device_share": [0.5, 1.0, None],
            "ctx_daypart_share": [0.5, 0.2, 0.1],
        },
        index=[10, 11, 12],
    )


EXPECTED = {  # hand-computed, rows 10, 11, 12 of hand_rows()
    "x_cat_share": [0.3, 0.0, np.nan],  # A/x has share 0.3; empty top list; no category
    "x_cat_l1_share": [0.4, 0.0, np.nan],  # A/x 0.3 + A/z 0.1
    "x_cat_rank": [2.0, np.nan, np.nan],
    "x_is_top_category": [0.0, 0.0, np.nan],
    "x_price_ratio": [2.0, np.nan, np.nan],  # 20/10; usual price 0 and missing
    "x_log_price_ratio": [math.log(2.0), np.nan, np.nan],
    "x_brand_match": [1.0, 0.0, np.nan],
    "x_in_recent_items": [1.0, 0.0, np.nan],
    "x_in_rt_last_items": [np.nan, 1.0, 0.0],
    "x_same_rt_category": [1.0, 0.0, np.nan],
    "x_log_popularity_rank": [math.log(2.0), math.log(11.0), np.nan],
    "x_conversion_7d": [0.1, np.nan, 0.0],
    "x_log_item_age_days": [math.log(4.0), math.log(31.0), np.nan],
    "x_is_new_item": [1.0, 0.0, np.nan],
    "x_context_share": [0.25, 0.2, np.nan],
}


def test_cross_features_match_hand_computed_values() -> None:
    out = cross_features(hand_rows())
    assert list(out.columns) == list(CROSS_FEATURES) == list(EXPECTED)
    assert list(out.index) == [10, 11, 12]
    for name, want in EXPECTED.items():
        np.testing.assert_allclose(out[name].to_numpy(), want, rtol=1e-6, err_msg=name)


def test_cross_features_missing_inputs_give_nan() -> None:
    out = cross_features(pd.DataFrame({"unrelated": [1, 2]}))
    assert out.shape == (2, len(CROSS_FEATURES)) and out.isna().all().all()
    assert cross_features(hand_rows().iloc[:0]).empty
    # Mismatched top lists (shares shorter than categories) are missing, not an error.
    odd = hand_rows().iloc[:1].assign(top_category_shares=[[0.5]])
    assert np.isnan(cross_features(odd)["x_cat_share"].iloc[0])


@pytest.fixture(scope="module")
def world(feature_world):  # type: ignore[no-untyped-def]
    """Split of the feature world and the ranking examples of EASE candidates at the
    validation start with their labels (and those candidates and labels)."""
    split = temporal_split(
        read_events(feature_world.clean), SplitParams(), read_items(feature_world.clean)
    )
    ease = EASE(lambda_=100.0).fit(split.train, split.candidate_items("validation"))
    users = split.validation_truth.users["user_id"].head(60)
    recs = ease.recommend(users, TINY.n_candidates)
    candidates = recs.rename(columns={"score": "retrieval_score", "rank": "retrieval_rank"})
    candidates = candidates.assign(
        event_timestamp=split.validation_start, request_device="mobile", request_country="DE"
    )
    labels = split.validation_truth.relevant.assign(label=1.0)
    examples = ranking_examples(feature_world.store, candidates, labels)
    return split, examples, candidates, labels


@pytest.mark.slow
def test_ranking_examples_are_aligned_and_ordered(feature_world, world) -> None:  # type: ignore[no-untyped-def]
    _, examples, _, _ = world
    numeric, categorical = feature_columns(feature_world.store)
    assert list(examples.X.columns) == [
        "retrieval_score",
        "retrieval_rank",
        *CROSS_FEATURES,
        *numeric,
        *categorical,
    ]
    assert "item_popularity_rank_7d" in numeric and "ctx_daypart" in categorical
    assert "category_l1" in categorical and "top_categories" not in examples.X
    assert len(examples.X) == len(examples.y) == len(examples.keys) == examples.groups.sum()
    assert (examples.keys.groupby("user_id", sort=False).size().to_numpy() == examples.groups).all()
    assert set(np.unique(examples.y)) <= {0.0, 1.0} and examples.y.sum() > 0
    assert examples.X["x_cat_share"].notna().any()


@pytest.mark.slow
def test_ranking_examples_fetched_by_ray_tasks_over_user_shards(feature_world, world) -> None:  # type: ignore[no-untyped-def]
    """Two Ray tasks, each with a FeatureStore of its own over half the users, give the
    examples the single call gives: every value, row order and list sizes."""
    import ray

    _, examples, candidates, labels = world
    own = not ray.is_initialized()
    if own:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        sharded = ranking_examples(feature_world.store, candidates, labels, workers=2)
    finally:
        if own:
            ray.shutdown()
    pd.testing.assert_frame_equal(sharded.X, examples.X)
    pd.testing.assert_frame_equal(sharded.keys, examples.keys)
    assert np.array_equal(sharded.y, examples.y) and examples.y.sum() > 0
    assert np.array_equal(sharded.groups, examples.groups)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        ranking_examples(feature_world.store, candidates, labels, workers=0)


@pytest.mark.slow
def test_save_load_same_predictions_and_deterministic(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, examples, _, _ = world
    first = train_ranker(TINY, examples)
    again = train_ranker(TINY, examples)
    np.testing.assert_array_equal(first.predict(examples.X), again.predict(examples.X))
    loaded = load(save(first, tmp_path / "ranker"))
    assert loaded.feature_names == first.feature_names
    assert loaded.categories == first.categories and loaded.feature_service == "ranking_v1"
    np.testing.assert_array_equal(loaded.predict(examples.X), first.predict(examples.X))
    assert not list((tmp_path / "ranker").glob("*.pkl"))


@pytest.mark.slow
def test_reranker_excludes_seen_respects_k_and_reports_lift(feature_world, world) -> None:  # type: ignore[no-untyped-def]
    split, _, _, _ = world
    cfg = TINY.model_copy(update={"max_train_users": 150})
    reranker = Reranker(EASE(lambda_=100.0), feature_world.store, cfg)
    reranker.fit(split.history("validation"), split.candidate_items("validation"))
    users = split.validation_truth.users["user_id"].to_numpy()
    recs = reranker.recommend(users[:40], k=5)
    assert recs.groupby("user_id").size().max() <= 5
    assert not recs.duplicated(["user_id", "item_id"]).any()
    seen = split.history("validation")[["user_id", "item_id"]].drop_duplicates()
    assert recs.merge(seen, on=["user_id", "item_id"]).empty
    # Lift: the reranked list vs EASE's own order of the same candidates (refitted on the
    # same history), on the validation window. The tiny world asserts only valid metrics.
    result = evaluate(
        {"reranked": reranker, "ease_order": reranker.candidate_model},
        split,
        ks=(10,),
        window="validation",
    )
    reranked = result.value("reranked", "ndcg", 10)
    ease_order = result.value("ease_order", "ndcg", 10)
    print(f"\nvalidation NDCG@10 reranked={reranked:.4f} ease_order={ease_order:.4f}")
    assert 0.0 <= reranked <= 1.0 and 0.0 <= ease_order <= 1.0


def test_labelled_candidates_stack_windows_back_from_the_end() -> None:
    from tests.training.conftest import events, items
    from training.baselines import MostPopular
    from training.reranker import labelled_candidates

    log = events(
        ("u1", "i1", "2026-01-01"),
        ("u2", "i2", "2026-01-02"),
        ("u1", "i2", "2026-01-09"),  # window 1: 2026-01-08 .. 01-15
        ("u3", "i1", "2026-01-10"),
        ("u2", "i3", "2026-01-16"),  # window 0: 2026-01-15 .. the last event
        ("u1", "i3", "2026-01-22"),
    )
    catalogue = items("i1", "i2", "i3", created={"i3": "2026-01-05"})
    cfg = RankerConfig(cut_days=7, label_windows=2, n_candidates=3)
    rows = labelled_candidates(MostPopular, log, catalogue, cfg, SplitParams())
    assert set(rows["window"]) == {0, 1}
    labelled = rows[rows["label"] == 1.0]
    got = set(zip(labelled["window"], labelled["user_id"], labelled["item_id"], strict=True))
    assert got == {(1, "u1", "i2"), (1, "u3", "i1"), (0, "u2", "i3"), (0, "u1", "i3")}
    older = rows[rows["window"] == 1]
    assert set(older["user_id"]) == {"u1", "u3"}
    assert "i1" not in set(older.loc[older["user_id"] == "u1", "item_id"])  # seen before
    assert (older["event_timestamp"] == pd.Timestamp("2026-01-08", tz="UTC")).all()  # its cut
    assert set(rows["query"]) == {"1|u1", "1|u3", "0|u1", "0|u2"}
    too_many = cfg.model_copy(update={"label_windows": 4})
    with pytest.raises(ValueError, match=r"label window 2 .* needs events before"):
        labelled_candidates(MostPopular, log, catalogue, too_many, SplitParams())


def test_examples_where_keeps_whole_lists_and_refuses_to_split_one() -> None:
    from training.ranker import Examples

    keys = pd.DataFrame(
        {
            "query": ["0|u1", "0|u1", "1|u1", "1|u2", "1|u2"],
            "user_id": ["u1", "u1", "u1", "u2", "u2"],
            "item_id": ["a", "b", "a", "c", "d"],
            "retrieval_rank": [1, 2, 1, 1, 2],
        }
    )
    examples = Examples(
        pd.DataFrame({"x": [1.0, 2, 3, 4, 5]}),
        np.array([1, 0, 1, 0, 1.0]),
        np.array([2, 1, 2]),
        keys,
    )
    older = examples.where(keys["query"].str.startswith("1|").to_numpy())
    assert older.groups.tolist() == [1, 2]
    assert older.X["x"].tolist() == [3, 4, 5] and older.y.tolist() == [1, 0, 1]
    assert older.keys["query"].tolist() == ["1|u1", "1|u2", "1|u2"]
    with pytest.raises(ValueError, match=r"splits list\(s\) \['0\|u1'\]"):
        examples.where(np.array([True, False, True, True, True]))


def test_early_stopping_on_a_plain_dmatrix_picks_the_same_round_and_scores() -> None:
    import xgboost as xgb

    from training.ranker import (
        Examples,
        RankerConfig,
        _qid,
        encode,
        train_ranker,
        xgboost_params,
    )

    rng = np.random.default_rng(5)

    def lists(n: int, per: int = 30) -> Examples:
        X = pd.DataFrame({f"f{k}": rng.normal(size=n * per) for k in range(6)})
        X.loc[rng.random(len(X)) < 0.2, "f1"] = np.nan
        X["band"] = rng.choice(["low", "mid", "high"], len(X))
        y = (rng.random(len(X)) < 0.05 + 0.3 * (X["f0"] > 1)).astype(np.float64).to_numpy()
        query = np.repeat([f"q{k}" for k in range(n)], per)
        keys = pd.DataFrame({"query": query, "user_id": query, "item_id": "i", "retrieval_rank": 1})
        return Examples(X, y, np.full(n, per), keys, ["band"])

    train, stop = lists(120), lists(40)
    cfg = RankerConfig(n_estimators=300, early_stopping_rounds=10, max_depth=2, subsample=0.8)
    result = train_ranker(cfg, train, stop)
    categories = result.categories
    plain = xgb.XGBRanker(**xgboost_params(cfg))
    names = result.feature_names
    plain.fit(
        encode(train.X, names, categories),
        train.y,
        qid=_qid(train.groups),
        eval_set=[(encode(stop.X, names, categories), stop.y)],
        eval_qid=[_qid(stop.groups)],
        verbose=False,
    )
    assert result.metrics["best_iteration"] == plain.best_iteration
    assert 0 < plain.best_iteration < cfg.n_estimators - cfg.early_stopping_rounds
    np.testing.assert_allclose(
        result.predict(stop.X), plain.predict(encode(stop.X, names, categories)), rtol=1e-6
    )
