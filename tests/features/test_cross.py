"""The cross features from a catalogue encoded once equal training's definition on the rows.

Serving encodes the item side of the catalogue when the item table loads
(`CrossItems.encode`) and per request takes the candidates' rows and encodes only the
user's texts; training runs `cross_features` over a frame that holds the same items and
the user's values on every row. Drawn catalogues and users with every kind of gap
(missing and empty values, unknown categories, empty strings, numbers where text is
expected, duplicates, bad weights) must give the same values, NaN for NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tailwise.features.cross import (
    CROSS_FEATURES,
    CROSS_USER_INPUTS,
    CrossItems,
    cross_features,
    user_cross_features,
)

pytestmark = pytest.mark.unit

CATEGORIES = ["Home/Kitchen", "Home/Garden", "Sports/Run", "Fashion", "", "None"]
TEXT = st.sampled_from([*CATEGORIES, None, np.nan, 7, "Toys/Unknown", "b1", "b2"])
NUMBER = st.one_of(
    st.none(),
    st.just(np.nan),
    st.floats(-5, 500, allow_nan=False),
    st.integers(-3, 40),
    st.sampled_from(["12.5", "n/a", ""]),
)
ITEM_IDS = [f"i{k}" for k in range(12)]


@st.composite
def catalogues(draw: st.DrawFn) -> dict[str, np.ndarray]:
    n = draw(st.integers(0, 12))

    def column(values: st.SearchStrategy[Any]) -> np.ndarray:
        out = np.empty(n, dtype=object)
        out[:] = [draw(values) for _ in range(n)]
        return out

    ids = np.array(ITEM_IDS[:n], dtype=object)
    if n and draw(st.booleans()):
        ids[draw(st.integers(0, n - 1))] = None  # an item the feature store does not know
    return {
        "item_id": ids,
        "category": column(TEXT),
        "category_l1": column(TEXT),
        "brand": column(TEXT),
        "price": column(NUMBER),
        "item_popularity_rank_7d": column(NUMBER),
        "item_conversion_7d": column(NUMBER),
        "item_age_days": column(NUMBER),
    }


def lists(elements: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.lists(elements, max_size=5), st.just(np.nan))


@st.composite
def users(draw: st.DrawFn) -> dict[str, Any]:
    texts = st.sampled_from([*CATEGORIES, None, "Toys/Unknown", "Home", "b1", "b3", 7])
    tops = draw(lists(texts))
    shares = draw(lists(st.one_of(st.floats(0, 1), st.none(), st.just("x"))))
    if isinstance(tops, list) and draw(st.booleans()):
        shares = [round(0.1 * k, 1) for k in range(len(tops))]  # usable weights, often
    user = {
        "top_categories": tops,
        "top_category_shares": shares,
        "top_brands": draw(lists(texts)),
        "recent_items": draw(lists(st.sampled_from([*ITEM_IDS, "gone", "", None]))),
        "rt_last_items": draw(lists(st.sampled_from([*ITEM_IDS, "gone"]))),
        "rt_last_category": draw(TEXT),
        "avg_price_30d": draw(NUMBER),
        "ctx_device_share": draw(st.one_of(st.none(), st.floats(0, 1))),
        "ctx_daypart_share": draw(st.one_of(st.none(), st.floats(0, 1))),
    }
    for name in draw(st.lists(st.sampled_from(CROSS_USER_INPUTS), max_size=2)):
        user.pop(name, None)  # an input the user's views do not have at all
    return user


def training_rows(items: dict[str, np.ndarray], rows: np.ndarray, user: dict) -> pd.DataFrame:
    """What training's point-in-time frame holds for these pairs: each row its item's values
    and the user's."""
    frame = pd.DataFrame({k: pd.Series(v[rows], dtype=object) for k, v in items.items()})
    for name, value in user.items():
        frame[name] = pd.Series([value] * len(rows), dtype=object)
    return frame


