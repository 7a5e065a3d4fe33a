"""Towers with inputs that carry nothing: dropped, and a tower left with one input saves,
reloads (SavedModel signature and Keras) and embeds the same."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tailwise.features.tower_inputs import TowerInput, encode_frame
from training.retrieval import RetrievalConfig, RetrievalResult, load, save
from training.towers import build_towers, dense_names, fit_preprocessing, informative

pytestmark = pytest.mark.slow  # builds TensorFlow models

EXAMPLES = pd.DataFrame(
    {
        "user_id": ["u1", "u2", "u3", "u1"],
        "item_id": ["i1", "i2", "i1", "i3"],
        "gender": [None, None, None, None],  # absent demographic
        "age": [np.nan] * 4,
        "country": ["DE"] * 4,  # one value
        "recent_items": [[], [], None, []],
    }
)
ITEMS = pd.DataFrame({"item_id": ["i1", "i2", "i3"]})  # a catalogue of ids only


def test_inputs_without_information_are_dropped() -> None:
    specs = [
        TowerInput("user_id", "id"),
        TowerInput("gender", "categorical"),
        TowerInput("age", "numeric"),
        TowerInput("country", "categorical"),
        TowerInput("recent_items", "string_list", 3),
    ]
    kept, dropped = informative(EXAMPLES, specs)
    assert [s.name for s in kept] == ["user_id"]
    assert dropped == ["gender", "age", "country", "recent_items"]
    prep = fit_preprocessing(EXAMPLES, ITEMS, kept)
    assert [s.name for s in prep.candidate_inputs()] == ["item_id"]
    assert prep.dropped == ["category", "category_l1", "brand", "price"]


def test_one_input_towers_save_and_reload(tmp_path: Path) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    specs = [TowerInput("user_id", "id")]
    prep = fit_preprocessing(EXAMPLES, ITEMS, specs)
    query, candidate = build_towers(specs, prep, embedding_dim=4, hidden_layers=(8,))
    assert not any("concat" in layer.name for layer in query.layers)
    assert not any("concat" in layer.name for layer in candidate.layers)
    vectors = np.asarray(candidate(encode_frame(ITEMS, prep.candidate_inputs())))
    result = RetrievalResult(
        config=RetrievalConfig(embedding_dim=4, hidden_layers=(8,)),
        inputs=specs,
        item_ids=ITEMS["item_id"].to_numpy(object),
        item_vectors=vectors,
        embed=lambda arrays: np.asarray(query(arrays, training=False)),
        query_model=query,
        info={"dropped_features": {"query": ["gender"], "candidate": prep.dropped}},
    )
    folder = save(result, tmp_path / "retrieval")
    users = pd.DataFrame({"user_id": ["u1", "u2", "nobody"]})
    expected = result.query_embeddings(users)
    np.testing.assert_allclose(load(folder).query_embeddings(users), expected, atol=1e-6)
    keras = tf.keras.models.load_model(folder / "query_model")
    np.testing.assert_allclose(np.asarray(keras(encode_frame(users, specs))), expected, atol=1e-6)


def test_hidden_layers_build_in_order_and_old_configs_read_as_one_layer() -> None:
    specs = [TowerInput("user_id", "id")]
    prep = fit_preprocessing(EXAMPLES, ITEMS, specs)
    query, _ = build_towers(specs, prep, embedding_dim=4, hidden_layers=(8, 6), activation="tanh")
    layers = [query.get_layer(name) for name in dense_names("query", (8, 6))]
    assert [layer.units for layer in layers] == [8, 6, 4]
    assert [layer.get_config()["activation"] for layer in layers] == ["tanh", "tanh", "linear"]
    old = RetrievalConfig(**{"embedding_dim": 4, "hidden_units": 12})  # a saved manifest's
    assert old.hidden_layers == (12,)
