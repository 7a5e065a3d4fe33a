"""The two towers of the retriever, each owning its preprocessing (Keras 2 / TFRS).

    raw user values (by feature name) --> query tower --> L2-normalised query vector
      user_id          StringLookup(+OOV) -> Embedding       (unknown users: the OOV row)
      categorical      StringLookup(+OOV) -> Embedding
      numeric          sign*log1p -> Normalization (mean/variance of the training examples)
      string lists     StringLookup(mask '') -> Embedding -> mean over non-empty slots;
                       recent_items reuses the candidate tower's item-id lookup + embedding
      item_history     history_items, the user's last M items before the moment (from the
                       events, not a stored feature): the item-id lookup + embedding too,
                       mean over filled slots
    raw item values --> candidate tower --> L2-normalised item vector
      item_id, category, category_l1, brand  StringLookup(+OOV) -> Embedding
      price            log1p -> Normalization

An input that carries no information in training (all missing, or one value in every row:
a demographic or item attribute the data does not have) is left out of its tower
(`informative`); the retriever's manifest lists it under dropped_features. A tower left
with a single input feeds it to the dense head directly (no Concatenate of one tensor,
which Keras cannot reload).

Vocabularies and normalisation statistics are computed from the training examples in
`fit_preprocessing` and baked into the layers, so the exported query model takes raw ids
and values (`TowerInput` says the name, dtype and shape of each). TensorFlow is imported
inside the functions: TF_USE_LEGACY_KERAS must be set before its first import.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tailwise.features.point_in_time import UserFeature
from tailwise.features.tower_inputs import TowerInput, Vocabulary, encode_frame
from tailwise.quiet import load_tensorflow

USER_ID = "user_id"
ITEM_ID = "item_id"
RECENT_ITEMS = "recent_items"
HISTORY_ITEMS = "history_items"  # the item_history input (tower_inputs.items_before)
ITEM_LISTS = (RECENT_ITEMS, HISTORY_ITEMS)  # lists embedded by the item-id table
CANDIDATE_CATEGORICAL = ("category", "category_l1", "brand")
CANDIDATE_NUMERIC = ("price",)


@dataclass
class Preprocessing:
    """What `fit_preprocessing` learned: vocabularies and numeric mean / variance."""

    vocabularies: dict[str, list[str]] = field(default_factory=dict)
    means: dict[str, float] = field(default_factory=dict)
    variances: dict[str, float] = field(default_factory=dict)
    candidate: list[TowerInput] | None = None  # candidate tower inputs (None: all of them)
    dropped: list[str] = field(default_factory=list)  # candidate inputs left out

    def candidate_inputs(self) -> list[TowerInput]:
        return candidate_specs() if self.candidate is None else self.candidate


def query_specs(
    features: list[UserFeature],
    examples: pd.DataFrame,
    ignored: tuple[str, ...] = (),
    max_list_length: int = 10,
) -> list[TowerInput]:
    """The query tower's inputs: user_id, then the service's features it can use, in order.

    Float lists (top_category_shares) and `ignored` names are left out."""
    specs = [TowerInput(USER_ID, "id")]
    for feature in features:
        if feature.name in ignored or feature.kind == "float_list":
            continue
        if feature.kind == "string_list":
            lengths = examples[feature.name].dropna().map(len)
            length = int(min(max_list_length, max(1, lengths.max() if len(lengths) else 1)))
            specs.append(TowerInput(feature.name, "string_list", length))
        else:
            specs.append(TowerInput(feature.name, feature.kind))
    return specs


def candidate_specs() -> list[TowerInput]:
    """The candidate tower's inputs (clean catalogue columns)."""
    return [
        TowerInput(ITEM_ID, "id"),
        *(TowerInput(c, "categorical") for c in CANDIDATE_CATEGORICAL),
        *(TowerInput(c, "numeric") for c in CANDIDATE_NUMERIC),
    ]


