"""The query tower in numpy: the exported model's layers, read once, evaluated per request.

    query_model/ (Keras 2 SavedModel) --read_query_tower, at load time--> QueryTower
      id, categorical  vocabulary -> embedding row ('' -> the mask row 0, unknown -> OOV row 1)
      string lists     vocabulary -> mean of the filled slots' rows (zeros when none is filled)
      numerics         missing / non-finite -> 0, sign*log1p, (x - mean) / max(sqrt(var), 1e-7)
      concat (input order, numerics last) -> relu(hidden) -> output -> L2-normalised

Through TensorFlow one query vector costs ~1 ms of eager dispatch for ~30 us of arithmetic,
and most of a replica's CPU per request was that. The layers are the ones training built
(`training.towers.build_towers`), found in the saved Keras graph by what feeds them, not by
name. The SavedModel signature stays the reference (`ModelBundle.embed_reference`):
`load_bundle` refuses a version whose numpy tower disagrees with it on probe rows, and
tests/serving/test_parity.py compares the two on real feature rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

MASK, OOV = 0, 1  # StringLookup(mask_token='', num_oov_indices=1): '' -> 0, unknown -> 1
EPSILON = 1e-7  # Keras' backend epsilon: Normalization's floor on the standard deviation


class TowerError(ValueError):
    """The saved query model is not the architecture this module evaluates."""


@dataclass(frozen=True)
class Lookup:
    """One string input: its vocabulary (token -> row) and embedding table."""

    name: str
    bag: bool  # a list of `length` tokens, averaged over the filled ones
    length: int
    index: dict[str, int]
    table: np.ndarray  # float32 (vocabulary size, dim)


@dataclass(frozen=True)
class QueryTower:
    lookups: list[Lookup]
    numeric: list[str]
    mean: np.ndarray  # float32 (len(numeric),)
    scale: np.ndarray  # float32, max(sqrt(variance), EPSILON)
    hidden: tuple[np.ndarray, np.ndarray]  # relu(x @ kernel + bias)
    output: tuple[np.ndarray, np.ndarray]
    # For one row at a time: every embedding row already through the hidden layer's
    # kernel (its slice for that input), all vocabularies stacked; set in __post_init__.
    projected: np.ndarray = field(init=False, repr=False)
    offsets: tuple[int, ...] = field(init=False, repr=False)  # each lookup's first row
    numeric_kernel: np.ndarray = field(init=False, repr=False)  # the numerics' kernel rows

    def __post_init__(self) -> None:
        kernel = self.hidden[0]
        blocks, offsets, row, column = [], [], 0, 0
        for lookup in self.lookups:
            width = lookup.table.shape[1]
            blocks.append(lookup.table @ kernel[column : column + width])
            offsets.append(row)
            row += lookup.table.shape[0]
            column += width
        projected = (
            np.concatenate(blocks).astype(np.float32)
            if blocks
            else np.zeros((0, kernel.shape[1]), np.float32)
        )
        object.__setattr__(self, "projected", projected)
        object.__setattr__(self, "offsets", tuple(offsets))
        numeric_rows = kernel[kernel.shape[0] - len(self.numeric) :]
        object.__setattr__(self, "numeric_kernel", np.ascontiguousarray(numeric_rows))

    def embed_row(self, row: Mapping[str, Any]) -> np.ndarray:
        """The L2-normalised query vector (float32) of one feature row.

        The same arithmetic as `embed`, regrouped: the hidden layer is linear before its
        relu, so each input's embedding row goes through its slice of the kernel ahead
        of time (`projected`) and a row costs a weighted sum of its inputs' projected
        rows (a bag's rows weighted by 1/count: their mean), then the rest in one
        compiled loop (`_embed_row`)."""
        ids: list[int] = []
        weights: list[float] = []
        for lookup, offset in zip(self.lookups, self.offsets, strict=True):
            value = row.get(lookup.name)
            if lookup.bag:
                found = [lookup.index.get(t, OOV) for t in list_tokens(value, lookup.length) if t]
                if found:
                    ids += [offset + i for i in found]
                    weights += [1.0 / len(found)] * len(found)
            else:
                token = text_token(value)
                ids.append(offset + (lookup.index.get(token, OOV) if token else MASK))
                weights.append(1.0)
        # Floats as they are: _embed_row reads a NaN or infinity as 0, as `number` would.
        numbers = np.array(
            [v if v.__class__ is float else number(v) for v in map(row.get, self.numeric)],
            np.float32,
        )
        query = np.empty(self.output[0].shape[1], dtype=np.float32)
        _embed_row(
            self.projected,
            np.array(ids, dtype=np.int64),
            np.array(weights, dtype=np.float32),
            numbers,
            self.mean,
            self.scale,
            self.numeric_kernel,
            self.hidden[1],
            self.output[0],
            self.output[1],
            query,
        )
        return query

    def embed(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """Query vectors for a batch in the SavedModel's raw input format
        (`serving.retrieval.tower_inputs`): what the reference signature takes."""
        parts = []
        for lookup in self.lookups:
            tokens = np.asarray(arrays[lookup.name]).astype(str)
            ids = np.vectorize(lambda t, ix=lookup.index: ix.get(t, OOV) if t else MASK)(tokens)
            vectors = lookup.table[ids]
            if lookup.bag:
                mask = (ids != MASK)[..., np.newaxis].astype(np.float32)
                counts = np.maximum(mask.sum(axis=1), 1.0)
                vectors = (vectors * mask).sum(axis=1) / counts
            parts.append(vectors)
        if self.numeric:
            x = np.stack([np.asarray(arrays[n], np.float32) for n in self.numeric], axis=1)
            parts.append(self._normalise(x))
        return self._head(np.concatenate(parts, axis=-1))

    def _normalise(self, x: np.ndarray) -> np.ndarray:
        x = np.where(np.isfinite(x), x, np.float32(0.0))
        return (np.sign(x) * np.log1p(np.abs(x)) - self.mean) / self.scale

    def _head(self, x: np.ndarray) -> np.ndarray:
        hidden = np.maximum(x @ self.hidden[0] + self.hidden[1], np.float32(0.0))
        out = hidden @ self.output[0] + self.output[1]
        norm = np.sqrt(np.maximum((out * out).sum(axis=1, keepdims=True), np.float32(1e-12)))
        return (out / norm).astype(np.float32)


@njit(cache=True, nogil=True)
def _embed_row(
    projected: np.ndarray,
    ids: np.ndarray,
    weights: np.ndarray,
    numbers: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    numeric_kernel: np.ndarray,
    hidden_bias: np.ndarray,
    output_kernel: np.ndarray,
    output_bias: np.ndarray,
    query: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """`QueryTower.embed_row` after the token lookups, in one compiled loop: the weighted
    projected rows, the normalised numerics through their kernel slice, relu, the output
    layer and the L2 norm (`_normalise`, `_head`)."""
    width = hidden_bias.shape[0]
    hidden = hidden_bias.copy()
    for i in range(ids.shape[0]):
        w, row = weights[i], ids[i]
        for h in range(width):
            hidden[h] += w * projected[row, h]
    for k in range(numbers.shape[0]):
        x = numbers[k]
        if not np.isfinite(x):
            x = np.float32(0.0)
        z = (np.sign(x) * np.log1p(np.abs(x)) - mean[k]) / scale[k]
        for h in range(width):
            hidden[h] += z * numeric_kernel[k, h]
    for h in range(width):
        hidden[h] = max(hidden[h], np.float32(0.0))
    total = np.float32(0.0)
    for j in range(output_bias.shape[0]):
        value = output_bias[j]
        for h in range(hidden.shape[0]):
            value += hidden[h] * output_kernel[h, j]
        query[j] = value
        total += value * value
    norm = np.sqrt(max(total, np.float32(1e-12)))
    for j in range(query.shape[0]):
        query[j] /= norm


# ------------------------------------------------------------ raw values, as training has them


def number(value: Any) -> float:
    """A numeric input: missing or unparseable -> 0.0 (training's raw_inputs)."""
    if value is None:
        return 0.0
    try:
        out = float(value)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(out) else out


def text_token(value: Any) -> str:
    """An id / categorical input: missing -> '' (the mask token)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def list_tokens(value: Any, length: int) -> list[str]:
    """A string-list input's first `length` values (None entries dropped after the cut)."""
    if value is None:
        return []
    return [str(v) for v in list(value)[:length] if v is not None]


def raw_inputs(inputs: Sequence[Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Feature rows in the SavedModel's raw input format: numerics float32 (n,), strings
    (n,), lists (n, length) padded with ''."""
    out: dict[str, np.ndarray] = {}
    for spec in inputs:
        values = [row.get(spec.name) for row in rows]
        if spec.kind == "numeric":
            out[spec.name] = np.array([number(v) for v in values], np.float32)
        elif spec.kind == "string_list":
            grid = np.full((len(rows), spec.length), "", dtype=object)
            for i, value in enumerate(values):
                tokens = list_tokens(value, spec.length)
                grid[i, : len(tokens)] = tokens
            out[spec.name] = grid.astype(str)
        else:
            out[spec.name] = np.array([text_token(v) for v in values]).astype(str)
    return out


# ------------------------------------------------------------------------- reading the model


def read_query_tower(folder: Path, inputs: Sequence[Any]) -> QueryTower:
    """The numpy tower of the Keras SavedModel in `folder`; `inputs`: the version's ordered
    tower inputs (name, kind, length). Raises TowerError when the graph is not the
    lookup/embedding -> concat -> dense -> dense tower this module evaluates."""
    import tensorflow as tf

    model = tf.keras.models.load_model(str(folder), compile=False)
    layers = {layer.name: layer for layer in model.layers}
    lookups = []
    for spec in inputs:
        if spec.kind == "numeric":
            continue
        lookup = _only(_consumers(model, layers.get(spec.name)), "StringLookup", spec.name)
        embedding = _only(_consumers(model, lookup), "Embedding", spec.name)
        vocabulary = [str(t) for t in lookup.get_vocabulary()]
        if vocabulary[MASK] != "" or lookup.num_oov_indices != 1:
            raise TowerError(f"{spec.name}: lookup is not (mask '', one OOV row)")
        index = {t: i for i, t in enumerate(vocabulary) if i > OOV}
        table = np.asarray(embedding.get_weights()[0], np.float32)
        bag = spec.kind == "string_list"
        lookups.append(Lookup(spec.name, bag, int(spec.length), index, table))
    numeric = [s.name for s in inputs if s.kind == "numeric"]
    mean, scale = np.zeros(0, np.float32), np.ones(0, np.float32)
    if numeric:
        norm = _only(
            [x for x in model.layers if type(x).__name__ == "Normalization"], "Normalization"
        )
        mean = np.asarray(norm.mean, np.float32).reshape(-1)
        variance = np.asarray(norm.variance, np.float32).reshape(-1)
        if len(mean) != len(numeric):
            raise TowerError(f"normalisation has {len(mean)} values for {len(numeric)} numerics")
        scale = np.maximum(np.sqrt(variance), np.float32(EPSILON))
    dense = [x for x in model.layers if type(x).__name__ == "Dense"]
    activations = [x.get_config()["activation"] for x in dense]
    if activations != ["relu", "linear"]:
        raise TowerError(f"expected a relu and a linear Dense layer, found {activations}")
    hidden, output = (tuple(np.asarray(w, np.float32) for w in x.get_weights()) for x in dense)
    return QueryTower(lookups, numeric, mean, scale, hidden, output)  # type: ignore[arg-type]


def read_vocabulary(folder: Path, name: str) -> frozenset[str]:
    """The tokens the lookup after input `name` of the Keras SavedModel in `folder` knows
    (without the mask and OOV tokens): e.g. the user ids the model learned. Raises
    TowerError when the model has no such lookup."""
    import tensorflow as tf

    model = tf.keras.models.load_model(str(folder), compile=False)
    layers = {layer.name: layer for layer in model.layers}
    lookup = _only(_consumers(model, layers.get(name)), "StringLookup", name)
    skip = (0 if lookup.mask_token is None else 1) + int(lookup.num_oov_indices)
    return frozenset(str(t) for t in lookup.get_vocabulary()[skip:])


def _consumers(model: Any, layer: Any) -> list[Any]:
    if layer is None:
        return []
    return [
        other
        for other in model.layers
        for node in other.inbound_nodes
        if any(parent is layer for parent in _as_list(node.inbound_layers))
    ]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _only(layers: list[Any], kind: str, name: str = "") -> Any:
    found = {id(x): x for x in layers if type(x).__name__ == kind}
    if len(found) != 1:
        where = f" after input {name!r}" if name else ""
        raise TowerError(f"expected one {kind} layer{where}, found {len(found)}")
    return next(iter(found.values()))
