"""The HTTP API of one replica (OpenAPI at /docs): FastAPI routes over a `Replica`.

    POST /recommend     RecommendRequest -> RecommendResponse (graph: read, pipeline);
                        the cache write and served-log line go out after the response
    POST /events        one event, a list, or {"events": [...]} -> EventsResponse
    GET  /healthz       liveness          GET /readyz    model loaded (503 until then)
    GET  /metrics       Prometheus text   POST /admin/reload  switch model version (admin key)

Bodies are FastAPI body parameters validated by the pydantic models in serving.api; every
error body is an ErrorResponse (serving.errors); keys are dependencies (serving.auth);
past `max_in_flight` requests a replica answers 503 at once (serving.overload).
The FastAPI lifespan starts and stops the replica's background work (serving.lifecycle).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from serving import api
from serving.auth import ApiKeys
from serving.bundle import BundleError
from serving.content import register_content
from serving.errors import (
    AUTH_RESPONSES,
    ERROR,
    ERROR_RESPONSES,
    OVERLOADED,
    BodyLimit,
    install_error_handlers,
)
from serving.event_rules import EventRejected
from serving.graph import Answer, Request
from serving.lifecycle import Lifecycle
from serving.overload import Shedder, disconnected
from serving.personal import PersonalIds
from serving.replica import Replica
from tailwise.privacy import PrivacyError
from tailwise.versions import ModelNotFoundError, version_folder


def build_api(replica: Replica, lifecycle: Lifecycle, keys: ApiKeys) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        lifecycle.start()
        try:
            yield
        finally:
            lifecycle.stop()
            await replica.close()

    app = FastAPI(
        title="Tailwise",
        description="Personalised recommendations and real-time events.",
        version="1",
        lifespan=lifespan,
    )
    config, metrics = replica.config, replica.metrics
    install_error_handlers(app, on_disconnect=partial(disconnected, metrics))
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    # outermost: refuses before anything else runs
    app.add_middleware(
        Shedder,
        limit=config.max_in_flight,
        standing_limit=config.standing_limit,
        standing_seconds=config.standing_queue_ms / 1000,
        retry_after=config.retry_after_seconds,
        metrics=metrics,
        routes=lambda: app.routes,
    )
    _register(app, Routes(replica, lifecycle), keys)
    register_content(app, replica, keys)
    return app


def _register(app: FastAPI, routes: Routes, keys: ApiKeys) -> None:
    recommend_key, key = Depends(keys.for_recommend), Depends(keys.require)
    errors = {**ERROR_RESPONSES, **AUTH_RESPONSES, **OVERLOADED}
    app.post(
        "/recommend",
        response_model=api.RecommendResponse,
        dependencies=[recommend_key],
        responses=errors,
    )(routes.recommend)
    app.post(
        "/events",
        response_model=api.EventsResponse,
        status_code=202,
        dependencies=[key],
        responses=errors,
    )(routes.events)
    app.get("/healthz")(routes.healthz)
    app.get("/readyz")(routes.readyz)
    app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
    )(routes.metrics)
    app.delete(
        "/users/{user_id}",
        response_model=api.ErasureResponse,
        dependencies=[Depends(keys.admin)],
        responses={**errors, 503: {**ERROR, "description": "No pseudonymisation key"}},
    )(routes.forget)
    app.post(
        "/admin/reload",
        response_model=api.ReloadResponse,
        dependencies=[Depends(keys.admin)],
        responses={**errors, 404: {**ERROR, "description": "No such model version"}},
    )(routes.reload)


class Routes:
    """The handlers; every one counts its request in the replica's metrics."""

    def __init__(self, replica: Replica, lifecycle: Lifecycle) -> None:
        self.replica, self.lifecycle = replica, lifecycle
        self.personal = PersonalIds.for_replica(replica)
        self.served = 0
        sample = replica.config.log_feature_sample
        self.log_every = round(1 / sample) if sample else 0

    async def recommend(
        self, body: api.RecommendRequest, background: BackgroundTasks
    ) -> dict[str, Any]:
        """Top-k items for a user now, with a reason each; `degraded` when Redis is down."""
        started = time.perf_counter()
        self.served += 1
        graph = self.replica.graph  # one graph for the whole request, whatever a reload does
        req = _graph_request(self.personal.recommend(body))
        log = bool(self.log_every) and self.served % self.log_every == 0
        experiments = getattr(self.replica, "experiments", None)  # serving.experiments
        if experiments is None:
            answer, recorder = await graph.recommend(req, log_features=log), graph
        else:
            answer, recorder, routed = await experiments.recommend(graph, req, log)
            if routed is not None:
                background.add_task(experiments.log, self.replica.aclient, req, routed)
        self._observe(answer, cached=graph.cache.applies(req))
        if recorder is not None:
            background.add_task(recorder.record, req, answer)
        self.replica.metrics.count("/recommend", 200, time.perf_counter() - started)
        return answer.body

    async def events(self, body: api.EventsBody) -> dict[str, Any]:
        """One event, a list of them or {"events": [...]}: durably appended, real-time
        features updated."""
        started = time.perf_counter()
        replica, events = self.replica, self.personal.events(api.events_of(body))
        try:
            clean = replica.rules.clean(events, datetime.now(UTC))
        except EventRejected as exc:
            replica.metrics.events.labels(outcome="rejected").inc(len(events))
            raise HTTPException(422, {"error": str(exc), "detail": exc.problems}) from exc
        result = await asyncio.to_thread(replica.writer.write, clean.events)
        replica.metrics.events.labels(outcome="accepted").inc(result.accepted - result.spilled)
        replica.metrics.events.labels(outcome="spilled").inc(result.spilled)
        replica.metrics.count("/events", 202, time.perf_counter() - started)
        return {
            "accepted": result.accepted,
            "event_ids": result.event_ids,
            "spilled": result.spilled,
            "adjusted": clean.adjusted,
        }

    async def healthz(self) -> dict[str, str]:
        """The process is up (liveness)."""
        return {"status": "ok"}

    async def readyz(self) -> JSONResponse:
        """Ready: model and features loaded and a warm-up request passed."""
        graph = self.replica.graph
        body = {
            "ready": True,
            "model_version": graph.bundle.version,
            "degraded": graph.degraded,
            "spilled_events": self.replica.writer.spill.pending(),
        }
        return JSONResponse(body)

    async def metrics(self) -> Response:
        """Prometheus text format."""
        text = await asyncio.to_thread(self.replica.metrics.render)  # reads the streams
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    async def reload(self, body: api.ReloadRequest | None = None) -> dict[str, Any]:
        """Switch to another model version; requests keep being answered meanwhile."""
        started = time.perf_counter()
        try:
            folder = version_folder(self.replica.config.models_dir, body.version if body else None)
        except ModelNotFoundError as exc:
            raise HTTPException(404, {"error": str(exc)}) from exc
        previous = self.replica.graph.bundle.version
        try:
            await asyncio.to_thread(self.lifecycle.switch, folder.name)
        except BundleError as exc:
            raise HTTPException(422, {"error": str(exc)}) from exc
        await asyncio.to_thread(self.replica.record_version, folder.name)
        return {
            "previous": previous,
            "model_version": self.replica.graph.bundle.version,
            "seconds": round(time.perf_counter() - started, 3),
        }

    async def forget(
        self, user_id: Annotated[str, PathParam(min_length=1, max_length=128)]
    ) -> dict[str, Any]:
        """Erase a person online (Redis, caches, unconsumed streams, spill log) and record
        the erasure so a replay or an ingest cannot bring them back."""
        user = self.personal.user(user_id)
        try:
            removed = await asyncio.to_thread(self.replica.forget, user)
        except PrivacyError as exc:
            raise HTTPException(503, {"error": str(exc)}) from exc
        offline = f"run `tailwise forget --user {user_id}` for the tables and the DVC cache"
        return {"user_id": user, **removed, "offline": offline}

    def _observe(self, answer: Answer, cached: bool) -> None:
        metrics = self.replica.metrics
        metrics.observe_stages(answer.stages)
        if cached and not answer.body.get("degraded"):
            metrics.cache_outcome(answer.cache_hit)
        if answer.body.get("degraded"):
            metrics.degraded.inc()
        if answer.cold_start:
            metrics.cold_start.inc()
        if answer.known:
            metrics.answered(
                answer.known_cold_start, answer.without_features, answer.tower_fallback
            )


def _graph_request(body: api.RecommendRequest) -> Request:
    return Request(
        user_id=body.user_id,
        k=body.k,
        device=body.context.device,
        country=body.context.country,
        timestamp=body.context.timestamp,
        exclude=tuple(body.exclude),
        request_id=uuid.uuid4().hex,
        slot=body.slot,
    )
