"""The recommendation pipeline of one request: what the user's state read from Redis becomes.

    UserState (read by serving.graph in one round trip)
      known user   --context (on-demand view)--> retrieval (query tower, top N, plus the
                   user's past items when repeats are allowed) --ranking (cross and
                   history features, XGBoost)--> rules --> top-up --> reasons
      unknown user --cold start: popular for the request's device and country--> rules
    A union version (training.ranker.candidates: union) takes its candidates and their
    source features from its own fitted sources instead of retrieval (serving.union), for
    known and new users alike, and ranks them the same way; people with no event follow
    the version's new-user order instead when its check chose one.

No I/O: the pipeline takes the state and returns an `Answer`; serving.graph reads the state,
serving.response_cache and serving.served_log write what follows. A user is known when they
have any online feature, any history in Redis (seen, purchased or history keys) or an id the
query tower learned; a known user is always answered by the model, also without features
(`Answer.without_features`). Should the model path fail for a known user, they get the
cold-start list and `Answer.known_cold_start` says why. Lists are topped up past the
diversity limit, then from popular and catalogue items (serving.popular), so a known user
gets k items whenever the catalogue minus what is excluded allows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from serving.bundle import ModelBundle
from serving.config import ServingConfig
from serving.features import FeatureReader
from serving.history import UserHistory
from serving.popular import PopularLists, answer_body
from serving.ranking import ItemBlock, OnDemandItems, ranking_matrix, with_columns
from serving.retrieval import Candidates, retrieve
from serving.rules import reasons
from serving.union import UnionServing, user_events
from tailwise.candidates.online import UnionRows
from tailwise.repeats import HISTORY_FEATURES

logger = logging.getLogger("tailwise.serving")
PAST_ITEM_SHARE = 4  # up to n_candidates // 4 past items join the candidates (repeats)
MODEL_ERROR, DEGRADED = "model_error", "degraded"  # why a known user got the cold start
MODEL_FAILURES = (ValueError, TypeError, IndexError, KeyError, FloatingPointError)


@dataclass
class Request:
    user_id: str
    k: int = 10
    device: str | None = None
    country: str | None = None
    timestamp: datetime | None = None
    exclude: tuple[str, ...] = ()
    request_id: str = ""
    slot: str | None = None  # where the application shows the list (experiment exposures)
    sources: tuple[str, ...] | None = None  # a variant's candidate-source mix (union versions)


@dataclass
class Answer:
    """One response body plus what the caller measures and logs."""

    body: dict[str, Any]
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage
    cache_hit: bool = False
    cold_start: bool = False
    features: dict[str, Any] | None = None  # sampled feature vector for the served log
    known: bool = False  # features, history or a learned id: the model answers
    known_cold_start: str | None = None  # why a known user got the cold-start list anyway
    without_features: bool = False  # a known user answered with no online feature at all
    tower_fallback: bool = False  # the SavedModel embedded the query (serving.bundle)
    profile: dict[str, Any] | None = None  # the user's online features as read (/content)
    cache_fields: int = 0  # answers the user's response-cache hash held when read


@dataclass
class UserState:
    """What one round trip reads about the requesting user."""

    features: dict[str, Any]
    cached: bytes | None
    purchased: set[str]
    seen: set[str]
    has_history: bool  # any seen, purchased or history key
    history: UserHistory | None  # when the version reads it
    recent: list[Any] | None = None  # the recent list's events (a union version reads them)
    cache_fields: int = 0  # answers in the user's response-cache hash (when caching)


class RecommendPipeline:
    """features -> retrieval -> ranking -> rules for one model version, no I/O."""

    def __init__(self, bundle: ModelBundle, reader: FeatureReader, config: ServingConfig):
        self.bundle, self.reader, self.config = bundle, reader, config
        self.rules = config.rules.for_version(bundle.allow_repeats)  # exclusions settled
        # The per-item history: for the ranker's history features, and past items as
        # candidates when repeats are allowed.
        self.reads_history = (
            bool(bundle.history_features)
            or bundle.allow_repeats
            or bundle.history_input is not None  # the query tower reads the latest items
        )
        self.popular = PopularLists(bundle, reader, config.rules)
        # A union version's sources, as per-request lookups (serving.union).
        self.union = UnionServing.load(bundle) if bundle.candidates_mode == "union" else None
        self.reads_history |= self.union is not None
        self._on_demand: tuple[Any, ItemBlock, OnDemandItems] | None = None

    def answer(self, req: Request, state: UserState, log_features: bool = False) -> Answer:
        """The answer for `req` from the user's `state` (its cached answer excepted)."""
        ts = int((req.timestamp or datetime.now(UTC)).timestamp())
        exclude = set(req.exclude) | state.purchased | state.seen
        featured = any(v is not None for v in state.features.values())
        known = featured or state.has_history or self.bundle.knows(req.user_id)
        # A union version's sources answer new users too (popularity by context, trending):
        # its ranker learned from those lists, so they are its cold start.
        if not known and self.union is None:
            return self.cold_start(req, exclude)
        try:
            answer = self._personal(req, state, ts, exclude, log_features)
        except MODEL_FAILURES as exc:  # counted and logged; the user still gets a list
            logger.exception("model path failed for a known user: %s", exc)
            answer = self.cold_start(req, exclude)
            answer.known_cold_start = MODEL_ERROR
        answer.known, answer.without_features = known, known and not featured
        return answer

    def cold_start(self, req: Request, exclude: set[str]) -> Answer:
        ids, scores, why = self.popular.cold_start(req.k, req.device, req.country, exclude)
        body = answer_body(req.request_id, self.bundle.version, ids, scores, why)
        return Answer(body, cold_start=True)

    def warm_up(self) -> None:
        """Run the personal path once (TensorFlow traces, XGBoost loads) before traffic."""
        ts = int(datetime.now(UTC).timestamp())
        empty = dict.fromkeys(self.reader.user_feature_names)
        state = UserState(empty, None, set(), set(), False, UserHistory.decode(None))
        self._personal(Request("\x00warm-up", 10), state, ts, set(), False)

    def _personal(
        self, req: Request, state: UserState, ts: int, exclude: set[str], log_features: bool
    ) -> Answer:
        stages: dict[str, float] = {}
        t0 = time.perf_counter()
        row = self.reader.with_context(state.features, req.device, req.country, ts)
        row["user_id"] = req.user_id
        recent = self.bundle.history_input
        if recent is not None:  # the query tower reads the user's latest items
            history = state.history or UserHistory.decode(None)
            row[recent.name] = history.latest(recent.length)
        stages["features"] = time.perf_counter() - t0
        candidates, union_columns, union_rows = self._candidates(req, state, row, ts, exclude)
        t1 = time.perf_counter()
        stages["retrieval"] = t1 - t0 - stages["features"]
        block = self.popular.block()
        X = ranking_matrix(self.bundle, block, row, self._on_demand_items(block, ts), candidates)
        X = with_columns(X, union_columns)
        if self.bundle.history_features:
            X = with_columns(X, self._history_columns(state, candidates, ts))
        scores = self.bundle.rank(X) if len(candidates) else np.zeros(0)
        if union_rows is not None and self.union is not None and len(candidates):
            scores = self.union.scores(self.bundle, union_rows, scores)
        t2 = time.perf_counter()
        stages["ranking"] = t2 - t1
        ids, chosen, why = self._choose(req, exclude, block, candidates, X, scores)
        stages["rules"] = time.perf_counter() - t2
        body = answer_body(req.request_id, self.bundle.version, ids, chosen, why)
        features = None
        if log_features:
            features = {k: _plain(row.get(k)) for k in self.bundle.ranker_features if k in row}
        return Answer(body, stages, features=features, tower_fallback=self.bundle.tower is None)

    def _candidates(
        self, req: Request, state: UserState, row: dict[str, Any], ts: int, exclude: set[str]
    ) -> tuple[Candidates, dict[int, np.ndarray], UnionRows | None]:
        """The query tower's top N (plus past items when repeats are allowed), or a union
        version's fused candidates with their source features (ranker column -> values)
        and rows."""
        if self.union is not None:
            events = user_events(state.history, state.recent or ())
            found, rows = self.union.candidates(
                self.bundle, row, events, float(ts), exclude, req.sources
            )
            return found, self.union.columns(self.bundle, rows), rows
        n = self.config.n_candidates
        past = (
            state.history.favourites(n // PAST_ITEM_SHARE)
            if state.history is not None and self.bundle.allow_repeats
            else []
        )
        return retrieve(self.bundle, row, n, exclude, include=past), {}, None

    def _choose(
        self,
        req: Request,
        exclude: set[str],
        block: ItemBlock,
        candidates: Candidates,
        X: np.ndarray,
        scores: np.ndarray,
    ) -> tuple[list[str], list[float], list[str]]:
        """The rules over the ranked candidates, their reasons, and a top-up when short.
        Retrieval left `exclude` out already: the rules need not look for it."""
        table, codes = self.popular.category_rules()
        pos, adjusted = table.choose_full(scores, codes[candidates.rows], req.k)
        rows = candidates.rows[pos]
        why = (
            reasons(
                self.bundle.contributions(X[pos]),
                self.bundle.ranker_features,
                {k: v[rows] for k, v in block.text.items()},
                block.missing[rows],
            )
            if len(pos)
            else []
        )
        ids, chosen = candidates.catalogue[rows].tolist(), adjusted.tolist()
        if len(ids) < req.k:  # too few candidates passed: popular, then catalogue items
            more, more_scores, more_why = self.popular.top_up(
                req.k, req.device, req.country, exclude | set(ids), chosen
            )
            ids, chosen, why = ids + more, chosen + more_scores, why + more_why
        return ids, chosen, why

    def _history_columns(
        self, state: UserState, candidates: Candidates, ts: int
    ) -> dict[int, np.ndarray]:
        """Ranker column -> per-candidate values of the history features the ranker
        reads, from the user's per-item counts and newest times at request time `ts`."""
        history = state.history or UserHistory.decode(None)
        values = history.features(candidates.catalogue[candidates.rows], float(ts))
        names = self.bundle.ranker_features
        return {
            names.index(name): values[:, k]
            for k, name in enumerate(HISTORY_FEATURES)
            if name in self.bundle.history_features
        }

    def _on_demand_items(self, block: ItemBlock, ts: int) -> OnDemandItems:
        """Per-item on-demand values at `ts` in the model's item order; they change once
        per second (the reader computes them over the catalogue), so they are reordered
        once per second too."""
        values = self.reader.catalogue_on_demand(ts)
        cached = self._on_demand
        if cached is None or cached[0] is not values or cached[1] is not block:
            cached = self._on_demand = (values, block, block.on_demand(values))
        return cached[2]


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return value
