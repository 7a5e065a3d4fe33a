"""The inference graph of one request, fused in one process: no network hop between stages.

    request --one Redis round trip: cached response?, user features, purchased/seen sets,
              whether the user has history, their per-item history (when the version
              uses it) (sent ahead with `prefetch` where the caller has the request early)
      known user   --context (on-demand view)--> retrieval (query tower, top N, plus the
                   user's past items when repeats are allowed) --ranking (cross and
                   history features, XGBoost)--> rules --> top-up --> reasons
      unknown user --cold start: popular for the request's device and country--> rules
      --one Redis round trip: cache the response, log it to the `served` stream-->

A user is known when they have any online feature, any history in Redis (seen, purchased
or history keys) or an id the query tower learned; a known user is always answered by the
model, also without features (`Answer.without_features`, counted in /metrics). Should a
known user still get the cold-start list (Redis down with no earlier answer, or the model
failing on their row), `Answer.known_cold_start` says why and /metrics and `tailwise
recommend` count it. Lists are topped up past the diversity limit, then from popular and
catalogue items, so a known user gets k items whenever the catalogue minus what is
excluded allows. Whether the user's purchased and seen items are excluded follows the
version's `recommend.allow_repeats` unless the rules config says otherwise.

If Redis cannot be reached the answer comes from memory (the user's last response, else
the cold-start list) with degraded=True, and Redis is not tried again for `retry_after`
seconds, so an outage costs no request more than one timeout. `tailwise recommend` runs
the same `RecommendGraph` for a file of users.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import redis

from serving.bundle import ModelBundle
from serving.config import ServingConfig
from serving.connection import Pending, RequestConnection
from serving.features import FeatureReader
from serving.history import UserHistory
from serving.keys import Keys
from serving.ranking import ItemBlock, OnDemandItems, ranking_matrix, with_columns
from serving.retrieval import Candidates, retrieve
from serving.rules import CategoryRules, Ranked, reasons
from tailwise.features.online import resp_command
from tailwise.repeats import HISTORY_FEATURES

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
logger = logging.getLogger("tailwise.serving")
SERVED_MAXLEN = 1_000_000
LAST_RESPONSES = 50_000
POPULAR_CONTEXTS = 256
PAST_ITEM_SHARE = 4  # up to n_candidates // 4 past items join the candidates (repeats)
MODEL_ERROR, DEGRADED = "model_error", "degraded"  # why a known user got the cold start


@dataclass
class Answer:
    """One response body plus what the caller measures and logs."""

    body: dict[str, Any]
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage
    cache_hit: bool = False
    cold_start: bool = False
    features: dict[str, Any] | None = None  # sampled feature vector for the request log
    after: Callable[[], None] | None = None  # deferred cache write + request log (see defer)
    known: bool = False  # features, history or a learned id: the model answers
    known_cold_start: str | None = None  # why a known user got the cold-start list anyway
    without_features: bool = False  # a known user answered with no online feature at all
    tower_fallback: bool = False  # the SavedModel embedded the query (serving.bundle)


@dataclass
class UserState:
    """What one round trip reads about the requesting user."""

    features: dict[str, Any]
    cached: bytes | None
    purchased: set[str]
    seen: set[str]
    has_history: bool  # any seen, purchased or history key
    history: UserHistory | None  # when the version reads it


@dataclass
class Request:
    user_id: str
    k: int = 10
    device: str | None = None
    country: str | None = None
    timestamp: datetime | None = None
    exclude: tuple[str, ...] = ()
    request_id: str = ""

    def fingerprint(self, version: str) -> str:
        """Cache field: what the answer depends on besides the user and their events."""
        text = json.dumps([version, self.k, self.device, self.country, sorted(self.exclude)])
        return hashlib.sha1(text.encode()).hexdigest()[:16]


class RecommendGraph:
    """features -> retrieval -> ranking -> rules for one request at a time."""

    def __init__(
        self,
        bundle: ModelBundle,
        reader: FeatureReader,
        client: redis.Redis,
        keys: Keys,
        config: ServingConfig,
        retry_after: float = 1.0,
        record: bool = True,
    ) -> None:
        self.bundle, self.reader, self.client, self.keys = bundle, reader, client, keys
        self.config, self.retry_after = config, retry_after
        self.rules = config.rules.for_version(bundle.allow_repeats)  # exclusions settled
        # The per-item history: for the ranker's history features, and past items as
        # candidates when repeats are allowed.
        self.reads_history = bool(bundle.history_features) or bundle.allow_repeats
        self.record = record  # cache answers and log them to the served stream
        self.down_until = 0.0
        self.line = RequestConnection(client)  # the request path's reads
        self.block: ItemBlock | None = None
        # (block, rules per category of the item table, the block's items' category codes)
        self.category_rules: tuple[ItemBlock, CategoryRules, np.ndarray] | None = None
        self.on_demand: tuple[Any, ItemBlock, OnDemandItems] | None = None
        self.last: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.popular: OrderedDict[tuple[str | None, str | None], Any] = OrderedDict()
        self.popular_rules: Any = None  # the CategoryRules `popular` was coded for

    @property
    def degraded(self) -> bool:
        return time.monotonic() < self.down_until

    def recommend(
        self,
        req: Request,
        log_features: bool = False,
        defer: bool = False,
        prefetched: Pending | None = None,
    ) -> Answer:
        """The answer for `req`. With `defer`, caching it and logging it to the served
        stream is left to `answer.after()`, for the caller to run once the response is out.
        `prefetched`: `prefetch(req)`'s send, when the caller made one."""
        started = time.perf_counter()
        if self.degraded:
            return self._fallback(req, started)
        try:
            answer = self._recommend(req, log_features, defer, prefetched)
        except REDIS_DOWN:
            self.down_until = time.monotonic() + self.retry_after
            return self._fallback(req, started)
        answer.stages["total"] = time.perf_counter() - started
        return answer

    def _recommend(
        self, req: Request, log_features: bool, defer: bool, prefetched: Pending | None
    ) -> Answer:
        t0 = time.perf_counter()
        state = self._read(req, prefetched)
        if state.cached is not None:
            body = {**json.loads(state.cached), "request_id": req.request_id}
            self._remember(req.user_id, body)
            return Answer(body, {"features": time.perf_counter() - t0}, cache_hit=True)
        ts = int((req.timestamp or datetime.now(UTC)).timestamp())
        exclude = set(req.exclude) | state.purchased | state.seen
        featured = any(v is not None for v in state.features.values())
        known = featured or state.has_history or self.bundle.knows(req.user_id)
        if not known:
            answer = self._cold_start(req, exclude)
            answer.stages["features"] = time.perf_counter() - t0
        else:
            try:
                answer = self._personal(req, state, ts, exclude, log_features, t0)
            except (ValueError, TypeError, IndexError, KeyError, FloatingPointError) as exc:
                # counted and logged; the user still gets a list
                logger.exception("model path failed for a known user: %s", exc)
                answer = self._cold_start(req, exclude)
                answer.known_cold_start = MODEL_ERROR
            answer.known = True
            answer.without_features = not featured
        self._remember(req.user_id, answer.body)
        if defer:
            answer.after = lambda: self.store(req, answer)
        else:
            self.store(req, answer)
        return answer

    def warm_up(self) -> None:
        """Run the personal path once (TensorFlow traces, XGBoost loads) before traffic."""
        ts = int(datetime.now(UTC).timestamp())
        empty = dict.fromkeys(self.reader.user_feature_names)
        state = UserState(empty, None, set(), set(), False, UserHistory.decode(None))
        self._personal(Request("\x00warm-up", 10), state, ts, set(), False, time.perf_counter())

    def prefetch(self, req: Request) -> Pending | None:
        """Send `req`'s read now; `recommend(req, prefetched=...)` reads its replies, so
        the round trip overlaps whatever runs in between (serving.ingress.Prefetch).
        None when Redis is down (as a read would, it starts the degraded spell)."""
        if self.degraded:
            return None
        try:
            return self.line.send(self._read_commands(req))
        except REDIS_DOWN:
            self.down_until = time.monotonic() + self.retry_after
            return None
        except redis.RedisError:  # e.g. refused at connect: the request's own read says
            return None

    def _cached(self, req: Request) -> bool:
        """Whether `req`'s answer is looked up in (and written to) the response cache."""
        return self.config.cache_ttl_seconds > 0 and req.timestamp is None

    def _read_commands(self, req: Request) -> list[bytes]:
        """Cached answer (when caching), user features, purchased and seen items (when
        excluded), whether any history key exists, the per-item history (when read)."""
        rules, keys, user = self.rules, self.keys, req.user_id
        commands: list[bytes] = []
        if self._cached(req):
            fingerprint = req.fingerprint(self.bundle.version)
            commands.append(resp_command("HGET", keys.rec(user), fingerprint))
        commands.append(self.reader.users.read_command(user))
        if rules.exclude_purchased:
            commands.append(resp_command("SMEMBERS", keys.purchased(user)))
        if rules.exclude_seen:
            commands.append(resp_command("SMEMBERS", keys.seen(user)))
        commands.append(
            resp_command("EXISTS", keys.seen(user), keys.purchased(user), keys.history(user))
        )
        if self.reads_history:
            commands.append(resp_command("HGETALL", keys.history(user)))
        return commands

    def _read(self, req: Request, prefetched: Pending | None) -> UserState:
        """One round trip (or `prefetched`'s, when it sent the same commands): cached
        answer, user features, purchased and seen items, history."""
        commands = self._read_commands(req)
        if (
            prefetched is not None
            and prefetched.line is self.line  # not sent by the graph before a model switch
            and prefetched.commands == commands
        ):
            replies = iter(self.line.receive(prefetched))
        else:
            replies = iter(self.line.round_trip(commands))
        rules = self.rules
        cached = next(replies) if self._cached(req) else None
        user = self.reader.users.decode(next(replies))
        purchased = _strings(next(replies)) if rules.exclude_purchased else set()
        seen = _strings(next(replies)) if rules.exclude_seen else set()
        has_history = int(next(replies) or 0) > 0
        history = UserHistory.decode(next(replies)) if self.reads_history else None
        return UserState(user, cached, purchased, seen, has_history, history)

    def _personal(
        self,
        req: Request,
        state: UserState,
        ts: int,
        exclude: set[str],
        log_features: bool,
        t0: float,
    ) -> Answer:
        stages: dict[str, float] = {}
        row = self.reader.with_context(state.features, req.device, req.country, ts)
        row["user_id"] = req.user_id
        t1 = time.perf_counter()
        stages["features"] = t1 - t0
        n = self.config.n_candidates
        past = (
            state.history.favourites(n // PAST_ITEM_SHARE)
            if state.history is not None and self.bundle.allow_repeats
            else []
        )
        candidates = retrieve(self.bundle, row, n, exclude, include=past)
        t2 = time.perf_counter()
        stages["retrieval"] = t2 - t1
        block = self._block()
        X = ranking_matrix(self.bundle, block, row, self._on_demand(block, ts), candidates)
        if self.bundle.history_features:
            X = with_columns(X, self._history_columns(state, candidates, ts))
        scores = self.bundle.rank(X) if len(candidates) else np.zeros(0)
        t3 = time.perf_counter()
        stages["ranking"] = t3 - t2
        # Retrieval left `exclude` out already: the rules need not look for it.
        table, codes = self._category_rules()
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
        ids, chosen_scores = candidates.catalogue[rows].tolist(), adjusted.tolist()
        if len(ids) < req.k:  # too few candidates passed: popular, then catalogue items
            more, more_scores, more_why = self._top_up(req, exclude | set(ids), chosen_scores)
            ids, chosen_scores, why = ids + more, chosen_scores + more_scores, why + more_why
        stages["rules"] = time.perf_counter() - t3
        body = self._body(req, ids, chosen_scores, why)
        features = None
        if log_features:
            features = {k: _plain(row.get(k)) for k in self.bundle.ranker_features if k in row}
        return Answer(body, stages, features=features, tower_fallback=self.bundle.tower is None)

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

    def _top_up(
        self, req: Request, taken: set[str], scores: list[float]
    ) -> tuple[list[str], list[float], list[str]]:
        """Items to fill a list the candidates left short of `req.k`: popular items for
        the request's context, then the rest of the catalogue in the model's order, none
        of `taken` nor of an excluded category; scored below the list's lowest score so
        the response stays in score order."""
        need = req.k - len(scores)
        ids, _, codes, table = self._popular_in_context(req)
        _, catalogue_codes = self._category_rules()
        pool = np.concatenate([ids, self.bundle.item_ids]).astype(object)
        pool_codes = np.concatenate([codes, catalogue_codes]).astype(np.int64)
        dropped = np.array([str(i) in taken for i in pool], np.bool_)
        _, first = np.unique(pool.astype(str), return_index=True)  # each item once
        repeated = np.ones(len(pool), np.bool_)
        repeated[first] = False
        order = -np.arange(len(pool), dtype=np.float64)  # popular first, then catalogue
        pos, _ = table.choose(order, pool_codes, need, dropped | repeated, diverse=False)
        low = min(scores) if scores else 0.0
        more = [str(i) for i in pool[pos]]
        why = "popular right now"
        return more, [low - 1.0 - n for n in range(len(more))], [why] * len(more)

    def _block(self) -> ItemBlock:
        stamp = (self.bundle.version, self.reader.items.stamp)
        if self.block is None or self.block.stamp != stamp:
            self.block = ItemBlock.build(
                self.bundle, self.reader.items, self.reader.request_item_features
            )
        return self.block

    def _category_rules(self) -> tuple[CategoryRules, np.ndarray]:
        """The rules per category of the item table, and the category code of each of the
        model's items (`ItemBlock` order), rebuilt with the block."""
        block = self._block()
        found = self.category_rules
        if found is None or found[0] is not block:
            table = CategoryRules.build(
                self.config.rules, self.reader.items.columns.get("category", ())
            )
            found = self.category_rules = (block, table, table.encode(block.text["category"]))
        return found[1], found[2]

    def _on_demand(self, block: ItemBlock, ts: int) -> OnDemandItems:
        """Per-item on-demand values at `ts` in the model's item order; they change once
        per second (the reader computes them over the catalogue), so they are reordered
        once per second too."""
        values = self.reader.catalogue_on_demand(ts)
        cached = self.on_demand
        if cached is None or cached[0] is not values or cached[1] is not block:
            cached = self.on_demand = (values, block, block.on_demand(values))
        return cached[2]

    def _cold_start(self, req: Request, exclude: set[str]) -> Answer:
        ids, scores, codes, table = self._popular_in_context(req)
        dropped = np.array([i in exclude for i in ids], np.bool_) if exclude else None
        pos, adjusted = table.choose_full(scores, codes, req.k, dropped)
        chosen = Ranked(ids[pos].tolist(), adjusted.tolist(), pos.tolist())
        where = " ".join(
            p
            for p in (
                f"on {req.device}" if req.device else "",
                f"in {req.country}" if req.country else "",
            )
            if p
        )
        why = f"popular {where}".strip() if where else "popular right now"
        ids_, scores_, why_ = chosen.item_ids, chosen.scores, [why] * len(chosen.item_ids)
        if len(ids_) < req.k:  # a short popular list: the rest of the catalogue
            more, more_scores, more_why = self._top_up(req, exclude | set(ids_), scores_)
            ids_, scores_, why_ = ids_ + more, scores_ + more_scores, why_ + more_why
        body = self._body(req, ids_, scores_, why_)
        return Answer(body, cold_start=True)

    def _popular_in_context(
        self, req: Request
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, CategoryRules]:
        """(ids, scores, category codes, the rules they are coded for) of the popular list
        for the request's context, kept per context until the item table is reloaded or
        the model switches (blended once per context, not per request)."""
        table, _ = self._category_rules()
        if self.popular_rules is not table:
            self.popular.clear()
            self.popular_rules = table
        key = (req.device, req.country)
        found = self.popular.get(key)
        if found is None:
            ids, scores = self._popular(req)
            categories = self.reader.items.lookup(list(ids))["category"]
            found = self.popular[key] = (ids, scores, table.encode(categories), table)
            if len(self.popular) > POPULAR_CONTEXTS:  # contexts are free text: bounded
                self.popular.popitem(last=False)
        return found

    def _popular(self, req: Request) -> tuple[np.ndarray, np.ndarray]:
        blended = self.bundle.cold_start.scores(req.device, req.country)
        if len(blended):
            return blended.index.to_numpy(object), blended.to_numpy(np.float64)
        rank = self.reader.items.columns.get("item_popularity_rank_7d")
        ids = self.reader.items.columns["item_id"]
        if rank is None:
            return ids, np.zeros(len(ids))
        score = -np.nan_to_num(np.asarray(rank, dtype=np.float64), nan=1e9)
        order = np.argsort(-score, kind="stable")
        return ids[order], score[order]

    def _fallback(self, req: Request, started: float) -> Answer:
        last = self.last.get(req.user_id)
        if last is not None:
            kept = [i for i in last["items"] if i["item_id"] not in set(req.exclude)][: req.k]
            body = {**last, "items": kept, "request_id": req.request_id, "degraded": True}
            return Answer(body, {"total": time.perf_counter() - started})
        answer = self._cold_start(req, set(req.exclude))
        answer.body["degraded"] = True
        answer.stages["total"] = time.perf_counter() - started
        if self.bundle.knows(req.user_id):  # all that can be told without Redis
            answer.known, answer.known_cold_start = True, DEGRADED
        return answer

    def _body(
        self, req: Request, ids: list[str], scores: list[float], why: list[str]
    ) -> dict[str, Any]:
        return {
            "request_id": req.request_id,
            "model_version": self.bundle.version,
            "items": [
                {"item_id": i, "score": round(float(s), 6), "reason": r}
                for i, s, r in zip(ids, scores, why, strict=True)
            ],
            "degraded": False,
        }

    def store(self, req: Request, answer: Answer) -> None:
        """Cache the answer and log it to the served stream, one round trip; a Redis
        failure here only costs the cache entry and the log line."""
        if not self.record:
            return
        pipe = self.client.pipeline(transaction=False)
        if self._cached(req):
            key = self.keys.rec(req.user_id)
            pipe.hset(
                key,
                req.fingerprint(self.bundle.version),
                json.dumps({**answer.body, "request_id": ""}),
            )
            pipe.expire(key, self.config.cache_ttl_seconds)
        entry = {
            "request_id": req.request_id,
            "ts": datetime.now(UTC).isoformat(),
            "user_id": req.user_id,
            "model_version": self.bundle.version,
            "k": req.k,
            "device": req.device,
            "country": req.country,
            "items": [i["item_id"] for i in answer.body["items"]],
            "scores": [i["score"] for i in answer.body["items"]],
            "cold_start": answer.cold_start,
            "features": answer.features,
        }
        pipe.xadd(
            self.keys.served, {"r": json.dumps(entry)}, maxlen=SERVED_MAXLEN, approximate=True
        )
        pipe.execute()

    def _remember(self, user_id: str, body: dict[str, Any]) -> None:
        self.last[user_id] = body
        self.last.move_to_end(user_id)
        if len(self.last) > LAST_RESPONSES:
            self.last.popitem(last=False)


def _strings(members: Any) -> set[str]:
    return {m.decode() if isinstance(m, bytes) else str(m) for m in members or ()}


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return value


__all__ = ["Answer", "Candidates", "RecommendGraph", "Request"]
