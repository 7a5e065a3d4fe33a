"""One request through one model version, with Redis on `redis.asyncio`: two round trips.

    request --round trip 1 (a pipeline): cached response?, user features, purchased and
              seen sets, whether the user has history, their per-item history (when the
              version uses it)
      cached  --> the cached body
      else    --> serving.pipeline (no I/O) --> Answer
    after the response is out --round trip 2 (`record`): response cache, served log

If Redis cannot be reached the answer comes from memory (the user's last answer, else the
cold-start list) with degraded=True, and Redis is not tried again for `retry_after`
seconds, so an outage costs no request more than one timeout. `tailwise recommend` runs
the same graph for a file of users, without recording.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
import redis.asyncio

from serving.bundle import ModelBundle
from serving.config import ServingConfig
from serving.features import FeatureReader
from serving.history import UserHistory
from serving.keys import Keys
from serving.pipeline import DEGRADED, Answer, RecommendPipeline, Request, UserState
from serving.response_cache import LastAnswers, ResponseCache
from serving.served_log import ServedLog
from tailwise.redis_clients import CLUSTER_UNAVAILABLE

# Redis cannot answer now (on a cluster: also while a failover is under way): the request
# is answered from memory.
REDIS_DOWN: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    *CLUSTER_UNAVAILABLE,
)
WRITE_FAILED: tuple[type[Exception], ...] = (redis.RedisError, *CLUSTER_UNAVAILABLE)
logger = logging.getLogger("tailwise.serving")


class RecommendGraph:
    """Reads the user's state, runs the pipeline, records the answer."""

    def __init__(
        self,
        bundle: ModelBundle,
        reader: FeatureReader,
        client: redis.asyncio.Redis,
        keys: Keys,
        config: ServingConfig,
        retry_after: float = 1.0,
        record: bool = True,
    ) -> None:
        self.bundle, self.reader, self.client, self.keys = bundle, reader, client, keys
        self.config, self.retry_after = config, retry_after
        self.pipeline = RecommendPipeline(bundle, reader, config)
        self.cache = ResponseCache(keys, bundle.version, config.cache_ttl_seconds)
        self.served_log = ServedLog(keys, bundle.version)
        self.recording = record  # cache answers and log them to the served stream
        self.last = LastAnswers()
        self.down_until = 0.0

    @property
    def degraded(self) -> bool:
        return time.monotonic() < self.down_until

    def warm_up(self) -> None:
        self.pipeline.warm_up()

    async def recommend(self, req: Request, log_features: bool = False) -> Answer:
        """The answer for `req`; `record` it once the response is out."""
        started = time.perf_counter()
        if self.degraded:
            return self._fallback(req, started)
        try:
            state = await self._read(req)
        except REDIS_DOWN:
            self.down_until = time.monotonic() + self.retry_after
            return self._fallback(req, started)
        read = time.perf_counter() - started
        if state.cached is not None:
            answer = Answer(ResponseCache.hit(state.cached, req), cache_hit=True)
        else:
            answer = self.pipeline.answer(req, state, log_features)
        answer.stages["features"] = answer.stages.get("features", 0.0) + read
        answer.profile = state.features  # /content renders from them: no second read
        answer.cache_fields = state.cache_fields
        self.last.remember(req.user_id, answer.body)
        answer.stages["total"] = time.perf_counter() - started
        return answer

    async def profile(self, user_id: str) -> dict[str, Any]:
        """The user's online features, one round trip (for /content); empty while Redis is
        down, so content renders from what is left."""
        if self.degraded:
            return {}
        pipe = self.client.pipeline(transaction=False)
        self.reader.users.queue_read(pipe, user_id)
        try:
            (raw,) = await pipe.execute()
        except REDIS_DOWN:
            self.down_until = time.monotonic() + self.retry_after
            return {}
        return self.reader.users.decode(raw)

    async def record(self, req: Request, answer: Answer) -> None:
        """Cache the answer and log it to the served stream, one round trip; a Redis
        failure here only costs the cache entry and the log line."""
        if not self.recording or answer.cache_hit or answer.body.get("degraded"):
            return
        pipe = self.client.pipeline(transaction=False)
        if self.cache.applies(req):
            self.cache.queue_put(pipe, req, answer.body, answer.cache_fields)
        self.served_log.queue(pipe, req, answer)
        try:
            await pipe.execute()
        except WRITE_FAILED as exc:
            logger.warning("cache / served-log write failed: %s", exc)

    async def _read(self, req: Request) -> UserState:
        """One round trip: cached answer (when caching), user features, purchased and
        seen items (when excluded), whether any history key exists, the per-item history
        (when the version reads it)."""
        rules, keys, user = self.pipeline.rules, self.keys, req.user_id
        cached = self.cache.applies(req)
        reads_history = self.pipeline.reads_history
        pipe = self.client.pipeline(transaction=False)
        if cached:
            self.cache.queue_get(pipe, req)
        self.reader.users.queue_read(pipe, user)
        if rules.exclude_purchased:
            pipe.smembers(keys.purchased(user))
        if rules.exclude_seen:
            pipe.smembers(keys.seen(user))
        pipe.exists(keys.seen(user), keys.purchased(user), keys.history(user))
        if reads_history:
            pipe.hgetall(keys.history(user))
        reads_recent = self.pipeline.union is not None  # the union's sources read events
        if reads_recent:
            pipe.lrange(keys.recent(user), 0, -1)
        replies = iter(await pipe.execute())
        hit, fields = (next(replies), int(next(replies) or 0)) if cached else (None, 0)
        return UserState(
            cached=hit,
            cache_fields=fields,
            features=self.reader.users.decode(next(replies)),
            purchased=_strings(next(replies)) if rules.exclude_purchased else set(),
            seen=_strings(next(replies)) if rules.exclude_seen else set(),
            has_history=int(next(replies) or 0) > 0,
            history=UserHistory.decode(next(replies)) if reads_history else None,
            recent=list(next(replies) or []) if reads_recent else None,
        )

    def _fallback(self, req: Request, started: float) -> Answer:
        """Without Redis: the user's last answer, else the cold-start list."""
        last = self.last.recall(req)
        if last is not None:
            return Answer(last, {"total": time.perf_counter() - started})
        answer = self.pipeline.cold_start(req, set(req.exclude))
        answer.body["degraded"] = True
        answer.stages["total"] = time.perf_counter() - started
        if self.bundle.knows(req.user_id):  # all that can be told without Redis
            answer.known, answer.known_cold_start = True, DEGRADED
        return answer


def _strings(members: Any) -> set[str]:
    return {m.decode() if isinstance(m, bytes) else str(m) for m in members or ()}


__all__ = ["Answer", "RecommendGraph", "Request", "UserState"]
