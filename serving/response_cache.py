"""Answers kept for later: the response cache in Redis, and the last answers in memory.

ResponseCache  rec:<user> hash, field = fingerprint of what else the answer depends on
               (version, k, context, exclusions), value = the body as JSON, with a TTL;
               read in the request's round trip, written after the response is out.
               An event of the user deletes the hash (serving.events). A hash holds at
               most MAX_FIELDS answers: each write renews the TTL, so without the cap a
               client varying k, context or exclusions for one user would grow it
               without end; at the cap the hash starts again.
LastAnswers    the newest answer per user, in memory, bounded: what a request gets
               while Redis is down (with degraded=True).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any

from serving.keys import Keys
from serving.pipeline import Request

LAST_ANSWERS = 50_000
MAX_FIELDS = 16  # cached answers per user


class ResponseCache:
    """Cached /recommend bodies for requests at "now" (a given timestamp is not cached)."""

    def __init__(self, keys: Keys, version: str, ttl_seconds: int) -> None:
        self.keys, self.version, self.ttl_seconds = keys, version, ttl_seconds

    def applies(self, req: Request) -> bool:
        """Whether `req`'s answer is looked up in (and written to) the cache."""
        return self.ttl_seconds > 0 and req.timestamp is None

    def fingerprint(self, req: Request) -> str:
        """Cache field: what the answer depends on besides the user and their events."""
        parts: list[Any] = [self.version, req.k, req.device, req.country, sorted(req.exclude)]
        if req.sources is not None:  # a variant's candidate-source mix answers differently
            parts.append(list(req.sources))
        text = json.dumps(parts)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def queue_get(self, pipe: Any, req: Request) -> None:
        """Two replies: the cached body (or None), and how many answers the hash holds."""
        key = self.keys.rec(req.user_id)
        pipe.hget(key, self.fingerprint(req))
        pipe.hlen(key)

    def queue_put(self, pipe: Any, req: Request, body: dict[str, Any], fields: int = 0) -> None:
        """Write `req`'s answer; `fields` is the hash's size when it was read: at
        MAX_FIELDS the hash starts again, so it never holds many more."""
        key = self.keys.rec(req.user_id)
        if fields >= MAX_FIELDS:
            pipe.delete(key)
        pipe.hset(key, self.fingerprint(req), json.dumps({**body, "request_id": ""}))
        pipe.expire(key, self.ttl_seconds)

    @staticmethod
    def hit(raw: bytes, req: Request) -> dict[str, Any]:
        """The cached body, answering `req`."""
        return {**json.loads(raw), "request_id": req.request_id}


class LastAnswers:
    """The newest answer per user (least recently answered dropped past `size`)."""

    def __init__(self, size: int = LAST_ANSWERS) -> None:
        self.size = size
        self.answers: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def remember(self, user_id: str, body: dict[str, Any]) -> None:
        self.answers[user_id] = body
        self.answers.move_to_end(user_id)
        if len(self.answers) > self.size:
            self.answers.popitem(last=False)

    def recall(self, req: Request) -> dict[str, Any] | None:
        """The user's last answer for `req` (its exclusions left out, at most k items,
        degraded), or None."""
        last = self.answers.get(req.user_id)
        if last is None:
            return None
        excluded = set(req.exclude)
        kept = [i for i in last["items"] if i["item_id"] not in excluded][: req.k]
        return {**last, "items": kept, "request_id": req.request_id, "degraded": True}
