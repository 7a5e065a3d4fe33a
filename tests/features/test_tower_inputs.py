"""The towers' raw-input encoding: a frame (training's examples) and feature rows (a
request) give the same arrays, and tokens get the rows of Keras' StringLookup layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailwise.features.tower_inputs import (
    MASK,
    OOV,
    TowerInput,
    Vocabulary,
    encode_frame,
    encode_rows,
    epoch_seconds,
    items_before,
    latest_items,
)

SPECS = [
    TowerInput("user_id", "id"),
    TowerInput("age", "numeric"),
    TowerInput("age_imputed", "numeric"),
    TowerInput("gender", "categorical"),
    TowerInput("top_categories", "string_list", 3),
    TowerInput("recent_items", "string_list", 4),
]
ROWS = [
    {
        "user_id": "u1",
        "age": 31,
        "age_imputed": True,
        "gender": "female",
        "top_categories": ["a", "b", "c", "d"],
        "recent_items": ["i1"],
    },
    {
        "user_id": "u2",
        "age": None,
        "age_imputed": None,
        "gender": None,
        "top_categories": None,
        "recent_items": [],
    },
    {  # values of other types than the feature store's: read as the definition says
        "user_id": 7,
        "age": "x",
        "age_imputed": float("nan"),
        "gender": float("nan"),
        "top_categories": ["a", None, "b"],
        "recent_items": np.array(["i1", "i2", "i3", "i4", "i5"], dtype=object),
    },
]


@pytest.mark.parametrize("row", range(len(ROWS)))
def test_a_frame_and_feature_rows_encode_the_same(row: int) -> None:
    from_frame = encode_frame(pd.DataFrame([ROWS[row]]), SPECS)
    from_rows = encode_rows(SPECS, [ROWS[row]])
    for spec in SPECS:
        np.testing.assert_array_equal(from_rows[spec.name], from_frame[spec.name], spec.name)


def test_the_encoding_of_missing_and_long_values() -> None:
    arrays = encode_rows(SPECS, ROWS)
    np.testing.assert_array_equal(arrays["age"], np.array([31, 0, 0], np.float32))
    np.testing.assert_array_equal(arrays["age_imputed"], np.array([1, 0, 0], np.float32))
    assert list(arrays["user_id"]) == ["u1", "u2", "7"]
    assert list(arrays["gender"]) == ["female", "", ""]
    assert arrays["top_categories"].tolist() == [["a", "b", "c"], ["", "", ""], ["a", "b", ""]]
    assert arrays["recent_items"].tolist()[2] == ["i1", "i2", "i3", "i4"]
    missing = encode_frame(pd.DataFrame({"other": [1, 2]}), SPECS)  # no such columns
    assert missing["age"].tolist() == [0.0, 0.0] and missing["user_id"].tolist() == ["", ""]


def test_vocabulary_rows_put_the_mask_and_oov_first() -> None:
    vocabulary = Vocabulary.learn(["b", "a", "", "b"])
    assert vocabulary.tokens == ("a", "b") and vocabulary.rows == 4
    codes = vocabulary.codes(np.array([["a", ""], ["zzz", "b"]], dtype=object))
    np.testing.assert_array_equal(codes, [[2, MASK], [OOV, 3]])
    with pytest.raises(ValueError, match="distinct, non-empty"):
        Vocabulary(["a", "a"])


def test_a_bad_input_description_names_itself() -> None:
    with pytest.raises(ValueError, match=r"'age'.*kind 'number'"):
        TowerInput("age", "number")
    with pytest.raises(ValueError, match="length"):
        TowerInput.from_dict({"name": "recent_items", "kind": "string_list"})
    assert TowerInput.from_dict(SPECS[4].to_dict()) == SPECS[4]


def _log(seed: int) -> pd.DataFrame:
    """Random events of 4 users over 6 items, many sharing a second (ties)."""
    rng = np.random.default_rng(seed)
    n = 60
    seconds = rng.integers(0, 30, n).astype("int64") * 1_000_000_000
    return pd.DataFrame(
        {
            "user_id": rng.choice(["u1", "u2", "u3", "u4"], n),
            "item_id": rng.choice([f"i{k}" for k in range(6)], n),
            "timestamp": pd.to_datetime(seconds, utc=True),
        }
    )


@pytest.mark.parametrize("seed", range(5))
def test_items_before_is_latest_items_over_the_earlier_events(seed: int) -> None:
    """Training's point-in-time history equals serving's definition applied to what the
    user's history held at that moment (per item, the newest event's time)."""
    events = _log(seed)
    at = events.sample(20, random_state=seed)[["user_id", "timestamp"]]
    at = pd.concat([at, pd.DataFrame({"user_id": ["nobody"], "timestamp": at["timestamp"][:1]})])
    got = items_before(events, at, 4)
    for (user, when), items in zip(at.itertuples(index=False), got, strict=True):
        earlier = events[(events["user_id"] == user) & (events["timestamp"] < when)]
        newest = earlier.groupby("item_id")["timestamp"].max()
        want = latest_items(newest.index, epoch_seconds(newest.to_numpy()), 4)
        assert items == want
        assert len(items) == len(set(items)) <= 4


def test_items_before_never_sees_the_moment_itself() -> None:
    stamp = pd.Timestamp("2024-05-01T12:00:00Z")
    events = pd.DataFrame(
        {
            "user_id": ["u", "u", "u"],
            "item_id": ["a", "b", "c"],
            "timestamp": [stamp - pd.Timedelta(minutes=1), stamp, stamp + pd.Timedelta(minutes=1)],
        }
    )
    at = pd.DataFrame({"user_id": ["u", "u"], "timestamp": [stamp, stamp + pd.Timedelta(days=1)]})
    assert items_before(events, at, 5) == [["a"], ["c", "b", "a"]]
    assert items_before(events, at, 0) == [[], []]
    with pytest.raises(ValueError, match="item_id"):
        items_before(events.drop(columns="item_id"), at, 2)


def test_latest_items_orders_newest_first_and_skips_unknown_times() -> None:
    items = ["b", "a", "c", "d"]
    assert latest_items(items, [5.0, 5.0, 9.0, np.nan], 3) == ["c", "b", "a"]
    assert latest_items([], [], 3) == []


def test_an_item_history_encodes_as_a_list() -> None:
    spec = TowerInput("history_items", "item_history", 3)
    assert spec.is_list and spec.shape == [None, 3]
    got = encode_rows([spec], [{"history_items": ["a", "b", "c", "d"]}, {}])
    assert got["history_items"].tolist() == [["a", "b", "c"], ["", "", ""]]
    with pytest.raises(ValueError, match="length"):
        TowerInput("history_items", "item_history")
