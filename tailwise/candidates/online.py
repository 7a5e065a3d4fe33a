"""A version's candidate union for one request: the rows `candidate_features` gives, in numpy.

    read_sources(version/sources) --OnlineUnion.from_sources--> item vocabulary, each
        source's Lookup (tailwise.candidates.lookups) and ItemStats as arrays, built once
    UserEvents + request time + context (+ frames of sources that live elsewhere, e.g. the
        two-tower retriever: ranked (item ids, scores))
      --OnlineUnion.rows(n, keep)--> UnionRows: the fused top `keep` items, best first, and
        every column of `features.feature_names(names)` for them

The steps are those of `features.candidate_features` over `features.source_frames` for one
user (union of each source's top n, reciprocal-rank fusion, ties by item id, ItemStats
and the user's history features at the request time); tests/candidates/test_requests.py
holds the two to the same items and values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tailwise.candidates.artifacts import read_sources
from tailwise.candidates.base import DAY_SECONDS, positive_int
from tailwise.candidates.features import (
    FUSION_K,
    POPULARITY_DAYS,
    PURCHASE,
    ItemStats,
    feature_names,
)
from tailwise.candidates.lookups import Lookup, lookup, table_items
from tailwise.candidates.requests import UserEvents, UserView, Vocabulary, top

WEEK_SECONDS = 7 * DAY_SECONDS


@dataclass
class UnionRows:
    """One user's fused candidates, best first, and their feature columns (float64)."""

    items: np.ndarray  # object: item ids
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.items)


