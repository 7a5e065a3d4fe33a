"""The fitted sources as lookup tables for one request: the same scores as `_score`.

    fitted source (its artifact tables) --lookup(source, vocabulary)--> a Lookup built once:
        Popularity / FixedList  ranked lists (codes, scores) per context value
        NeighbourSource        neighbours of every item in CSR arrays (indptr, codes, scores)
        AttributePopularity    each item's group; each group's ranked items and share
        ProfilePopularity      everyone's shares and each profile value's lifts, per item
        BuyAgain               nothing (it reads the user's own items)
    Lookup.scored(view, context) --> (codes, scores): what the source's `_score` gives for
        that user (any order); `requests.top` then ranks and excludes as `candidates` does

Each form follows its source's docstring step for step over numpy arrays instead of
DataFrames, so a request costs microseconds instead of pandas' milliseconds; the parity
test (tests/candidates/test_requests.py) holds every source to its own `candidates`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tailwise.candidates.base import decay
from tailwise.candidates.buy_again import BuyAgain
from tailwise.candidates.neighbours import NeighbourSource
from tailwise.candidates.popularity import OVERALL, FixedList, Popularity
from tailwise.candidates.profile import UNKNOWN, ProfilePopularity, profile_key, text
from tailwise.candidates.requests import UserView, Vocabulary, context_value
from tailwise.candidates.taste import AttributePopularity

Scored = tuple[np.ndarray, np.ndarray]


class Lookup:
    """One source's per-request form."""

    name: str
    exclude_seen = True
    ranked = False  # `scored` returns its codes best first (score, then item id)
    profile_columns: tuple[str, ...] = ()  # profile values it reads from the context

    def scored(self, view: UserView, context: Mapping[str, object] | None) -> Scored:
        raise NotImplementedError


class Listed(Lookup):
    """Popularity (overall or per context value) and every FixedList (Trending,
    NewArrivals): fixed ranked lists."""

    ranked = True

    def __init__(self, name: str, by: str | None, lists: dict[str, Scored]) -> None:
        self.name, self.by, self.lists = name, by, lists

    def scored(self, view: UserView, context: Mapping[str, object] | None) -> Scored:
        group = OVERALL
        if self.by is not None:
            value = context_value(view, context, self.by)
            if value is not None and value in self.lists:
                group = str(value)
        return self.lists.get(group, _nothing())


class Neighbours(Lookup):
    """Item-to-item sources: the user's seeds times their neighbours' scores, summed."""

    def __init__(self, source: NeighbourSource, vocabulary: Vocabulary) -> None:
        self.name = source.name
        self.recent_items = source.recent_items
        self.half_life = source.seed_half_life_days
        table = source.table
        rows = vocabulary.encode(table["item_id"].to_numpy())
        order = np.argsort(rows, kind="stable")  # table order kept within an item
        rows = rows[order]
        self.indptr = np.searchsorted(rows, np.arange(len(vocabulary) + 1))
        self.neighbours = vocabulary.encode(table["neighbour_id"].to_numpy()[order])
        self.scores = table["score"].to_numpy(np.float64)[order]

    def scored(self, view: UserView, context: Mapping[str, object] | None) -> Scored:
        # Seeds: newest first, ties by item id (the codes' order), the latest recent_items.
        order = np.lexsort((view.keys(view.items), -view.last))
        if self.recent_items is not None:
            order = order[: self.recent_items]
        seeds, last = view.items[order], view.last[order]
        known = seeds < len(self.indptr) - 1
        seeds, last = seeds[known], last[known]
        weights = (
            np.ones(len(seeds))
            if self.half_life is None
            else decay(view.ages(last), self.half_life)
        )
        starts, ends = self.indptr[seeds], self.indptr[seeds + 1]
        spans = [np.arange(a, b) for a, b in zip(starts, ends, strict=True)]
        if not spans or not sum(len(s) for s in spans):
            return _nothing()
        picked = np.concatenate(spans)
        values = np.repeat(weights, ends - starts) * self.scores[picked]
        # Sums per neighbour in the order training adds them (seed, then neighbour), over
        # the vocabulary at once: no sort of the pairs.
        neighbours = self.neighbours[picked]
        size = len(self.indptr) - 1
        sums = np.bincount(neighbours, weights=values, minlength=size)
        codes = np.flatnonzero(np.bincount(neighbours, minlength=size))
        return codes, sums[codes]


