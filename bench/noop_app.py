"""A no-op Ray Serve app with the serving topology: the framework's latency floor.

One FastAPI ingress deployment, like `serving/ingress.py`, with the same routes and the
same pydantic request/response models (`serving.api`), but no features, models or Redis:
`POST /recommend` validates a `RecommendRequest` and returns k canned items, `POST /events`
validates an `Event` or an `EventBatch` and acknowledges it, `GET /healthz` answers ok.
What it costs is what HTTP + HAProxy/proxy + Ray Serve + FastAPI/pydantic cost on this
machine; bench/serve_load.py measures it next to the real app.

    from noop_app import build; serve.run(build(), route_prefix="/")

No `from __future__ import annotations` here: Ray Serve's class-based FastAPI view would
see the handler annotations as strings and take the body model for a query parameter.
"""

import hashlib
import itertools
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from serving.api import (
    Event,
    EventBatch,
    EventsResponse,
    RecommendedItem,
    RecommendRequest,
    RecommendResponse,
)

MODEL_VERSION = "noop"
CANNED = 100  # RecommendRequest.k is at most 100

fastapi_app = FastAPI(title="Tailwise no-op floor", version="0")


def event_id(event: Event) -> str:
    """The id serving gives an event without one (see the serving design)."""
    if event.event_id:
        return event.event_id
    key = f"{event.user_id}|{event.item_id}|{event.event_type}|{event.timestamp}"
    return "srv-" + hashlib.sha1(key.encode()).hexdigest()[:16]


# The deployment options serving.app.build gives the real ingress by default (ServingConfig:
# num_replicas=1, max_ongoing_requests=64; num_cpus=0), so only the handler work differs.
@serve.deployment(
    name="NoopIngress",
    num_replicas=1,
    max_ongoing_requests=64,
    ray_actor_options={"num_cpus": 0},
)
@serve.ingress(fastapi_app)
class NoopIngress:
    def __init__(self) -> None:
        self._items = [
            RecommendedItem(item_id=f"noop{n:04d}", score=1.0 - n / CANNED, reason="canned")
            for n in range(CANNED)
        ]
        # Request ids from a per-replica counter: no RNG on the request path.
        self._ids = itertools.count()

    @fastapi_app.post("/recommend", response_model=RecommendResponse)
    async def recommend(self, request: RecommendRequest) -> RecommendResponse:
        return RecommendResponse(
            request_id=f"noop-{next(self._ids)}",
            model_version=MODEL_VERSION,
            items=[i for i in self._items[: request.k] if i.item_id not in request.exclude],
        )

    @fastapi_app.post("/events", response_model=EventsResponse)
    async def events(self, body: Event | EventBatch) -> EventsResponse:
        batch = body.events if isinstance(body, EventBatch) else [body]
        return EventsResponse(accepted=len(batch), event_ids=[event_id(e) for e in batch])

    @fastapi_app.get("/healthz")
    async def healthz(self) -> dict[str, Any]:
        return {"status": "ok", "model_version": MODEL_VERSION}


def build() -> Application:
    """The no-op application, ready for `serve.run(..., route_prefix="/")`."""
    return NoopIngress.bind()  # type: ignore[attr-defined]