@seed(18)
@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(items=catalogues(), user=users(), data=st.data())
def test_a_catalogue_encoded_once_gives_training_values(
    items: dict[str, np.ndarray], user: dict[str, Any], data: st.DataObject
) -> None:
    n = len(items["item_id"])
    candidates = st.lists(st.integers(0, n - 1), max_size=8) if n else st.just([])
    rows = np.array(data.draw(candidates), dtype=np.intp)
    age = np.empty(len(rows), dtype=object)  # per request (on-demand), not in the catalogue
    age[:] = data.draw(st.lists(NUMBER, min_size=len(rows), max_size=len(rows)))
    catalogue = CrossItems.encode({k: v for k, v in items.items() if k != "item_age_days"}, n)
    got = user_cross_features(user, catalogue.take(rows, {"item_age_days": age}))
    frame = training_rows(items, rows, user)
    frame["item_age_days"] = pd.Series(list(age), dtype=object)
    want = cross_features(frame)
    for name in CROSS_FEATURES:
        np.testing.assert_array_equal(got[name], want[name].to_numpy(), err_msg=name)


def test_known_values_from_the_encoded_catalogue() -> None:
    """Hand-checked values: a user's texts meet the catalogue's codes, unknown ones match
    nothing, an empty string is a text, and missing values give NaN."""
    items = {
        "item_id": np.array(["a", "b", "c", "d"], dtype=object),
        "category": np.array(["Home/Kitchen", "", None, "Sports/Run"], dtype=object),
        "category_l1": np.array(["Home", "", None, "Sports"], dtype=object),
        "brand": np.array(["b1", "b2", np.nan, ""], dtype=object),
        "price": np.array([10.0, None, 30.0, 5.0], dtype=object),
    }
    catalogue = CrossItems.encode(items, 4)
    user = {
        "top_categories": ["Garden/Unknown", "Home/Kitchen", ""],
        "top_category_shares": [0.5, 0.3, 0.2],
        "top_brands": ["", "zzz"],
        "recent_items": ["c", "zzz"],
        "rt_last_category": "",
        "avg_price_30d": 20.0,
    }
    got = user_cross_features(user, catalogue.take(np.array([0, 1, 2, 3, 0])))
    np.testing.assert_array_equal(got["x_cat_share"], [0.3, 0.2, np.nan, 0.0, 0.3])
    np.testing.assert_array_equal(got["x_cat_rank"], [2.0, 3.0, np.nan, np.nan, 2.0])
    np.testing.assert_array_equal(got["x_cat_l1_share"], [0.3, 0.2, np.nan, 0.0, 0.3])
    np.testing.assert_array_equal(got["x_brand_match"], [0.0, 0.0, np.nan, 1.0, 0.0])
    np.testing.assert_array_equal(got["x_in_recent_items"], [0.0, 0.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(got["x_same_rt_category"], [0.0, 1.0, np.nan, 0.0, 0.0])
    np.testing.assert_array_equal(got["x_price_ratio"], [0.5, np.nan, 1.5, 0.25, 0.5])
    assert np.isnan(got["x_in_rt_last_items"]).all()  # the user has no session list
    assert np.isnan(got["x_log_item_age_days"]).all()  # no age given


def test_take_refuses_a_number_the_cross_features_do_not_read() -> None:
    catalogue = CrossItems.encode({"item_id": np.array(["a"], dtype=object)}, 1)
    with pytest.raises(ValueError, match="'age'"):
        catalogue.take(np.array([0]), {"age": np.array([1.0])})


@seed(19)
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(items=catalogues(), people=st.lists(users(), min_size=1, max_size=4), data=st.data())
def test_rows_sharing_an_owner_read_its_user_inputs_once(
    items: dict[str, np.ndarray], people: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Training's rows of several users, interleaved: keyed by their owner, the user
    inputs are read once per owner and every value is what each row alone gives."""
    n = len(items["item_id"])
    if not n:
        return
    frames, keys = [], []
    for k, user in enumerate(people):
        rows = np.array(data.draw(st.lists(st.integers(0, n - 1), max_size=6)), dtype=np.intp)
        frames.append(training_rows(items, rows, user))
        keys += [f"user {k}"] * len(rows)
    frame = pd.concat(frames, ignore_index=True)
    order = np.array(data.draw(st.permutations(range(len(frame)))), dtype=np.intp)
    frame, owner = frame.iloc[order].reset_index(drop=True), np.asarray(keys)[order]
    got, want = cross_features(frame, owner), cross_features(frame)
    for name in CROSS_FEATURES:
        np.testing.assert_array_equal(got[name].to_numpy(), want[name].to_numpy(), err_msg=name)


def test_owner_keys_must_match_the_rows() -> None:
    frame = pd.DataFrame({"item_id": ["a", "b"]})
    with pytest.raises(ValueError, match="owner keys"):
        cross_features(frame, np.array(["u"]))
