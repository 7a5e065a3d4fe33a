"""The request path computes exactly what training computed: same rows in, same values out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from serving.bundle import ColdStart, ModelBundle
from serving.ranking import ItemBlock, encode_column, ranking_matrix
from serving.retrieval import Candidates
from tailwise.features.cross import (
    CROSS_FEATURES,
    CrossItems,
    cross_features,
    user_cross_features,
)
from tailwise.features.online import ItemTable
from training.ranker import Examples, RankerConfig, encode, train_ranker

CATEGORIES = ["Home/Kitchen", "Home/Garden", "Sports/Run", "Fashion/Shoes", None]


def _users(rng: np.random.Generator) -> list[dict]:
    """Users with every kind of gap: missing lists, empty lists, duplicates, bad weights."""
    out = []
    for i in range(40):
        tops = rng.choice(["Home/Kitchen", "Sports/Run", "Fashion/Shoes"], size=i % 4).tolist()
        shares = [round(float(s), 3) for s in rng.random(len(tops))]
        user = {
            "top_categories": None if i % 7 == 0 else tops + (tops[:1] if i % 5 == 0 else []),
            "top_category_shares": None if i % 11 == 0 else shares + ([0.1] if i % 5 == 0 else []),
            "top_brands": None if i % 6 == 0 else ["b1", "b3"][: i % 3],
            "recent_items": [] if i % 3 == 0 else [f"i{j}" for j in range(i % 5)],
            "rt_last_items": None if i % 2 else ["i1", "i4"],
            "rt_last_category": None if i % 4 == 0 else "Sports/Run",
            "avg_price_30d": None if i % 9 == 0 else float(rng.choice([0.0, 25.0, 80.0])),
            "ctx_device_share": None if i % 8 == 0 else float(rng.random()),
            "ctx_daypart_share": float(rng.random()),
        }
        if i % 13 == 0:  # weights list of another length than the categories
            user["top_category_shares"] = [0.5]
        out.append(user)
    return out


def _items(rng: np.random.Generator, n: int = 12) -> dict[str, np.ndarray]:
    category = np.array([CATEGORIES[i % len(CATEGORIES)] for i in range(n)], dtype=object)
    return {
        "item_id": np.array([f"i{i}" for i in range(n)], dtype=object),
        "category": category,
        "category_l1": np.array([c.split("/")[0] if c else None for c in category], dtype=object),
        "brand": np.array([["b1", "b2", None][i % 3] for i in range(n)], dtype=object),
        "price": np.array([None if i % 5 == 0 else float(10 * i) for i in range(n)], dtype=object),
        "item_popularity_rank_7d": np.array([None if i == 3 else i + 1 for i in range(n)], object),
        "item_conversion_7d": rng.random(n),
        "item_age_days": np.array([None if i == 2 else float(i * 2 - 3) for i in range(n)], object),
    }


def _untidy(items: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same items with NaN for a missing category and numbers for brands: values the
    catalogue does not hold but the definition must still read like the frame does."""
    out = dict(items)
    out["category"] = np.array([np.nan if c is None else c for c in items["category"]], object)
    out["brand"] = np.array([7 if b == "b1" else b for b in items["brand"]], dtype=object)
    return out


@pytest.mark.parametrize("tidy", [True, False])
def test_cross_features_for_one_user_equal_the_frame_definition(tidy: bool) -> None:
    rng = np.random.default_rng(0)
    items = _items(rng) if tidy else _untidy(_items(rng))
    n = len(items["item_id"])
    users = _users(rng)
    if not tidy:
        users = [{**u, "top_brands": [7, "b3"]} for u in users]
    for user in users:
        frame = pd.DataFrame({k: list(v) for k, v in items.items()})
        for name, value in user.items():
            frame[name] = pd.Series([value] * n, dtype=object)
        expected = cross_features(frame)
        got = user_cross_features(user, CrossItems.encode(items, n))
        for name in CROSS_FEATURES:
            np.testing.assert_allclose(got[name], expected[name].to_numpy(), err_msg=name)


