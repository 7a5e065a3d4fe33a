"""The request path scores and explains with XGBoost itself, the way training fed it:
categories as the codes of the training categories, the trees up to the best iteration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from serving.bundle import ColdStart, ModelBundle
from serving.ranking import encode_column
from training.ranker import Examples, RankerConfig, RankerResult, encode, train_ranker

NUMERIC = ["f0", "f1", "f2"]
CATEGORICAL = ["shade", "size"]
SHADES = [f"s{k}" for k in range(12)]


def _examples(seed: int, n: int) -> Examples:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({name: rng.normal(size=n) for name in NUMERIC})
    X["shade"] = rng.choice(SHADES, n).astype(object)
    X["size"] = rng.choice(["S", "M", "L"], n).astype(object)
    for name in X.columns:  # missing everywhere, categories too
        X.loc[rng.random(n) < 0.1, name] = None
    signal = X["f0"].fillna(0) - X["f1"].fillna(0) + X["shade"].isin(["s2", "s7", "s9"]) * 1.5
    y = (signal + rng.normal(0, 0.5, n) > 0.8).to_numpy(np.float64)
    users = np.repeat(np.arange(n // 20), 20).astype(str)
    keys = pd.DataFrame({"query": users, "user_id": users})
    return Examples(X, y, np.full(n // 20, 20), keys, CATEGORICAL)


@pytest.fixture(scope="module")
def trained() -> RankerResult:
    """Training's own ranker (XGBRanker, enable_categorical), stopped early."""
    config = RankerConfig(
        n_estimators=60,
        max_depth=4,
        learning_rate=0.3,
        min_child_weight=1,
        early_stopping_rounds=5,
        n_jobs=1,
    )
    result = train_ranker(config, _examples(3, 800), _examples(4, 400))
    assert result.metrics["best_iteration"] + 1 < result.model.get_booster().num_boosted_rounds()
    return result


def _bundle(result: RankerResult) -> ModelBundle:
    """The ranker as serving loads it: the saved booster, names and categories."""
    booster = xgb.Booster()
    booster.load_model(bytearray(result.model.get_booster().save_raw("json")))
    booster.set_param({"nthread": 1})
    return ModelBundle(
        version="test",
        folder=None,  # type: ignore[arg-type]
        manifest={},
        inputs=[],
        item_ids=np.array([], dtype=object),
        item_vectors=np.zeros((0, 2), np.float32),
        ranker=booster,
        ranker_features=result.feature_names,
        categories=result.categories,
        cold_start=ColdStart(),
    )


def _serving_rows(bundle: ModelBundle, frame: pd.DataFrame) -> np.ndarray:
    """X as the request path builds it: numbers, and categories as codes of the training
    categories (serving.ranking.encode_column), NaN for missing or unseen ones."""
    columns = [
        encode_column(frame[name].to_numpy(object), bundle.categories.get(name))
        for name in bundle.ranker_features
    ]
    return np.column_stack(columns).astype(np.float32)


def _rows(seed: int, n: int) -> pd.DataFrame:
    frame = _examples(seed, n).X
    frame.loc[frame.index[:4], "shade"] = "never-seen"  # unseen in training: missing
    return frame


def test_scores_equal_the_trained_models_predict(trained: RankerResult) -> None:
    bundle = _bundle(trained)
    frame = _rows(5, 300)
    got = bundle.rank(_serving_rows(bundle, frame))
    want = trained.predict(frame)  # pandas categories through the scikit-learn wrapper
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert len(np.unique(np.round(got, 5))) > 50  # the rows really differ
    # Every tree would give other scores: the best iteration is what training evaluated.
    every_tree = bundle.ranker.inplace_predict(_serving_rows(bundle, frame))
    assert not np.allclose(every_tree, want, atol=1e-3)


def test_codes_are_read_as_the_training_categories(trained: RankerResult) -> None:
    """Codes of another category order move the scores: serving must use the saved ones."""
    bundle = _bundle(trained)
    frame = _rows(6, 200)
    shuffled = _bundle(trained)
    shuffled.categories = {**trained.categories, "shade": trained.categories["shade"][::-1]}
    right = bundle.rank(_serving_rows(bundle, frame))
    wrong = shuffled.rank(_serving_rows(shuffled, frame))
    assert not np.allclose(right, wrong, atol=1e-3)
    np.testing.assert_allclose(right, trained.predict(frame), rtol=1e-6, atol=1e-6)


def test_contributions_are_xgboosts_approximate_contributions(trained: RankerResult) -> None:
    bundle = _bundle(trained)
    frame = _rows(7, 40)
    X = _serving_rows(bundle, frame)
    got = bundle.contributions(X)
    assert got.shape == (40, len(bundle.ranker_features) + 1)
    # The same rows as training's pandas categories: the same contributions.
    encoded = encode(frame, trained.feature_names, trained.categories)
    want = trained.model.get_booster().predict(
        xgb.DMatrix(encoded, enable_categorical=True),
        pred_contribs=True,
        approx_contribs=True,
        iteration_range=(0, trained.metrics["best_iteration"] + 1),
    )
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), bundle.rank(X), atol=1e-4)
    assert (np.abs(got[:, :-1]) > 0).any(axis=0).sum() >= 3  # several features explain


def test_without_early_stopping_every_tree_counts(trained: RankerResult) -> None:
    bundle = _bundle(trained)
    bundle.ranker.set_attr(best_iteration=None)
    assert bundle.iterations == (0, 0)
    X = _serving_rows(bundle, _rows(8, 50))
    want = bundle.ranker.predict(xgb.DMatrix(X, nthread=1), validate_features=False)
    np.testing.assert_allclose(bundle.rank(X), want, atol=1e-6)
