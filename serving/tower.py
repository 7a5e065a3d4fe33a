"""The query tower on the request path: training's plain export, evaluated in numpy.

    retrieval/query_tower.json + .npz (tailwise.tower_export, written by training)
      --read_query_tower, at load time--> QueryTower
    feature row (or a batch encoded by tailwise.features.tower_inputs.encode_rows)
      --QueryTower.embed_row (.embed)--> embedding rows / list means, normalised numerics,
      concatenated --> each dense layer (activation from ACTIVATIONS) --> L2-normalised

The export says everything the evaluation needs (the module docstring of
tailwise.tower_export gives the order), so a tower with other layers or widths serves
without a change here. An activation this module does not know stops the load with its
name. An item_history input (format version 2: the user's last M items, for any M the
export says) is a list like any other: the caller puts the user's latest items in the row
(tailwise.features.tower_inputs.latest_items). The SavedModel's signature stays the reference the export is held to before a
version takes traffic (serving.bundle.check_tower).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import erf, expit

from tailwise.features.tower_inputs import (
    LIST_KINDS,
    MASK,
    TowerInput,
    Vocabulary,
    list_tokens,
    number,
    text_token,
)
from tailwise.tower_export import NORM_EPSILON, NumericBlock, QueryTowerExport, read_export

Activation = Callable[[np.ndarray], np.ndarray]
ACTIVATIONS: dict[str, Activation] = {  # Keras' definitions, by the name Keras saves
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, np.float32(0.0)),
    "tanh": np.tanh,
    "sigmoid": expit,
    "gelu": lambda x: 0.5 * x * (1.0 + erf(x / np.sqrt(2.0))),  # approximate=False
}


class TowerError(ValueError):
    """The version's query tower export is missing a part or uses one this module lacks."""


@dataclass(frozen=True)
class Embedded:
    """One string input: its vocabulary and table; a list (`length` slots, 0 for one
    token) is pooled as the mean of its filled slots' rows."""

    name: str
    vocabulary: Vocabulary
    table: np.ndarray  # float32 (vocabulary.rows, width)
    length: int

    @property
    def zeros(self) -> np.ndarray:
        """An empty list's vector."""
        return np.zeros(self.table.shape[1], np.float32)


@dataclass(frozen=True)
class Numeric:
    """The numeric inputs, normalised as one block after the embedded parts."""

    names: list[str]
    mean: np.ndarray  # float32
    scale: np.ndarray  # float32: max(sqrt(variance), epsilon)

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """Raw numbers (the last axis in `names` order) as the tower's numeric block."""
        x = np.where(np.isfinite(x), x, np.float32(0.0))
        return (np.sign(x) * np.log1p(np.abs(x)) - self.mean) / self.scale


@dataclass(frozen=True)
class Dense:
    kernel: np.ndarray  # float32 (inputs, units)
    bias: np.ndarray  # float32 (units,)
    activation: Activation