class Taste(Lookup):
    """AttributePopularity: the user's decayed weight per group, shrunk to everyone's."""

    def __init__(self, source: AttributePopularity, vocabulary: Vocabulary) -> None:
        self.name = source.name
        self.half_life, self.prior = source.half_life_days, source.prior
        self.max_groups = source.max_groups
        shares, groups = source.group_share, source.item_group
        # Groups without a share (no weight before the cut) still count in a user's total.
        named = set(shares["group"].astype(str)) | set(groups["group"].astype(str))
        self.groups = np.asarray(sorted(named), dtype=object)
        index = {g: n for n, g in enumerate(self.groups)}
        self.shares = np.zeros(len(self.groups))
        self.shares[[index[str(g)] for g in shares["group"]]] = shares["share"].to_numpy()
        self.item_group = np.full(len(vocabulary), -1, dtype=np.int64)
        codes = vocabulary.encode(groups["item_id"].to_numpy())
        mapped = np.array([index.get(str(g), -1) for g in groups["group"]], dtype=np.int64)
        self.item_group[codes[codes >= 0]] = mapped[codes >= 0]
        table = source.table
        self.lists: dict[int, Scored] = {}
        for group, part in table.groupby("group", sort=False):
            if str(group) in index:
                self.lists[index[str(group)]] = (
                    vocabulary.encode(part["item_id"].to_numpy()),
                    part["score"].to_numpy(np.float64),
                )

    def scored(self, view: UserView, context: Mapping[str, object] | None) -> Scored:
        known = view.codes < len(self.item_group)
        groups = np.where(known, self.item_group[np.where(known, view.codes, 0)], -1)
        mine = groups >= 0
        taste = view.weights[mine] * decay(view.ages(view.seconds[mine]), self.half_life)
        own = np.bincount(groups[mine], weights=taste, minlength=len(self.groups))
        total = float(taste.sum())
        values = (own + self.prior * self.shares) / (total + self.prior)
        order = np.lexsort((np.arange(len(values)), -values))[: self.max_groups]
        parts = [(self.lists[g][0], values[g] * self.lists[g][1]) for g in order if g in self.lists]
        if not parts:
            return _nothing()
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class Profiled(Lookup):
    """ProfilePopularity: everyone's shares times the lifts of the user's profile values,
    read from the request context (`profile_<column>`)."""

    def __init__(self, source: ProfilePopularity, vocabulary: Vocabulary) -> None:
        self.name, self.profile_columns = source.name, tuple(source.column_list)
        items = source.base["item_id"].to_numpy(object)
        self.codes = vocabulary.encode(items)
        self.log_base = np.log(source.base["score"].to_numpy(np.float64))
        self.lifts: dict[str, dict[str, np.ndarray]] = {}
        for (column, value), part in source.lift.groupby(["column", "value"], sort=False):
            lift = part.set_index("item_id")["lift"].reindex(items).to_numpy(np.float64)
            self.lifts.setdefault(str(column), {})[str(value)] = np.nan_to_num(lift)

    def scored(self, view: UserView, context: Mapping[str, object] | None) -> Scored:
        score = self.log_base
        for column in self.profile_columns:
            value = None if context is None else text(context.get(profile_key(column)))
            lift = self.lifts.get(column, {}).get(UNKNOWN if value is None else value)
            if lift is not None:
                score = score + lift
        return self.codes, np.exp(score)


class Again(Lookup):
    """BuyAgain: the user's own items, events then recency."""

    exclude_seen = False

    def __init__(self, source: BuyAgain) -> None:
        self.name, self.half_life = source.name, source.half_life_days

    def scored(self, view: UserView, context: Mapping[str, object] | None) -> Scored:
        return view.items, view.counts + decay(view.ages(view.last), self.half_life)


def lookup(source: Any, vocabulary: Vocabulary) -> Lookup:
    """The per-request form of a fitted source (see the module docstring)."""
    if isinstance(source, Popularity):
        return Listed(source.name, source.by, _lists(source.table, vocabulary))
    if isinstance(source, FixedList):
        table = source.table.assign(context=OVERALL)
        return Listed(source.name, None, _lists(table, vocabulary))
    if isinstance(source, NeighbourSource):
        return Neighbours(source, vocabulary)
    if isinstance(source, AttributePopularity):
        return Taste(source, vocabulary)
    if isinstance(source, ProfilePopularity):
        return Profiled(source, vocabulary)
    if isinstance(source, BuyAgain):
        return Again(source)
    raise ValueError(f"no per-request form for source {getattr(source, 'name', source)!r}")


def table_items(source: Any) -> list[np.ndarray]:
    """Every item id a fitted source's tables name (for the vocabulary)."""
    out = []
    for frame in source.artifact().values():
        for column in ("item_id", "neighbour_id"):
            if column in frame.columns:
                out.append(frame[column].astype(str).to_numpy(object))
    return out


def _lists(table: pd.DataFrame, vocabulary: Vocabulary) -> dict[str, Scored]:
    """Each context's list sorted as `base.top_n` sorts (score, then item id), once."""
    out = {}
    for context, part in table.groupby("context", sort=False):
        codes = vocabulary.encode(part["item_id"].to_numpy())
        scores = part["score"].to_numpy(np.float64)
        order = np.lexsort((codes, -scores))
        out[str(context)] = (codes[order], scores[order])
    return out


def _nothing() -> Scored:
    return np.zeros(0, dtype=np.int64), np.zeros(0)