def test_ranking_matrix_scores_equal_training_encode_and_predict() -> None:
    rng = np.random.default_rng(1)
    names = [
        "retrieval_score",
        "retrieval_rank",
        *CROSS_FEATURES,
        "age",
        "gender",
        "category_l1",
        "price",
    ]
    n_train = 400
    X = pd.DataFrame(
        {
            **{c: rng.random(n_train) for c in names if c not in ("gender", "category_l1")},
            "gender": rng.choice(["female", "male", "other"], n_train),
            "category_l1": rng.choice(["Home", "Sports", "Fashion"], n_train),
        }
    )[names]
    groups = np.full(n_train // 20, 20)
    y = (rng.random(n_train) < 0.2).astype(float)
    keys = pd.DataFrame({"user_id": np.repeat(np.arange(len(groups)), 20).astype(str)})
    result = train_ranker(
        RankerConfig(n_estimators=30, min_child_weight=1, validation_share=0),
        Examples(X, y, groups, keys, ["gender", "category_l1"]),
    )
    booster = result.model.get_booster()
    booster.set_param({"nthread": 1})
    bundle = _bundle(ranker=booster, features=result.feature_names, categories=result.categories)

    items = _items(rng)
    catalogue = pd.DataFrame({k: list(v) for k, v in items.items() if k != "item_age_days"})
    table = ItemTable(catalogue)
    candidate_ids = np.array(["i3", "i0", "i7", "unknown", "i11"], dtype=object)
    # The model's items: the candidates (one the feature store does not know) and one more.
    bundle.item_ids = np.array([*candidate_ids, "i5"], dtype=object)
    candidates = Candidates(bundle.item_ids, np.array([0.9, 0.8, 0.5, 0.4, 0.1]), np.arange(5))
    user = {**_users(rng)[5], "age": 44.0, "gender": "male"}
    looked_up = table.lookup(list(candidate_ids))
    looked_up["item_age_days"] = np.array([1.0, 30.0, None, None, 5.0], dtype=object)
    ages = {"i3": 1.0, "i0": 30.0, "i11": 5.0}  # over the item table, as the reader has them
    age_table = np.array([ages.get(i, np.nan) for i in table.columns["item_id"]])
    block = ItemBlock.build(bundle, table, {"item_age_days"})
    got = ranking_matrix(
        bundle, block, user, block.on_demand({"item_age_days": age_table}), candidates
    )

    frame = pd.DataFrame({k: list(v) for k, v in looked_up.items()})
    frame["item_id"] = candidate_ids
    for name, value in user.items():
        frame[name] = pd.Series([value] * len(frame), dtype=object)
    frame["retrieval_score"] = candidates.scores
    frame["retrieval_rank"] = np.arange(1, len(frame) + 1, dtype=float)
    frame = pd.concat(
        [frame.drop(columns=[c for c in CROSS_FEATURES if c in frame]), cross_features(frame)],
        axis=1,
    )
    expected = encode(frame, result.feature_names, result.categories)
    np.testing.assert_allclose(got, _codes(expected), rtol=1e-6)
    np.testing.assert_allclose(bundle.rank(got), result.predict(frame), rtol=1e-5)


def test_unseen_category_and_missing_number_become_missing() -> None:
    codes = encode_column(np.array(["b", "zzz", None], dtype=object), ["a", "b"])
    np.testing.assert_array_equal(codes[:1], [1.0])
    assert np.isnan(codes[1:]).all()
    numbers = encode_column(np.array([1, None, "x", True], dtype=object), None)
    assert numbers[0] == 1.0 and np.isnan(numbers[1]) and np.isnan(numbers[2]) and numbers[3] == 1.0


def _codes(frame: pd.DataFrame) -> np.ndarray:
    out = np.empty(frame.shape, dtype=np.float64)
    for j, name in enumerate(frame.columns):
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.codes.to_numpy().astype(float)
            out[:, j] = np.where(codes < 0, np.nan, codes)
        else:
            out[:, j] = column.to_numpy(np.float64)
    return out


def _bundle(
    ranker: xgb.Booster | None = None,
    features: list[str] | None = None,
    categories: dict[str, list[str]] | None = None,
) -> ModelBundle:
    return ModelBundle(
        version="test",
        folder=None,  # type: ignore[arg-type]
        manifest={},
        inputs=[],
        item_ids=np.array([], dtype=object),
        item_vectors=np.zeros((0, 2), np.float32),
        ranker=ranker,
        ranker_features=features or [],
        categories=categories or {},
        cold_start=ColdStart(),
    )


@pytest.mark.parametrize("k", [1, 3])
def test_cold_start_blends_context_lists(k: int) -> None:
    lists = ColdStart(
        {
            ("all", ""): (np.array(["a", "b", "c"], object), np.array([0.5, 0.3, 0.2])),
            ("device", "mobile"): (np.array(["c"], object), np.array([0.6])),
            ("country", "DE"): (np.array(["b"], object), np.array([0.1])),
        }
    )
    ranked = lists.scores("Mobile", "de")
    assert list(ranked.index[:k]) == ["c", "a", "b"][:k]
    assert list(lists.scores(None, None).index) == ["a", "b", "c"]
