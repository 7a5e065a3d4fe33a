"""The two towers of the retriever, each owning its preprocessing (Keras 2 / TFRS).

    raw user values (by feature name) --> query tower --> L2-normalised query vector
      user_id          StringLookup(+OOV) -> Embedding       (unknown users: the OOV row)
      categorical      StringLookup(+OOV) -> Embedding
      numeric          sign*log1p -> Normalization (mean/variance of the training examples)
      string lists     StringLookup(mask '') -> Embedding -> mean over non-empty slots;
                       recent_items reuses the candidate tower's item-id lookup + embedding
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
and values (`InputSpec` says the name, dtype and shape of each). TensorFlow is imported
inside the functions: TF_USE_LEGACY_KERAS must be set before its first import.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from training.dataset import UserFeature

USER_ID = "user_id"
ITEM_ID = "item_id"
RECENT_ITEMS = "recent_items"
CANDIDATE_CATEGORICAL = ("category", "category_l1", "brand")
CANDIDATE_NUMERIC = ("price",)


@dataclass(frozen=True)
class InputSpec:
    """One raw input of a tower: kind 'id' | 'categorical' | 'numeric' | 'string_list'.

    Strings are tf.string, numerics float32 (missing -> 0 before the transform); a list has
    shape [length], padded with '' and truncated to its first `length` values."""

    name: str
    kind: str
    length: int = 0

    @property
    def dtype(self) -> str:
        return "float32" if self.kind == "numeric" else "string"

    @property
    def shape(self) -> list[int | None]:
        return [None, self.length] if self.kind == "string_list" else [None]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dtype": self.dtype, "shape": self.shape}


@dataclass
class Preprocessing:
    """What `fit_preprocessing` learned: vocabularies and numeric mean / variance."""

    vocabularies: dict[str, list[str]] = field(default_factory=dict)
    means: dict[str, float] = field(default_factory=dict)
    variances: dict[str, float] = field(default_factory=dict)
    candidate: list[InputSpec] | None = None  # candidate tower inputs (None: all of them)
    dropped: list[str] = field(default_factory=list)  # candidate inputs left out

    def candidate_inputs(self) -> list[InputSpec]:
        return candidate_specs() if self.candidate is None else self.candidate


def query_specs(
    features: list[UserFeature],
    examples: pd.DataFrame,
    ignored: tuple[str, ...] = (),
    max_list_length: int = 10,
) -> list[InputSpec]:
    """The query tower's inputs: user_id, then the service's features it can use, in order.

    Float lists (top_category_shares) and `ignored` names are left out."""
    specs = [InputSpec(USER_ID, "id")]
    for feature in features:
        if feature.name in ignored or feature.kind == "float_list":
            continue
        if feature.kind == "string_list":
            lengths = examples[feature.name].dropna().map(len)
            length = int(min(max_list_length, max(1, lengths.max() if len(lengths) else 1)))
            specs.append(InputSpec(feature.name, "string_list", length))
        else:
            specs.append(InputSpec(feature.name, feature.kind))
    return specs


def candidate_specs() -> list[InputSpec]:
    """The candidate tower's inputs (clean catalogue columns)."""
    return [
        InputSpec(ITEM_ID, "id"),
        *(InputSpec(c, "categorical") for c in CANDIDATE_CATEGORICAL),
        *(InputSpec(c, "numeric") for c in CANDIDATE_NUMERIC),
    ]


def informative(frame: pd.DataFrame, specs: list[InputSpec]) -> tuple[list[InputSpec], list[str]]:
    """(kept, dropped names): ids are always kept; any other input whose raw values are all
    missing or one value in every row of `frame` is dropped."""
    arrays = raw_inputs(frame, specs)
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


def raw_inputs(frame: pd.DataFrame, specs: list[InputSpec]) -> dict[str, np.ndarray]:
    """Numpy arrays of `frame` in the towers' raw input format (missing columns: missing)."""
    out: dict[str, np.ndarray] = {}
    n = len(frame)
    for spec in specs:
        column = frame[spec.name] if spec.name in frame.columns else pd.Series([None] * n)
        if spec.kind == "numeric":
            values = pd.to_numeric(column.astype("float64"), errors="coerce").to_numpy()
            out[spec.name] = np.nan_to_num(values, nan=0.0).astype(np.float32)
        elif spec.kind == "string_list":
            grid = np.full((n, spec.length), "", dtype=object)
            for row, values in enumerate(column.to_numpy()):
                if values is not None and not (np.isscalar(values) and pd.isna(values)):
                    head = [str(v) for v in list(values)[: spec.length] if v is not None]
                    grid[row, : len(head)] = head
            out[spec.name] = grid
        else:
            out[spec.name] = column.astype(object).where(column.notna(), "").astype(str).to_numpy()
    return out


