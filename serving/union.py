"""Serving a version trained with training.ranker.candidates: union.

    version/sources/ (tailwise.candidates.artifacts) --UnionServing.load--> the fitted
        sources as per-request lookups (tailwise.candidates.online.OnlineUnion), and the
        ranker's union settings (ranker.json: n_per_source, n_candidates, two_tower_source)
    per request: the user's events (`user_events`: the recent list's events as they are,
        the history hash for what the list no longer holds) + the request time, device
        and country (+ the query tower's top n_per_source when the two-tower was a source)
      --UnionServing.candidates--> Candidates in the model's item order, fused order, and
        the ranker columns of the union's features (retrieval_score / retrieval_rank are
        the fused score and rank, as in training)

Nothing of the union's definition lives here: sources, fusion and features are
tailwise.candidates' (the parity tests hold the per-request form to training's rows).
Items the union proposes that the model cannot serve (outside its catalogue, or excluded
by the request) leave after fusion, so every other item keeps training's fused rank.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from serving.bundle import SOURCES_DIR, ModelBundle
from serving.history import UserHistory
from serving.retrieval import Candidates, retrieve
from tailwise.candidates.features import NEW_USER, new_user_scores
from tailwise.candidates.online import OnlineUnion, UnionRows
from tailwise.candidates.profile import request_profile
from tailwise.candidates.requests import CONTEXT_COLUMNS, UserEvents

TWO_TOWER = "two_tower"  # the name training gives the two-tower source (training.union)
FUSED = {"retrieval_score": "fused_score", "retrieval_rank": "fused_rank"}


class SourceMixError(ValueError):
    """A variant names candidate sources the version does not have."""


@dataclass
class UnionServing:
    """A union version's sources and settings, prepared once at load."""

    union: OnlineUnion
    n_per_source: int
    n_candidates: int
    two_tower: bool
    exclude_seen: bool
    _mixes: dict[tuple[str, ...], OnlineUnion] = field(default_factory=dict)

    @classmethod
    def load(cls, bundle: ModelBundle) -> UnionServing:
        config = bundle.ranker_config
        union = OnlineUnion.from_folder(
            bundle.folder / SOURCES_DIR, catalogue=list(bundle.item_ids)
        )
        return cls(
            union,
            int(config.get("n_per_source", 100)),
            int(config.get("n_candidates", 200)),
            bool(config.get("two_tower_source", True)),
            not bundle.allow_repeats,
        )

    @property
    def names(self) -> list[str]:
        return self.union.names + ([TWO_TOWER] if self.two_tower else [])

    def mix(self, sources: Sequence[str] | None, field_name: str = "sources") -> OnlineUnion:
        """The union over `sources` only (None: all); SourceMixError names `field_name`
        and the version's sources when one is unknown."""
        if sources is None:
            return self.union
        key = tuple(s for s in sources if s != TWO_TOWER)
        unknown = sorted(set(sources) - set(self.names))
        if unknown or not sources:
            raise SourceMixError(
                f"{field_name}: {unknown or 'an empty list'} — the version's candidate "
                f"sources are {self.names}"
            )
        if key not in self._mixes:
            self._mixes[key] = self.union.restricted(key)
        return self._mixes[key]

    def candidates(
        self,
        bundle: ModelBundle,
        row: dict[str, Any],
        events: UserEvents,
        ts: float,
        exclude: Collection[str] = (),
        sources: Sequence[str] | None = None,
    ) -> tuple[Candidates, UnionRows]:
        """The fused candidates the model can serve, best first, and their union rows."""
        union = self.mix(sources)
        extra = {}
        if self.two_tower and (sources is None or TWO_TOWER in sources):
            found = retrieve(bundle, row, self.n_per_source, exclude)
            extra[TWO_TOWER] = (found.catalogue[found.rows], found.scores)
        context = {c: row.get(f"request_{c}") for c in CONTEXT_COLUMNS}
        context.update(request_profile(row, union.profile_columns))
        rows = union.rows(
            events, ts, self.n_per_source, self.n_candidates, context, self.exclude_seen, extra
        )
        positions = bundle.item_positions
        at = np.fromiter((positions.get(i, -1) for i in rows.items), dtype=np.intp, count=len(rows))
        if exclude:
            at[np.isin(rows.items, list(exclude))] = -1
        kept = np.flatnonzero(at >= 0)
        rows = UnionRows(rows.items[kept], {k: v[kept] for k, v in rows.columns.items()})
        return Candidates(bundle.item_ids, rows.columns["fused_score"], at[kept]), rows

    def scores(self, bundle: ModelBundle, rows: UnionRows, ranked: np.ndarray) -> np.ndarray:
        """The version's scores of `rows` from the ranker's (`ranked`): people with no event
        follow the version's new-user order when it has one (new_user_scores)."""
        order = bundle.new_user_order
        if order is None or order not in rows.columns:
            return ranked
        return new_user_scores(ranked, rows.columns[NEW_USER], rows.columns[order])

    def columns(self, bundle: ModelBundle, rows: UnionRows) -> dict[int, np.ndarray]:
        """Ranker column -> per-candidate values of the union's features."""
        out = {}
        for j, name in enumerate(bundle.ranker_features):
            source = FUSED.get(name, name)
            if source in rows.columns:
                out[j] = rows.columns[source]
        return out


def user_events(history: UserHistory | None, recent: Sequence[Any] = ()) -> UserEvents:
    """The user's events from Redis: each entry of the recent list (newest events, JSON of
    clean events) as it is, and for every item of the history hash the events the list
    does not hold, at the item's newest time but no later than the list's oldest event.

    Exact while the list holds the whole history (up to keys.RECENT_MAX events, kept for
    RECENT_TTL_SECONDS after the last one); beyond it the hash keeps the per-item counts
    and newest times exact, and the older events' times, weights and kinds are unknown."""
    listed = [json.loads(e) for e in recent]
    items = [str(e["item_id"]) for e in listed]
    seconds = [_epoch(e["timestamp"]) for e in listed]
    # A clean event without a weight weighs nothing, as in training (base.check_events).
    weights = [0.0 if e.get("weight") is None else float(e["weight"]) for e in listed]
    kinds = [str(e.get("event_type") or "").lower() for e in listed]
    context = {c: [e.get(c) for e in listed] for c in CONTEXT_COLUMNS}
    if history is not None and len(history):
        oldest = min(seconds) if seconds else np.inf
        held = {i: items.count(i) for i in set(items)}
        for item, count, last in zip(history.items, history.counts, history.last, strict=True):
            missing = int(count) - held.get(str(item), 0)
            when = min(float(last), oldest) if np.isfinite(last) else oldest
            for _ in range(max(missing, 0)):
                items.append(str(item))
                seconds.append(when)
                weights.append(1.0)
                kinds.append("")
                for c in CONTEXT_COLUMNS:
                    context[c].append(None)
    return UserEvents(
        np.asarray(items, dtype=object),
        np.asarray(seconds, dtype=np.float64),
        np.asarray(weights, dtype=np.float64),
        np.asarray(kinds, dtype=object),
        {c: np.asarray(v, dtype=object) for c, v in context.items()},
    )


def _epoch(value: Any) -> float:
    """Epoch seconds of an event's ISO time (UTC when it names no zone, as ingest writes)."""
    stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
