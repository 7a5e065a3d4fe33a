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