def fit_preprocessing(
    examples: pd.DataFrame, items: pd.DataFrame, q_specs: list[InputSpec]
) -> Preprocessing:
    """Vocabularies and numeric statistics from the training examples (items: catalogue)."""
    prep = Preprocessing()
    arrays = raw_inputs(examples, q_specs)
    for spec in q_specs:
        values = arrays[spec.name]
        if spec.kind == "numeric":
            transformed = _signed_log1p(values.astype(np.float64))
            prep.means[spec.name] = float(transformed.mean())
            prep.variances[spec.name] = float(max(transformed.var(), 1e-6))
        elif spec.name != RECENT_ITEMS:
            prep.vocabularies[spec.name] = _vocabulary(values.ravel())
    # Item ids seen in training examples; catalogue items never interacted with share the
    # OOV row and are told apart by their attributes.
    prep.vocabularies[ITEM_ID] = _vocabulary(examples[ITEM_ID].astype(str).to_numpy())
    prep.candidate, prep.dropped = informative(items, candidate_specs())
    kept = {s.name for s in prep.candidate}
    catalogue = raw_inputs(items, candidate_specs())
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
    return sorted({str(v) for v in values if v != ""})


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def build_towers(
    q_specs: list[InputSpec],
    prep: Preprocessing,
    embedding_dim: int,
    hidden_units: int,
) -> tuple[Any, Any]:
    """(query_model, candidate_model): Keras functional models over dicts of raw inputs."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    item_lookup = tf.keras.layers.StringLookup(
        vocabulary=prep.vocabularies[ITEM_ID], mask_token="", name="item_id_lookup"
    )
    item_embedding = tf.keras.layers.Embedding(
        item_lookup.vocabulary_size(), embedding_dim, name="item_id_embedding"
    )

    def categorical(x: Any, name: str, prefix: str = "") -> Any:
        lookup = tf.keras.layers.StringLookup(
            vocabulary=prep.vocabularies[name], mask_token="", name=f"{prefix}{name}_lookup"
        )
        size = min(16, embedding_dim)
        embedding = tf.keras.layers.Embedding(
            lookup.vocabulary_size(), size, name=f"{prefix}{name}_embedding"
        )
        return embedding(lookup(x))

    def bag(x: Any, name: str) -> Any:
        if name == RECENT_ITEMS:
            ids, vectors = item_lookup(x), item_embedding(item_lookup(x))
        else:
            lookup = tf.keras.layers.StringLookup(
                vocabulary=prep.vocabularies[name], mask_token="", name=f"{name}_lookup"
            )
            ids = lookup(x)
            size = min(16, embedding_dim)
            vectors = tf.keras.layers.Embedding(
                lookup.vocabulary_size(), size, name=f"{name}_embedding"
            )(ids)
        # Mean over filled slots; an empty list gives a zero vector, not 0/0.
        mask = tf.cast(tf.not_equal(ids, 0), tf.float32)[..., tf.newaxis]
        total = tf.reduce_sum(vectors * mask, axis=1)
        return total / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)

    def numeric(inputs: dict[str, Any], names: list[str], log: Any) -> Any:
        stacked = tf.stack([inputs[n] for n in names], axis=1)
        stacked = tf.where(tf.math.is_finite(stacked), stacked, tf.zeros_like(stacked))
        normalise = tf.keras.layers.Normalization(
            mean=[prep.means[n] for n in names],
            variance=[prep.variances[n] for n in names],
            name=f"numeric_normalization_{len(names)}_{names[0]}",
        )
        return normalise(log(stacked))

    def head(parts: list[Any], prefix: str) -> Any:
        # One input: no Concatenate (a model with a one-tensor Concatenate does not reload).
        x = (
            parts[0]
            if len(parts) == 1
            else tf.keras.layers.Concatenate(name=f"{prefix}_concat")(parts)
        )
        x = tf.keras.layers.Dense(hidden_units, activation="relu", name=f"{prefix}_hidden")(x)
        x = tf.keras.layers.Dense(embedding_dim, name=f"{prefix}_output")(x)
        return tf.math.l2_normalize(x, axis=1)

    def signed_log1p(x: Any) -> Any:
        return tf.math.sign(x) * tf.math.log1p(tf.math.abs(x))

    q_inputs = {
        s.name: tf.keras.Input(
            shape=(s.length,) if s.kind == "string_list" else (),
            dtype=tf.float32 if s.kind == "numeric" else tf.string,
            name=s.name,
        )
        for s in q_specs
    }
    parts = []
    for s in q_specs:
        if s.kind in ("id", "categorical"):
            parts.append(categorical(q_inputs[s.name], s.name))
        elif s.kind == "string_list":
            parts.append(bag(q_inputs[s.name], s.name))
    numerics = [s.name for s in q_specs if s.kind == "numeric"]
    if numerics:
        parts.append(numeric(q_inputs, numerics, signed_log1p))
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
        c_parts.append(numeric(c_inputs, c_numeric, lambda x: tf.math.log1p(tf.maximum(x, 0.0))))
    candidate = tf.keras.Model(c_inputs, head(c_parts, "candidate"), name="candidate_tower")
    return query, candidate
