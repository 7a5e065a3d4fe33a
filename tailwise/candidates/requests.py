"""One user's history as a request sees it: numpy arrays over a fixed item vocabulary.

    events of one user (item, epoch seconds, weight, event type, device, country)
      --UserEvents--> the request's input (serving builds it from Redis; tests from frames)
      --UserView(events, vocabulary, at)--> the events strictly before `at` as item codes,
        their ages, and per item: the count and the newest event

The vocabulary is the sorted item ids of a version's source tables, so code order is
item-id order: the tie-break every source and the fusion use (`base.top_n`) becomes an
integer comparison. Items outside it (touched after the sources' cut) get codes past its
end and a sort key that places them where their id would sort (`UserView.keys`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from tailwise.candidates.base import DAY_SECONDS, check_events

CONTEXT_COLUMNS = ("device", "country")


@dataclass(frozen=True)
class UserEvents:
    """One user's events, any order: item ids, epoch seconds, weights, lower-case event
    types, and per context column the value of each event (None where unknown)."""

    items: np.ndarray  # object
    seconds: np.ndarray  # float64
    weights: np.ndarray  # float64
    kinds: np.ndarray  # object, lower case ('' where unknown)
    context: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> UserEvents:
        none = np.zeros(0, dtype=object)
        return cls(none, np.zeros(0), np.zeros(0), none)

    @classmethod
    def from_frame(cls, events: pd.DataFrame) -> UserEvents:
        """From event rows as training reads them (`base.check_events`' columns)."""
        frame = check_events(events, "user events")
        epoch = frame["timestamp"].astype("int64").to_numpy() / 1e9
        kinds = (
            frame["event_type"].astype(str).str.lower().to_numpy(object)
            if "event_type" in frame.columns
            else np.full(len(frame), "", dtype=object)
        )
        context = {
            c: frame[c].astype(object).where(frame[c].notna(), None).to_numpy(object)
            for c in CONTEXT_COLUMNS
            if c in frame.columns
        }
        return cls(
            frame["item_id"].to_numpy(object),
            epoch.astype(np.float64),
            frame["weight"].to_numpy(np.float64),
            kinds,
            context,
        )


class Vocabulary:
    """Sorted item ids and their codes (code order = id order)."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = np.asarray(sorted({str(i) for i in ids}), dtype=object)
        self.codes = {item: n for n, item in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, ids: np.ndarray) -> np.ndarray:
        """Codes of `ids` (-1 where unknown)."""
        get = self.codes.get
        return np.fromiter((get(str(i), -1) for i in ids), dtype=np.int64, count=len(ids))


class UserView:
    """A user's events before `at` in vocabulary codes, with what every source reads."""

    def __init__(self, events: UserEvents, vocabulary: Vocabulary, at: float) -> None:
        keep = events.seconds < at
        self.at = at
        self.vocabulary = vocabulary
        self.seconds = events.seconds[keep]
        self.weights = np.nan_to_num(events.weights[keep], nan=0.0)
        self.kinds = events.kinds[keep]
        self.context = {k: v[keep] for k, v in events.context.items()}
        ids = events.items[keep]
        codes = vocabulary.encode(ids)
        self.extra = np.asarray(sorted({str(i) for i in ids[codes < 0]}), dtype=object)
        if len(self.extra):
            position = {item: len(vocabulary) + n for n, item in enumerate(self.extra)}
            codes = np.where(codes < 0, [position.get(str(i), -1) for i in ids], codes)
        self.codes = codes
        # Per distinct item: count and newest event (items ascending by code).
        self.items, inverse = np.unique(codes, return_inverse=True)
        self.counts = np.bincount(inverse, minlength=len(self.items)).astype(np.float64)
        self.last = np.full(len(self.items), -np.inf)
        np.maximum.at(self.last, inverse, self.seconds)

    @cached_property
    def seen(self) -> np.ndarray:
        """bool per code (vocabulary, then extra items): the user had the item."""
        mask = np.zeros(len(self.vocabulary) + len(self.extra), dtype=bool)
        mask[self.items] = True
        return mask

    def ages(self, seconds: np.ndarray) -> np.ndarray:
        """Days from `seconds` to the request time."""
        return (self.at - seconds) / DAY_SECONDS

    def keys(self, codes: np.ndarray) -> np.ndarray:
        """Sort keys ordering codes as their item ids sort (known and extra items mixed)."""
        keys = codes * 2.0
        extra = codes >= len(self.vocabulary)
        if extra.any():
            names = self.extra[codes[extra] - len(self.vocabulary)]
            slots = np.searchsorted(self.vocabulary.ids.astype(str), names.astype(str))
            keys[extra] = slots * 2.0 - 1.0 + _tiebreak(names)
        return keys

    def name(self, codes: np.ndarray) -> np.ndarray:
        """Item ids of codes (known and extra)."""
        everything = np.concatenate([self.vocabulary.ids, self.extra])
        return everything[codes]

    def latest(self, column: str) -> object | None:
        """The value of a context column at the user's latest event that has one (ties in
        time: the later row), as a stable sort by time then `last()` gives it."""
        values = self.context.get(column)
        if values is None:
            return None
        known = np.flatnonzero([v is not None for v in values])
        if not len(known):
            return None
        order = known[np.argsort(self.seconds[known], kind="stable")]
        return values[order[-1]]


def _tiebreak(names: np.ndarray) -> np.ndarray:
    """A fraction in (0, 1) per extra item ordering those that share a slot by id."""
    order = np.argsort(names.astype(str), kind="stable")
    out = np.empty(len(names))
    out[order] = (np.arange(len(names)) + 1.0) / (len(names) + 1.0)
    return out


def top(
    view: UserView,
    codes: np.ndarray,
    scores: np.ndarray,
    n: int,
    exclude: bool,
    ranked: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The `n` best (score, then item id) of scored codes, the user's items left out when
    `exclude`: (codes, scores) best first, as `base.top_n` ranks them. `ranked`: the
    codes come in that order already (a fixed list sorted at load), so no sort is needed."""
    if exclude and len(view.items) and len(codes):
        keep = ~view.seen[codes]
        if ranked:  # only the first n kept are needed
            keep &= np.cumsum(keep) <= n
        codes, scores = codes[keep], scores[keep]
    if ranked:
        return codes[:n], scores[:n]
    if len(codes) > 2 * n:  # only what can be in the top n (ties at the n-th included)
        nth = np.partition(scores, len(scores) - n)[len(scores) - n]
        keep = scores >= nth
        codes, scores = codes[keep], scores[keep]
    order = np.lexsort((view.keys(codes), -scores))[:n]
    return codes[order], scores[order]


def context_value(view: UserView, context: Mapping[str, object] | None, column: str) -> object:
    """The request's value of `column`, else the user's latest (popularity's rule)."""
    given = None if context is None else context.get(column)
    if given is not None and not (isinstance(given, float) and np.isnan(given)):
        return given
    return view.latest(column)
