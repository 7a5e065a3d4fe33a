"""The query and candidate towers' raw inputs: what each one is, and how a value becomes one.

    feature value --encode_column--> the towers' raw input format
      numeric      float32; missing or unparseable -> 0 (infinities pass: the tower zeroes them)
      id, categorical  str; missing -> '' (the mask token)
      string_list  (n, length) str: the first `length` values (None entries dropped after
                   the cut), padded with ''
    token --Vocabulary.codes--> embedding row: '' -> MASK (0), unknown -> OOV (1), the i-th
      vocabulary token -> i + 2 (Keras' StringLookup(mask_token='', num_oov_indices=1))

Training encodes its example frames (`encode_frame`) and serving its feature rows
(`encode_rows`) through the same `encode_column`, so a value means the same thing on both
sides; the SavedModel and the plain export of the query tower (tailwise.tower_export) both
take this format.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

KINDS = ("id", "categorical", "numeric", "string_list")
MASK, OOV = 0, 1  # the rows of '' and of a token the vocabulary does not hold
FIRST_TOKEN = 2  # the row of the vocabulary's first token


@dataclass(frozen=True)
class TowerInput:
    """One raw input of a tower: kind 'id' | 'categorical' | 'numeric' | 'string_list'.

    Strings are tf.string, numerics float32; a list has shape [length]."""

    name: str
    kind: str
    length: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"tower input {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind == "string_list" and self.length < 1:
            raise ValueError(f"tower input {self.name!r}: a string_list needs a length >= 1")

    @property
    def dtype(self) -> str:
        return "float32" if self.kind == "numeric" else "string"

    @property
    def shape(self) -> list[int | None]:
        return [None, self.length] if self.kind == "string_list" else [None]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dtype": self.dtype, "shape": self.shape}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TowerInput:
        """From `to_dict`'s form (a manifest's `inputs` entry); ValueError names what is bad."""
        try:
            return cls(str(data["name"]), str(data["kind"]), int(data.get("length", 0) or 0))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"tower input {dict(data)!r}: needs name and kind ({exc})") from exc


class Vocabulary:
    """Tokens -> embedding rows, with the mask and OOV rows first (see the module docstring)."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self.tokens = tuple(str(t) for t in tokens)
        self._rows = {t: i + FIRST_TOKEN for i, t in enumerate(self.tokens)}
        if "" in self._rows or len(self._rows) != len(self.tokens):
            raise ValueError("a vocabulary holds distinct, non-empty tokens")

    @classmethod
    def learn(cls, values: Iterable[Any]) -> Vocabulary:
        """The sorted distinct tokens of encoded `values` ('' is the mask, never a token)."""
        return cls(sorted({str(v) for v in values if v != ""}))

    @property
    def rows(self) -> int:
        """The embedding table's height: the tokens plus the mask and OOV rows."""
        return len(self.tokens) + FIRST_TOKEN

    def __contains__(self, token: object) -> bool:
        return token in self._rows

    def code(self, token: str) -> int:
        """The embedding row of one encoded token."""
        return self._rows.get(token, OOV) if token else MASK

    def codes(self, tokens: np.ndarray) -> np.ndarray:
        """The embedding row of each encoded token (any shape)."""
        found = [self.code(t) for t in np.asarray(tokens, dtype=object).ravel()]
        return np.array(found, dtype=np.intp).reshape(np.shape(tokens))


def number(value: Any) -> float:
    """A numeric input: missing or unparseable -> 0.0."""
    if value is None:
        return 0.0
    try:
        out = float(value)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(out) else out


def text_token(value: Any) -> str:
    """An id / categorical input: missing -> '' (the mask token)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return ""
    return str(value)


def list_tokens(value: Any, length: int) -> list[str]:
    """A string-list input's first `length` values, None entries dropped after the cut;
    missing (None, NaN) or a lone scalar where a list belongs: no values."""
    if value is None or value is pd.NA or isinstance(value, (float, np.floating, str, int)):
        return []
    return [str(v) for v in list(value)[:length] if v is not None]


def encode_column(spec: TowerInput, values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """One input's values in the raw input format (the module docstring says how)."""
    array = values if isinstance(values, np.ndarray) else _objects(values)
    if spec.kind == "numeric":
        if array.dtype.kind in "biuf":  # already numbers: only NaN is missing
            floats = array.astype(np.float64)
            return np.where(np.isnan(floats), 0.0, floats).astype(np.float32)
        return np.array([number(v) for v in array], dtype=np.float32)
    if spec.kind == "string_list":
        grid = np.full((len(array), spec.length), "", dtype=object)
        for row, value in enumerate(array):
            tokens = list_tokens(value, spec.length)
            grid[row, : len(tokens)] = tokens
        return grid
    return np.array([text_token(v) for v in array], dtype=object)


def encode_rows(
    inputs: Sequence[TowerInput], rows: Sequence[Mapping[str, Any]]
) -> dict[str, np.ndarray]:
    """Feature rows (name -> value; a missing name is a missing value), by input name."""
    return {s.name: encode_column(s, [row.get(s.name) for row in rows]) for s in inputs}


def encode_frame(frame: pd.DataFrame, inputs: Sequence[TowerInput]) -> dict[str, np.ndarray]:
    """A frame's columns (a missing column is all missing), by input name."""
    out = {}
    for spec in inputs:
        if spec.name in frame.columns:
            out[spec.name] = encode_column(spec, frame[spec.name].to_numpy())
        else:
            out[spec.name] = encode_column(spec, [None] * len(frame))
    return out


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-d object array of `values` as they are (np.array would make lists a 2nd axis)."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out