def informative(frame: pd.DataFrame, specs: list[TowerInput]) -> tuple[list[TowerInput], list[str]]:
    """(kept, dropped names): ids are always kept; any other input whose raw values are all
    missing or one value in every row of `frame` is dropped."""
    arrays = encode_frame(frame, specs)
    kept, dropped = [], []
    for spec in specs:
        values = arrays[spec.name]
        if spec.kind != "id" and len(values):
            rows = values.reshape(len(values), -1)
            if (rows == rows[:1]).all():
                dropped.append(spec.name)
                continue
        kept.append(spec)
    return kept, dropped


def fit_preprocessing(
    examples: pd.DataFrame, items: pd.DataFrame, q_specs: list[TowerInput]
) -> Preprocessing:
    """Vocabularies and numeric statistics from the training examples (items: catalogue)."""
    prep = Preprocessing()
    arrays = encode_frame(examples, q_specs)
    for spec in q_specs:
        values = arrays[spec.name]
        if spec.kind == "numeric":
            transformed = _signed_log1p(values.astype(np.float64))
            prep.means[spec.name] = float(transformed.mean())
            prep.variances[spec.name] = float(max(transformed.var(), 1e-6))
        elif spec.name not in ITEM_LISTS:
            prep.vocabularies[spec.name] = _vocabulary(values.ravel())
    # Item ids seen in training examples; catalogue items never interacted with share the
    # OOV row and are told apart by their attributes.
    prep.vocabularies[ITEM_ID] = _vocabulary(examples[ITEM_ID].astype(str).to_numpy())
    prep.candidate, prep.dropped = informative(items, candidate_specs())
    kept = {s.name for s in prep.candidate}
    catalogue = encode_frame(items, candidate_specs())
    for name in CANDIDATE_CATEGORICAL:
        prep.vocabularies[name] = _vocabulary(catalogue[name])
    for name in CANDIDATE_NUMERIC:
        if name not in kept:
            continue
        logged = np.log1p(np.maximum(catalogue[name].astype(np.float64), 0.0))
        prep.means[name] = float(logged.mean())
        prep.variances[name] = float(max(logged.var(), 1e-6))
    return prep


def _vocabulary(values: np.ndarray) -> list[str]:
    return list(Vocabulary.learn(values).tokens)


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def layer_name(input_name: str, role: str, prefix: str = "") -> str:
    """The name `build_towers` gives an input's 'lookup' or 'embedding' layer (`prefix`:
    'item_' in the candidate tower); recent_items and history_items use the item id's."""
    if input_name in ITEM_LISTS:
        return f"{ITEM_ID}_{role}"
    return f"{prefix}{input_name}_{role}"


def normalization_name(tower: str) -> str:
    """The name of a tower's ('query' | 'candidate') numeric Normalization layer."""
    return f"{tower}_numeric_normalization"


def dense_names(tower: str, hidden_layers: Sequence[int]) -> list[str]:
    """The names of a tower's Dense layers in order: the hidden ones, then the output."""
    return [*(f"{tower}_hidden_{n}" for n in range(1, len(hidden_layers) + 1)), f"{tower}_output"]