class OnlineUnion:
    """Fitted sources and item stats prepared once; `rows` per request."""

    def __init__(
        self, sources: Sequence[Any], item_stats: ItemStats, catalogue: Sequence[str] = ()
    ) -> None:
        """`catalogue`: further item ids a source given by the caller may propose (the
        two-tower's items)."""
        ids = [i for s in sources for i in table_items(s)]
        ids.append(np.asarray([str(i) for i in catalogue], dtype=object))
        ids.append(item_stats.table["item_id"].astype(str).to_numpy(object))
        self.vocabulary = Vocabulary(np.concatenate(ids) if ids else np.zeros(0, object))
        self.lookups: list[Lookup] = [lookup(s, self.vocabulary) for s in sources]
        self.cut = item_stats.cut
        self.stats = _stats_arrays(item_stats, self.vocabulary)

    @classmethod
    def from_folder(cls, folder: Path, catalogue: Sequence[str] = ()) -> OnlineUnion:
        """The sources a version stored with `write_sources` (one of them ItemStats)."""
        loaded = read_sources(Path(folder))
        stats = [s for s in loaded if isinstance(s, ItemStats)]
        if len(stats) != 1:
            raise ValueError(f"{folder}: expected one item_stats table, found {len(stats)}")
        return cls([s for s in loaded if not isinstance(s, ItemStats)], stats[0], catalogue)

    @property
    def names(self) -> list[str]:
        return [lk.name for lk in self.lookups]

    @property
    def profile_columns(self) -> list[str]:
        """The profile columns this union's sources read from the request context."""
        return list(dict.fromkeys(c for lk in self.lookups for c in lk.profile_columns))

    def restricted(self, names: Sequence[str]) -> OnlineUnion:
        """The same union over the named sources only (in this union's order)."""
        unknown = sorted(set(names) - set(self.names))
        if unknown:
            raise ValueError(f"unknown source(s) {unknown}; this version has {self.names}")
        out = object.__new__(OnlineUnion)
        vars(out).update(vars(self))
        out.lookups = [lk for lk in self.lookups if lk.name in set(names)]
        return out

    def rows(
        self,
        events: UserEvents,
        at: float,
        n: int,
        keep: int | None = None,
        context: Mapping[str, object] | None = None,
        exclude_seen: bool = True,
        extra: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> UnionRows:
        """The user's union at epoch seconds `at` (see the module docstring). `extra`:
        ranked (item ids, scores) of further sources, unioned after this union's own."""
        n = positive_int(n, "union rows: n")
        view = UserView(events, self.vocabulary, at)
        frames = []
        for source in self.lookups:
            codes, scores = source.scored(view, context)
            exclude = exclude_seen and source.exclude_seen
            frames.append((source.name, *top(view, codes, scores, n, exclude, source.ranked)))
        for name, (ids, scores) in (extra or {}).items():
            frames.append((name, *_encoded(view, ids, scores, n)))
        return self._features(view, frames, n, keep)

    def _features(
        self,
        view: UserView,
        frames: list[tuple[str, np.ndarray, np.ndarray]],
        n: int,
        keep: int | None,
    ) -> UnionRows:
        every = np.unique(np.concatenate([f[1] for f in frames])) if frames else np.zeros(0, int)
        columns: dict[str, np.ndarray] = {}
        proposed = np.zeros(len(every))
        fused = np.zeros(len(every))
        for name, codes, scores in frames:
            at = np.searchsorted(every, codes)
            score, rank, norm = (np.full(len(every), np.nan) for _ in range(3))
            score[at], rank[at], norm[at] = scores, np.arange(1.0, len(codes) + 1), _norm(scores)
            present = ~np.isnan(rank)
            proposed += present
            fused += np.where(present, 1.0 / (FUSION_K + np.where(present, rank, 0.0)), 0.0)
            columns |= {
                f"{name}_score": score,
                f"{name}_rank": np.where(present, rank, n + 1.0),
                f"{name}_norm": norm,
            }
        order = np.lexsort((view.keys(every), -fused))
        if keep is not None:
            order = order[: positive_int(keep, "union rows: keep")]
        columns = {k: v[order] for k, v in columns.items()}
        columns |= {
            "n_sources": proposed[order],
            "fused_score": fused[order],
            "fused_rank": np.arange(1.0, len(order) + 1),
        }
        codes = every[order]
        columns |= self._item_columns(codes, view.at) | _user_columns(view, len(codes))
        names = feature_names([f[0] for f in frames])
        return UnionRows(view.name(codes), {k: columns[k] for k in names})

    def _item_columns(self, codes: np.ndarray, at: float) -> dict[str, np.ndarray]:
        known = codes < len(self.vocabulary)
        rows = np.where(known, codes, 0)
        out = {}
        for name, values in self.stats.items():
            column = np.where(known, values[rows], np.nan if name == "first_seen" else 0.0)
            out[name] = column
        first = out.pop("first_seen")
        result = {"item_seen_days": (at - first) / DAY_SECONDS}
        for days in POPULARITY_DAYS:
            result[f"item_pop_{days}d"] = out[f"pop_{days}d"]
        result["item_pop_all"] = out["pop_all"]
        result["item_trend"] = (out["pop_7d"] / 7.0 + 1.0) / (out["pop_28d"] / 28.0 + 1.0)
        return result


def _stats_arrays(item_stats: ItemStats, vocabulary: Vocabulary) -> dict[str, np.ndarray]:
    """ItemStats' table per vocabulary code (NaN first-seen, 0 counts where absent)."""
    table = item_stats.table
    codes = vocabulary.encode(table["item_id"].to_numpy())
    first = table["first_seen"]
    first_seconds = (
        first.dt.tz_convert("UTC") if first.dt.tz is not None else first.dt.tz_localize("UTC")
    ).astype("int64").to_numpy() / 1e9
    out = {"first_seen": np.full(len(vocabulary), np.nan)}
    out["first_seen"][codes] = first_seconds
    for name in [*(f"pop_{d}d" for d in POPULARITY_DAYS), "pop_all"]:
        out[name] = np.zeros(len(vocabulary))
        out[name][codes] = table[name].to_numpy(np.float64)
    return out


def _user_columns(view: UserView, rows: int) -> dict[str, np.ndarray]:
    """features.USER_FEATURES of the user, repeated for every candidate."""
    events = len(view.seconds)
    if events:
        values = {
            "user_events": float(events),
            "user_items": float(len(view.items)),
            "user_events_7d": float(np.sum(view.seconds >= view.at - WEEK_SECONDS)),
            "user_days_since_last": (view.at - view.seconds.max()) / DAY_SECONDS,
            "user_days_since_first": (view.at - view.seconds.min()) / DAY_SECONDS,
            "user_purchase_share": float(np.mean(view.kinds == PURCHASE)),
        }
    else:  # no history: zero counts; recency and share unknown
        values = dict.fromkeys(("user_events", "user_items", "user_events_7d"), 0.0)
        values |= dict.fromkeys(
            ("user_days_since_last", "user_days_since_first", "user_purchase_share"), np.nan
        )
    return {name: np.full(rows, value) for name, value in values.items()}


def _norm(scores: np.ndarray) -> np.ndarray:
    """Within-user [0, 1] scaling of one source's scores (1 when all are equal)."""
    if not len(scores):
        return scores
    low, high = scores.min(), scores.max()
    return (scores - low) / (high - low) if high > low else np.ones(len(scores))


def _encoded(view: UserView, ids: np.ndarray, scores: np.ndarray, n: int):
    """A ranked frame given as item ids, in this request's codes (first n, ids once)."""
    codes = view.vocabulary.encode(np.asarray(ids, dtype=object))
    if (codes < 0).any():
        raise ValueError("a further source proposed items outside the sources' vocabulary")
    _, first = np.unique(codes[:n], return_index=True)
    first = np.sort(first)
    return codes[:n][first], np.asarray(scores, dtype=np.float64)[:n][first]
