"""The compiled forest walks XGBoost's trees to XGBoost's answers, and the bundle holds it
to them: scores, approximate contributions, the best iteration, refusal on a mismatch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import xgboost as xgb

from serving.bundle import BundleError, ColdStart, ModelBundle, check_forest
from serving.forest import LEAF_BITS, Forest, ForestError, probe_matrix

N_FEATURES = 6
CATEGORICAL = [4, 5]


def _data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    X[:, 4] = rng.integers(0, 12, n)  # a categorical feature with many categories
    X[:, 5] = rng.integers(0, 3, n)
    X[rng.random((n, N_FEATURES)) < 0.1] = np.nan  # missing everywhere, categories too
    signal = X[:, 0] - np.nan_to_num(X[:, 1]) + np.isin(X[:, 4], [2, 7, 9]) * 1.5
    y = (np.nan_to_num(signal) + rng.normal(0, 0.5, n) > 0.8).astype(float)
    qid = np.repeat(np.arange(n // 20), 20)
    return X, y, qid


def _ranker(early_stopping: bool, objective: str = "rank:ndcg") -> xgb.XGBRanker:
    rng = np.random.default_rng(3)
    X, y, qid = _data(rng, 800)
    types = ["c" if j in CATEGORICAL else "q" for j in range(N_FEATURES)]
    model = xgb.XGBRanker(
        objective=objective,
        n_estimators=60,
        max_depth=4,
        learning_rate=0.3,
        tree_method="hist",
        enable_categorical=True,
        feature_types=types,
        max_cat_to_onehot=1,  # partition splits: sets of categories per node
        early_stopping_rounds=5 if early_stopping else None,
        n_jobs=1,
        random_state=0,
    )
    Xv, yv, qv = _data(np.random.default_rng(4), 400)
    model.fit(X, y, qid=qid, eval_set=[(Xv, yv)], eval_qid=[qv], verbose=False)
    return model


@pytest.fixture(scope="module")
def stopped_early() -> xgb.XGBRanker:
    model = _ranker(early_stopping=True)
    assert model.best_iteration + 1 < model.get_booster().num_boosted_rounds()
    return model


def test_scores_equal_the_scikit_learn_predict_up_to_the_best_iteration(
    stopped_early: xgb.XGBRanker,
) -> None:
    booster = stopped_early.get_booster()
    forest = Forest.from_booster(booster)
    assert len(forest.roots) == stopped_early.best_iteration + 1
    X, _, _ = _data(np.random.default_rng(5), 300)
    np.testing.assert_allclose(forest.predict(X), stopped_early.predict(X), atol=1e-5)
    # All trees would give other scores: what serving used to do.
    assert not np.allclose(booster.inplace_predict(X), stopped_early.predict(X), atol=1e-3)


def test_contributions_equal_xgboost_approximate_contributions(
    stopped_early: xgb.XGBRanker,
) -> None:
    booster = stopped_early.get_booster()
    forest = Forest.from_booster(booster)
    X, _, _ = _data(np.random.default_rng(6), 50)
    want = booster.predict(
        xgb.DMatrix(X),
        pred_contribs=True,
        approx_contribs=True,
        iteration_range=(0, stopped_early.best_iteration + 1),
        validate_features=False,
    )
    got = forest.contributions(X)
    assert got.shape == (50, N_FEATURES + 1)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), forest.predict(X), atol=1e-4)


def test_probe_rows_reach_every_kind_of_branch(stopped_early: xgb.XGBRanker) -> None:
    forest = Forest.from_booster(stopped_early.get_booster())
    assert forest.categorical.any(), "the fixture must have categorical splits"
    X = probe_matrix(forest, CATEGORICAL, rows=200)
    assert np.isnan(X).any(axis=0).all()  # missing in every feature
    assert (X[:, CATEGORICAL] < 0).any() and (X[:, CATEGORICAL] % 1 != 0).any()
    reference = stopped_early.get_booster().inplace_predict(
        X, iteration_range=(0, stopped_early.best_iteration + 1)
    )
    np.testing.assert_allclose(forest.predict(X), reference, atol=1e-5)


def _walked(forest: Forest, X: np.ndarray) -> np.ndarray:
    scores = np.empty(len(X), dtype=np.float32)
    forest.walk(X, scores)
    return scores.astype(np.float64)


@pytest.mark.parametrize("steady", [(), (0,), (1, 4), (0, 2, 3, 5), tuple(range(N_FEATURES))])
def test_bit_masks_score_as_the_walk_with_columns_that_never_change(
    stopped_early: xgb.XGBRanker, steady: tuple[int, ...]
) -> None:
    """A request's candidates share the user's columns: the bit masks decide those splits
    once, for every row; the scores must not move by a bit."""
    booster = stopped_early.get_booster()
    forest = Forest.from_booster(booster)
    assert forest.quick is not None
    X, _, _ = _data(np.random.default_rng(11), 200)
    X[:, list(steady)] = X[:1, list(steady)]
    X[:, 2] = np.nan if 2 in steady else X[:, 2]  # a column missing in every row
    got = forest.predict(X)
    np.testing.assert_array_equal(got, _walked(forest, X))
    reference = booster.inplace_predict(X, iteration_range=(0, stopped_early.best_iteration + 1))
    np.testing.assert_allclose(got, reference, atol=1e-5)
    np.testing.assert_array_equal(forest.predict(X[:1]), _walked(forest, X[:1]))  # one row
    # The same rows given split: the steady columns once, the others as rows.
    slot = np.full(N_FEATURES, -1, dtype=np.int64)
    moving = [j for j in range(N_FEATURES) if j not in steady]
    slot[moving] = np.arange(len(moving))
    fixed = np.where(slot < 0, X[0], np.float32(-7.0)).astype(np.float32)  # -7: never read
    varying = np.ascontiguousarray(X[:, moving].T)
    np.testing.assert_array_equal(forest.predict_split(varying, slot, fixed), got)
    slow = dataclasses.replace(forest, quick=None)  # the walk's path of predict_split
    np.testing.assert_array_equal(slow.predict_split(varying, slot, fixed), got)


def test_trees_of_more_leaves_than_bits_are_walked() -> None:
    """A tree of LEAF_BITS + 1 leaves (each split sends values below i left, to leaf i)."""
    splits = LEAF_BITS
    n = 2 * splits + 1
    # Node 2i splits feature 0 at i + 1, node 2i + 1 is a leaf worth i, the last node a leaf.
    lefts, rights, conditions = [-1] * n, [-1] * n, [0.0] * n
    node = 0
    for i in range(splits):
        lefts[node], rights[node], conditions[node] = node + 1, node + 2, float(i + 1)
        conditions[node + 1] = float(i)
        node += 2
    conditions[node] = float(splits)
    tree = {
        "tree_param": {"size_leaf_vector": "1"},
        "left_children": lefts,
        "right_children": rights,
        "split_indices": [0] * n,
        "split_conditions": conditions,
        "default_left": [1] * n,
        "sum_hessian": [1.0] * n,
    }
    forest = Forest.from_trees([tree], 0.0, 1)
    assert forest.quick is None
    X = np.array([[0.5], [3.5], [63.9], [64.0], [1e9], [np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(forest.predict(X), [0.0, 3.0, 63.0, 64.0, 64.0, 0.0])


def test_without_early_stopping_every_tree_counts() -> None:
    model = _ranker(early_stopping=False)
    booster = model.get_booster()
    booster.set_attr(best_iteration=None)
    forest = Forest.from_booster(booster)
    assert len(forest.roots) == booster.num_boosted_rounds()
    X, _, _ = _data(np.random.default_rng(7), 100)
    np.testing.assert_allclose(forest.predict(X), booster.inplace_predict(X), atol=1e-5)


def test_a_margin_base_score_is_carried() -> None:
    model = _ranker(early_stopping=False, objective="rank:pairwise")
    booster = model.get_booster()
    booster.set_attr(best_iteration=None)
    booster.set_param({"base_score": 0.75})
    X, _, _ = _data(np.random.default_rng(8), 40)
    np.testing.assert_allclose(
        Forest.from_booster(booster).predict(X), booster.inplace_predict(X), atol=1e-5
    )


def test_boosters_of_other_shapes_are_refused_with_a_reason() -> None:
    rng = np.random.default_rng(9)
    X, y, _ = _data(rng, 200)
    linear = xgb.train({"booster": "gblinear"}, xgb.DMatrix(np.nan_to_num(X), y), 3)
    with pytest.raises(ForestError, match="gblinear"):
        Forest.from_booster(linear)
    forest = Forest.from_booster(xgb.train({"max_depth": 2}, xgb.DMatrix(X, y), 3))
    with pytest.raises(ForestError, match="6 features expected"):
        forest.predict(np.zeros((2, 3), np.float32))


def _bundle(booster: xgb.Booster, forest: Forest) -> ModelBundle:
    return ModelBundle(
        version="test",
        folder=None,  # type: ignore[arg-type]
        manifest={},
        inputs=[],
        item_ids=np.array([], dtype=object),
        item_vectors=np.zeros((0, 2), np.float32),
        ranker=booster,
        ranker_features=[f"f{j}" for j in range(N_FEATURES)],
        categories={},
        cold_start=ColdStart(),
        forest=forest,
    )


def test_the_bundle_serves_the_forest_and_refuses_one_that_disagrees(
    stopped_early: xgb.XGBRanker,
) -> None:
    booster = stopped_early.get_booster()
    forest = Forest.from_booster(booster)
    bundle = _bundle(booster, forest)
    check_forest(bundle)  # agrees: no error
    X, _, _ = _data(np.random.default_rng(10), 30)
    np.testing.assert_allclose(bundle.rank(X), bundle.reference_rank(X), atol=1e-5)
    np.testing.assert_allclose(
        bundle.contributions(X), bundle.reference_contributions(X), atol=1e-5
    )
    wrong = dataclasses.replace(forest, threshold=forest.threshold + np.float32(0.5))
    with pytest.raises(BundleError, match="compiled trees differ from XGBoost"):
        check_forest(_bundle(booster, wrong))
