"""The query and candidate towers' raw inputs: what each one is, and how a value becomes one.

    feature value --encode_column--> the towers' raw input format
      numeric      float32; missing or unparseable -> 0 (infinities pass: the tower zeroes them)
      id, categorical  str; missing -> '' (the mask token)
      string_list  (n, length) str: the first `length` values (None entries dropped after
                   the cut), padded with ''
  item_history the same layout as string_list; its values are not a stored feature but
               the user's latest distinct items before the moment asked about, newest
               first (`latest_items` for one user in serving, `items_before` for training
               examples): one definition of "the user's last M items" for both
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
from itertools import islice
from typing import Any

import numpy as np
import pandas as pd

KINDS = ("id", "categorical", "numeric", "string_list", "item_history")
LIST_KINDS = ("string_list", "item_history")
MASK, OOV = 0, 1  # the rows of '' and of a token the vocabulary does not hold
FIRST_TOKEN = 2  # the row of the vocabulary's first token


@dataclass(frozen=True)
class TowerInput:
    """One raw input of a tower: kind 'id' | 'categorical' | 'numeric' | 'string_list' |
    'item_history' (the user's last `length` items, embedded by the item-id table).

    Strings are tf.string, numerics float32; a list has shape [length]."""

    name: str
    kind: str
    length: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"tower input {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind in LIST_KINDS and self.length < 1:
            raise ValueError(f"tower input {self.name!r}: a {self.kind} needs a length >= 1")

    @property
    def is_list(self) -> bool:
        return self.kind in LIST_KINDS

    @property
    def dtype(self) -> str:
        return "float32" if self.kind == "numeric" else "string"

    @property
    def shape(self) -> list[int | None]:
        return [None, self.length] if self.is_list else [None]

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
    if spec.is_list:
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


def latest_items(
    items: Sequence[Any] | np.ndarray, last: Sequence[float] | np.ndarray, m: int
) -> list[str]:
    """An item_history input of one user: of `items` with the epoch seconds of their newest
    event `last` (NaN: unknown, left out), the `m` newest, newest first; items at the same
    second by id, the greatest first (the order `items_before` replays events in)."""
    ids = np.asarray(items, dtype=object).astype(str)
    seconds = np.asarray(last, dtype=np.float64)
    known = np.isfinite(seconds)
    ids, seconds = ids[known], seconds[known]
    order = np.lexsort((ids, seconds))[::-1]
    return [str(i) for i in ids[order[: max(m, 0)]]]


def epoch_seconds(timestamps: Any) -> np.ndarray:
    """Timestamps as float epoch seconds (UTC), as serving's per-user history stores them."""
    stamps = pd.to_datetime(pd.Series(np.asarray(timestamps)), utc=True)
    return ((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(np.float64)


def items_before(events: pd.DataFrame, at: pd.DataFrame, m: int) -> list[list[str]]:
    """The item_history input of each row of `at` (user_id, timestamp): `latest_items` over
    the user's `events` (user_id, item_id, timestamp; every event type, as serving's
    history counts them) strictly before the row's time. Point-in-time: a row never sees
    its own event or a later one."""
    for frame, name in ((events, "events"), (at, "at")):
        missing = [c for c in ("user_id", "timestamp") if c not in frame.columns]
        if missing:
            raise ValueError(f"items_before: {name} lack column(s) {missing}")
    if "item_id" not in events.columns:
        raise ValueError("items_before: events lack column 'item_id'")
    out: list[list[str]] = [[] for _ in range(len(at))]
    if m < 1 or not len(at):
        return out
    log = pd.DataFrame(
        {
            "user_id": events["user_id"].astype(str).to_numpy(),
            "item_id": events["item_id"].astype(str).to_numpy(),
            "seconds": epoch_seconds(events["timestamp"]),
        }
    ).sort_values(["user_id", "seconds", "item_id"], kind="stable")
    asks = pd.DataFrame(
        {"user_id": at["user_id"].astype(str).to_numpy(), "seconds": epoch_seconds(at["timestamp"])}
    ).assign(row=np.arange(len(at)))
    asks = asks.sort_values(["user_id", "seconds"], kind="stable")
    by_user = {
        u: (g["item_id"].to_numpy(), g["seconds"].to_numpy())
        for u, g in log.groupby("user_id", sort=False)
    }
    for user, group in asks.groupby("user_id", sort=False):
        items, seconds = by_user.get(user, (np.empty(0, object), np.empty(0)))
        newest: dict[str, None] = {}  # insertion order = order of each item's newest event
        done = 0
        for row, when in zip(group["row"].to_numpy(), group["seconds"].to_numpy(), strict=True):
            while done < len(items) and seconds[done] < when:
                newest.pop(items[done], None)
                newest[items[done]] = None
                done += 1
            out[row] = list(islice(reversed(newest), m))
    return out