def build_towers(
    q_specs: list[TowerInput],
    prep: Preprocessing,
    embedding_dim: int,
    hidden_layers: Sequence[int],
    activation: str = "relu",
) -> tuple[Any, Any]:
    """(query_model, candidate_model): Keras functional models over dicts of raw inputs;
    each tower's head is Dense layers of `hidden_layers` units (`activation`), then a
    linear one of `embedding_dim`, L2-normalised. Layers are named by `layer_name`,
    `normalization_name` and `dense_names`."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    tf = load_tensorflow()

    def lookup(name: str, prefix: str = "") -> Any:
        # The layout of tailwise.features.tower_inputs.Vocabulary: '' -> 0, unknown -> 1.
        return tf.keras.layers.StringLookup(
            vocabulary=prep.vocabularies[name],
            mask_token="",
            num_oov_indices=1,
            name=layer_name(name, "lookup", prefix),
        )

    item_lookup = lookup(ITEM_ID)
    item_embedding = tf.keras.layers.Embedding(
        item_lookup.vocabulary_size(), embedding_dim, name=layer_name(ITEM_ID, "embedding")
    )

    def categorical(x: Any, name: str, prefix: str = "") -> Any:
        ids = lookup(name, prefix)
        size = min(16, embedding_dim)
        embedding = tf.keras.layers.Embedding(
            ids.vocabulary_size(), size, name=layer_name(name, "embedding", prefix)
        )
        return embedding(ids(x))

    def bag(x: Any, name: str) -> Any:
        if name in ITEM_LISTS:
            ids, vectors = item_lookup(x), item_embedding(item_lookup(x))
        else:
            ids_layer = lookup(name)
            ids = ids_layer(x)
            size = min(16, embedding_dim)
            vectors = tf.keras.layers.Embedding(
                ids_layer.vocabulary_size(), size, name=layer_name(name, "embedding")
            )(ids)
        # Mean over filled slots; an empty list gives a zero vector, not 0/0.
        mask = tf.cast(tf.not_equal(ids, 0), tf.float32)[..., tf.newaxis]
        total = tf.reduce_sum(vectors * mask, axis=1)
        return total / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)

    def numeric(inputs: dict[str, Any], names: list[str], log: Any, tower: str) -> Any:
        stacked = tf.stack([inputs[n] for n in names], axis=1)
        stacked = tf.where(tf.math.is_finite(stacked), stacked, tf.zeros_like(stacked))
        normalise = tf.keras.layers.Normalization(
            mean=[prep.means[n] for n in names],
            variance=[prep.variances[n] for n in names],
            name=normalization_name(tower),
        )
        return normalise(log(stacked))

    def head(parts: list[Any], tower: str) -> Any:
        # One input: no Concatenate (a model with a one-tensor Concatenate does not reload).
        x = (
            parts[0]
            if len(parts) == 1
            else tf.keras.layers.Concatenate(name=f"{tower}_concat")(parts)
        )
        *hidden, output = dense_names(tower, hidden_layers)
        for name, units in zip(hidden, hidden_layers, strict=True):
            x = tf.keras.layers.Dense(units, activation=activation, name=name)(x)
        x = tf.keras.layers.Dense(embedding_dim, name=output)(x)
        return tf.math.l2_normalize(x, axis=1)

    def signed_log1p(x: Any) -> Any:
        return tf.math.sign(x) * tf.math.log1p(tf.math.abs(x))

    q_inputs = {
        s.name: tf.keras.Input(
            shape=(s.length,) if s.is_list else (),
            dtype=tf.float32 if s.kind == "numeric" else tf.string,
            name=s.name,
        )
        for s in q_specs
    }
    parts = []
    for s in q_specs:
        if s.kind in ("id", "categorical"):
            parts.append(categorical(q_inputs[s.name], s.name))
        elif s.is_list:
            parts.append(bag(q_inputs[s.name], s.name))
    numerics = [s.name for s in q_specs if s.kind == "numeric"]
    if numerics:
        parts.append(numeric(q_inputs, numerics, signed_log1p, "query"))
    query = tf.keras.Model(q_inputs, head(parts, "query"), name="query_tower")

    c_specs = prep.candidate_inputs()
    c_inputs = {
        s.name: tf.keras.Input(
            shape=(), dtype=tf.float32 if s.kind == "numeric" else tf.string, name=s.name
        )
        for s in c_specs
    }
    c_parts = [item_embedding(item_lookup(c_inputs[ITEM_ID]))]
    c_parts += [
        categorical(c_inputs[s.name], s.name, "item_") for s in c_specs if s.kind == "categorical"
    ]
    c_numeric = [s.name for s in c_specs if s.kind == "numeric"]
    if c_numeric:
        log1p = lambda x: tf.math.log1p(tf.maximum(x, 0.0))  # noqa: E731
        c_parts.append(numeric(c_inputs, c_numeric, log1p, "candidate"))
    candidate = tf.keras.Model(c_inputs, head(c_parts, "candidate"), name="candidate_tower")
    return query, candidate