@dataclass(frozen=True)
class QueryTower:
    inputs: list[TowerInput]
    embedded: list[Embedded]
    numeric: Numeric | None
    dense: list[Dense]

    def embed_row(self, row: Mapping[str, Any]) -> np.ndarray:
        """The query vector (float32) of one feature row (name -> value): `embed` of the
        row, computed value by value (the encoding's own functions) rather than through
        batch arrays, as a request has one row."""
        parts = []
        for part in self.embedded:
            value = row.get(part.name)
            if part.length:  # a list: the mean of its filled slots' rows
                codes = [part.vocabulary.code(t) for t in list_tokens(value, part.length)]
                filled = [c for c in codes if c != MASK]
                vector = part.table[filled].mean(axis=0) if filled else part.zeros
            else:
                vector = part.table[part.vocabulary.code(text_token(value))]
            parts.append(vector)
        if self.numeric is not None:
            numbers = np.array([number(row.get(n)) for n in self.numeric.names], np.float32)
            parts.append(self.numeric.normalise(numbers))
        return self._head(np.concatenate(parts, dtype=np.float32)[np.newaxis])[0]

    def embed(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """Query vectors for a batch of raw inputs (tailwise.features.tower_inputs): what
        the SavedModel's signature takes."""
        parts = [self._embedded(part, arrays[part.name]) for part in self.embedded]
        if self.numeric is not None:
            x = np.stack([np.asarray(arrays[n], np.float32) for n in self.numeric.names], 1)
            parts.append(self.numeric.normalise(x))
        return self._head(np.concatenate(parts, axis=1, dtype=np.float32))

    def _head(self, x: np.ndarray) -> np.ndarray:
        for layer in self.dense:
            x = layer.activation(x @ layer.kernel + layer.bias).astype(np.float32)
        squared = np.maximum((x * x).sum(axis=1, keepdims=True), np.float32(NORM_EPSILON))
        return (x / np.sqrt(squared)).astype(np.float32)

    @staticmethod
    def _embedded(part: Embedded, tokens: np.ndarray) -> np.ndarray:
        codes = part.vocabulary.codes(tokens)
        vectors = part.table[codes]
        if not part.length:
            return vectors
        filled = (codes != MASK)[..., np.newaxis].astype(np.float32)
        return (vectors * filled).sum(axis=1) / np.maximum(filled.sum(axis=1), 1.0)

    @property
    def vocabularies(self) -> dict[str, Vocabulary]:
        """Input name -> the vocabulary its lookup learned (e.g. user_id: the users)."""
        return {part.name: part.vocabulary for part in self.embedded}


def read_query_tower(folder: Path) -> QueryTower:
    """The query tower exported into `folder` (a version's retrieval/). FileNotFoundError
    when the folder has no export (a version trained before it); TowerError naming the
    part when it cannot be evaluated here."""
    try:
        export, arrays = read_export(folder)
        return _query_tower(export, arrays, folder)
    except (FileNotFoundError, TowerError):
        raise
    except (OSError, ValueError) as exc:
        raise TowerError(f"{folder}: unreadable query tower export ({exc})") from exc


def _query_tower(
    export: QueryTowerExport, arrays: Mapping[str, np.ndarray], folder: Path
) -> QueryTower:
    inputs = [TowerInput.from_dict(d) for d in export.inputs]
    kinds = {s.name: s.kind for s in inputs}
    lengths = {s.name: s.length for s in inputs}
    for e in export.embedded:
        if (e.pooling == "mean") != (kinds.get(e.input) in LIST_KINDS):
            raise TowerError(
                f"{folder}: input {e.input!r} ({kinds.get(e.input)}) pooled {e.pooling!r}"
            )
    embedded = [
        Embedded(e.input, Vocabulary(e.vocabulary), arrays[e.table], lengths.get(e.input, 0))
        for e in export.embedded
    ]
    tower = QueryTower(inputs, embedded, _numeric(export.numeric), _dense(export, arrays))
    _check_shapes(tower, folder)
    return tower


def _numeric(block: NumericBlock | None) -> Numeric | None:
    if block is None:
        return None
    mean = np.asarray(block.mean, np.float32)
    scale = np.maximum(np.sqrt(np.asarray(block.variance, np.float32)), np.float32(block.epsilon))
    return Numeric(list(block.inputs), mean, scale)


def _dense(export: QueryTowerExport, arrays: Mapping[str, np.ndarray]) -> list[Dense]:
    layers = []
    for layer in export.dense:
        activation = ACTIVATIONS.get(layer.activation)
        if activation is None:
            raise TowerError(
                f"query tower layer {layer.name!r}: activation {layer.activation!r} is not one"
                f" serving evaluates ({sorted(ACTIVATIONS)})"
            )
        layers.append(Dense(arrays[layer.kernel], arrays[layer.bias], activation))
    return layers


def _check_shapes(tower: QueryTower, folder: Path) -> None:
    """Every part fits the next: tables as tall as their vocabularies, kernels as wide as
    what feeds them, inputs the export lists."""
    names = {s.name for s in tower.inputs}
    used = [p.name for p in tower.embedded] + (tower.numeric.names if tower.numeric else [])
    problems = [f"input {n!r} is not in `inputs`" for n in used if n not in names]
    problems += [
        f"table of {p.name!r} has {len(p.table)} rows for {p.vocabulary.rows}"
        for p in tower.embedded
        if p.table.ndim != 2 or len(p.table) != p.vocabulary.rows
    ]
    if tower.numeric is not None and len(tower.numeric.mean) != len(tower.numeric.names):
        problems.append(f"{len(tower.numeric.mean)} numeric statistics for {tower.numeric.names}")
    width = sum(p.table.shape[1] for p in tower.embedded if p.table.ndim == 2)
    width += len(tower.numeric.names) if tower.numeric else 0
    for n, layer in enumerate(tower.dense):
        kernel, bias = layer.kernel.shape, layer.bias.shape
        if len(kernel) != 2 or kernel[0] != width or bias != kernel[1:]:
            problems.append(f"dense layer {n} is {layer.kernel.shape} after width {width}")
            break
        width = layer.kernel.shape[1]
    if problems:
        raise TowerError(f"{folder}: query tower export does not fit together: {problems}")
