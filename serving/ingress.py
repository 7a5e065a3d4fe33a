"""The FastAPI ingress deployment: the HTTP API applications call, and the whole graph.

(No `from __future__ import annotations` here: FastAPI reads the route signatures of the
class-based ingress at runtime.)

Routes (OpenAPI at /docs): POST /recommend, POST /events, GET /healthz, GET /readyz,
GET /metrics, POST /admin/reload. The recommendation graph (serving.graph) runs inside
this deployment: a second deployment would add a hop of ~5 ms per request on 2 cores
(bench/results/serve_load.md measures the floor). Heavy things load once in __init__; a
background thread replays spilled events, follows model switches made by other replicas
and reloads item features after a materialisation.
"""

import asyncio
import functools
import gc
import itertools
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from ray import serve
from starlette.background import BackgroundTask

from serving import api
from serving.bundle import BundleError, load_bundle
from serving.config import ServingConfig
from serving.connection import Pending
from serving.events import ConsentBook, EventRejected, EventRules, EventWriter
from serving.features import FeatureReader, check_features
from serving.graph import RecommendGraph
from serving.graph import Request as GraphRequest
from serving.history import bootstrap_history
from serving.keys import Keys
from serving.metrics import ServingMetrics
from serving.spill import SpillLog
from tailwise.features.store import open_store
from tailwise.params import load_params
from tailwise.settings import Settings
from tailwise.versions import ModelNotFoundError, version_folder

logger = logging.getLogger("tailwise.serving")
JSON = "application/json"

app = FastAPI(
    title="Tailwise",
    description="Personalised recommendations and real-time events.",
    version="1",
)


@app.exception_handler(RequestValidationError)
async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    return _problems(list(exc.errors()))


@app.exception_handler(HTTPException)
async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
    body = exc.detail if isinstance(exc.detail, dict) else {"error": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


class BodyLimit:
    """413 for a declared Content-Length over the limit, before anything reads the body.

    Plain ASGI: Starlette's @app.middleware("http") wraps every request in a task group and
    memory streams: ~160 us of CPU per request, measured in process."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            limit = getattr(app.state, "max_body_bytes", 1_000_000)
            for name, value in scope["headers"]:
                if name == b"content-length":
                    if value.isdigit() and int(value) > limit:
                        length = value.decode()
                        error = f"request body of {length} bytes exceeds the limit of {limit} bytes"
                        await JSONResponse({"error": error}, status_code=413)(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)


SCHEMA_REF = "#/components/schemas/{model}"
# /recommend's body and key header in /docs: the handler reads both from the request itself.
RECOMMEND_DOCS = {
    "parameters": [
        {
            "name": "x-api-key",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "An API key; required when the server is configured so.",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": SCHEMA_REF.format(model="RecommendRequest")}}
        },
    },
}
EARLY = "tailwise.early"  # ASGI scope key: the validated /recommend body, its read sent


@dataclass(frozen=True)
class Early:
    """A /recommend body validated as it came in, and the graph's Redis read for it."""

    body: api.RecommendRequest
    sent: Pending | None  # None: not sent (no valid key where one is needed, Redis down)


class Prefetch:
    """POST /recommend: the body is validated as soon as it is in (one pydantic pass over
    the raw JSON) and the user's Redis read goes out then, so its round trip (~0.1 ms)
    overlaps the routing and the handler's start instead of following them.

    The handler takes both from the scope (`Early`) and declares no body or header
    parameter, so FastAPI neither parses nor validates the body again. With them (and the
    body parsed here a first time to send the read), routing to the response took ~160 us
    more CPU per request after a pause between requests, measured in process, and the
    app's p50 at 50 req/s was 0.15-0.17 ms higher (both ways alternating per request). A body
    that fails validation gets no read; the handler validates it again to say what is
    wrong. The handler's graph claims the read's replies when they are for the request it
    runs (RecommendGraph.recommend); unclaimed (a model switch in between), the next read
    on that connection reads past them (serving.connection): no request waits on them."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        start = getattr(app.state, "prefetch", None)
        if (
            start is None
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].endswith("/recommend")
        ):
            await self.app(scope, receive, send)
            return
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            early = start(message.get("body", b""), scope["headers"])
            if early is not None:
                scope[EARLY] = early
        first = [message]

        async def replay() -> Any:
            return first.pop() if first else await receive()

        await self.app(scope, replay, send)


app.add_middleware(Prefetch)
app.add_middleware(BodyLimit)  # outermost: a declared oversized body is never read


def _configure_middleware(
    max_body_bytes: int, prefetch: Callable[[bytes, Any], Early | None]
) -> None:
    """Hand the middlewares what they read. The deployment class below is pickled by value
    with copies of the module globals, `app` included, while the middlewares (and this
    function) are importable and see this module's own: setting `app.state` from the
    class would not reach them."""
    app.state.max_body_bytes = max_body_bytes
    app.state.prefetch = prefetch


# Everything the deployment uses is defined above it: @serve.deployment serialises the
# class when the module is imported, with the module globals that exist at that point.


def _api_keys(config: ServingConfig) -> list[str]:
    keys = list(config.api_keys) or [
        k.strip() for k in os.environ.get("TAILWISE_API_KEYS", "").split(",") if k.strip()
    ]
    if not keys:
        keys = [secrets.token_urlsafe(24)]
        logger.warning("TAILWISE_API_KEYS is not set: generated API key %s", keys[0])
    return keys


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise HTTPException(
            400, {"error": f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"}
        ) from exc


def _invalid_body(exc: ValidationError) -> RequestValidationError:
    """A body's validation errors as FastAPI gives a body parameter's (under "body")."""
    return RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()])


def _event_batch(payload: Any) -> api.EventBatch:
    try:
        if isinstance(payload, dict) and "events" in payload:
            return api.EventBatch.model_validate(payload)
        if isinstance(payload, list):
            return api.EventBatch.model_validate({"events": payload})
        return api.EventBatch(events=[api.Event.model_validate(payload)])
    except ValidationError as exc:
        raise _invalid_body(exc) from exc


async def _recommend_body(request: Request) -> api.RecommendRequest:
    """The /recommend body validated here, where Prefetch did not: one that failed there
    (the error says what is wrong) or one that came in pieces."""
    try:
        return api.RecommendRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise _invalid_body(exc) from exc


def _graph_request(body: api.RecommendRequest, request_id: str = "") -> GraphRequest:
    return GraphRequest(
        user_id=body.user_id,
        k=body.k,
        device=body.context.device,
        country=body.context.country,
        timestamp=body.context.timestamp,
        exclude=tuple(body.exclude),
        request_id=request_id,
    )


def _openapi(fastapi_app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema (kept until the routes change) plus the /recommend body's models,
    which no route parameter declares: Prefetch validates the body, RECOMMEND_DOCS
    refers to them."""
    schema = FastAPI.openapi(fastapi_app)
    models = schema.setdefault("components", {}).setdefault("schemas", {})
    if "RecommendRequest" not in models:
        body = api.RecommendRequest.model_json_schema(ref_template=SCHEMA_REF)
        models.update(body.pop("$defs", {}))
        models["RecommendRequest"] = body
    return schema


app.openapi = functools.partial(_openapi, app)  # type: ignore[method-assign]


async def _run_after(after: Callable[[], None]) -> None:
    """A response's deferred Redis writes; failing costs only the cache entry and log line."""
    try:
        after()
    except redis.RedisError as exc:
        logger.warning("cache / served-log write failed: %s", exc)


def _settle_heap() -> None:
    """Free what a model switch left behind, then freeze what is alive (gc.freeze).

    Ray Serve collects and freezes once after the replica starts
    (RAY_SERVE_FREEZE_GC_ON_STARTUP, on by default), so collections while serving skip the
    loaded models, TensorFlow, Feast and Ray: a full collection over them takes ~0.3-0.5 s
    here. A replaced model would stay frozen for good, cycles and all, and the new one
    would be walked again; so after a switch: unfreeze, collect, freeze."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _problems(errors: list[Any]) -> JSONResponse:
    detail = [
        {
            "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body",
            "problem": e.get("msg", "invalid"),
        }
        for e in errors
    ]
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse({"error": "malformed JSON body", "detail": detail}, status_code=400)
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in detail)
    return JSONResponse({"error": f"invalid request: {summary}", "detail": detail}, status_code=422)


@serve.deployment
@serve.ingress(app)
class Ingress:
    def __init__(self, config: dict[str, Any], settings: dict[str, Any]) -> None:
        self.config = ServingConfig.model_validate(config)
        self.settings = Settings.model_validate(settings)
        self.metrics = ServingMetrics()
        self.ready = False
        timeout = self.config.redis_timeout_seconds
        self.client = redis.Redis.from_url(
            self.settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self.store = open_store(self.settings)
        self.keys = Keys(self.store.project)
        self.api_keys = _api_keys(self.config)
        self.graph = self._load(self._wanted_version())
        self.writer = self._event_writer()
        self.served = 0
        # Request ids: 64 random bits per replica start, then a counter (uuid4 costs ~50 us
        # of CPU after a pause between requests; this ~20): 32 hex digits, like uuid4's.
        self._id_prefix, self._id_counter = secrets.token_hex(8), itertools.count()
        self._stop = threading.Event()
        self._swap = threading.Lock()
        threading.Thread(target=self._background, name="tailwise-background", daemon=True).start()
        _configure_middleware(self.config.max_body_bytes, self._early)
        self.ready = True
        logger.info("serving model %s (project %s)", self.graph.bundle.version, self.keys.project)

    # -- routes --------------------------------------------------------------------------

    @app.post("/recommend", response_model=api.RecommendResponse, openapi_extra=RECOMMEND_DOCS)
    async def recommend(self, request: Request) -> Response:
        """Top-k items for a user now, with a reason each; `degraded` when Redis is down.
        The body is a RecommendRequest (validated by Prefetch, or here)."""
        started = time.perf_counter()
        if self.config.require_key_for_recommend:
            self._authorise(request.headers.get("x-api-key"))
        early: Early | None = request.scope.get(EARLY)
        body = early.body if early is not None else await _recommend_body(request)
        self.served += 1
        every = round(1 / self.config.log_feature_sample) if self.config.log_feature_sample else 0
        answer = self.graph.recommend(
            _graph_request(body, f"{self._id_prefix}{next(self._id_counter):016x}"),
            log_features=bool(every) and self.served % every == 0,
            defer=True,
            prefetched=early.sent if early is not None else None,
        )
        self.metrics.observe_stages(answer.stages)
        if self.config.cache_ttl_seconds and body.context.timestamp is None:
            self.metrics.cache_outcome(answer.cache_hit)
        if answer.body.get("degraded"):
            self.metrics.degraded.inc()
        if answer.cold_start:
            self.metrics.cold_start.inc()
        if answer.known:
            self.metrics.answered(
                answer.known_cold_start, answer.without_features, answer.tower_fallback
            )
        self._count("/recommend", 200, started)
        # Cache + request log once the response is out, on this event loop: a coroutine,
        # so Starlette awaits it instead of handing a function to its thread pool (~60 us
        # of CPU per request, and a thread hand-off, measured in process). The body is
        # built by the graph in the response model's shape (tests/serving/test_app.py
        # holds it to the model), so it goes out as it is: FastAPI's validation and
        # re-serialisation of a returned dict cost more than the JSON encoding itself,
        # and orjson encodes it in a quarter of the json module's time.
        after = BackgroundTask(_run_after, answer.after) if answer.after is not None else None
        return Response(orjson.dumps(answer.body), media_type=JSON, background=after)

    @app.post("/events", response_model=api.EventsResponse, status_code=202)
    async def events(
        self, request: Request, x_api_key: str | None = Header(None)
    ) -> dict[str, Any]:
        """One event or {"events": [...]}: durably appended, real-time features updated."""
        started = time.perf_counter()
        self._authorise(x_api_key)
        batch = _event_batch(await _json(request))
        try:
            clean = self.rules.clean(batch.events, datetime.now(UTC))
        except EventRejected as exc:
            self.metrics.events.labels(outcome="rejected").inc(len(batch.events))
            raise HTTPException(422, {"error": str(exc), "detail": exc.problems}) from exc
        result = self.writer.write(clean.events)
        accepted = result.accepted - result.spilled
        self.metrics.events.labels(outcome="accepted").inc(accepted)
        self.metrics.events.labels(outcome="spilled").inc(result.spilled)
        self._count("/events", 202, started)
        return {
            "accepted": result.accepted,
            "event_ids": result.event_ids,
            "spilled": result.spilled,
            "adjusted": clean.adjusted,
        }

    @app.get("/healthz")
    async def healthz(self) -> dict[str, Any]:
        """The process is up (liveness)."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(self) -> JSONResponse:
        """Ready: model and features loaded and a warm-up request passed."""
        body = {
            "ready": self.ready,
            "model_version": self.graph.bundle.version,
            "degraded": self.graph.degraded,
            "spilled_events": self.writer.spill.pending(),
        }
        return JSONResponse(body, status_code=200 if self.ready else 503)

    @app.get("/metrics")
    async def prometheus(self) -> Response:
        """Prometheus text format."""
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.post("/admin/reload", response_model=api.ReloadResponse)
    async def reload(
        self, body: api.ReloadRequest | None = None, x_api_key: str | None = Header(None)
    ) -> dict[str, Any]:
        """Switch to another model version; requests keep being answered meanwhile."""
        self._authorise(x_api_key)
        started = time.perf_counter()
        version = body.version if body else None
        try:
            folder = version_folder(self.config.models_dir, version)
        except ModelNotFoundError as exc:
            raise HTTPException(404, {"error": str(exc)}) from exc
        previous = self.graph.bundle.version
        try:
            await asyncio.to_thread(self._switch, folder.name)
        except BundleError as exc:
            raise HTTPException(422, {"error": str(exc)}) from exc
        try:
            self.client.set(self.keys.model, folder.name)
        except redis.RedisError:
            logger.warning(
                "could not record model %s in Redis; other replicas keep theirs", folder.name
            )
        return {
            "previous": previous,
            "model_version": self.graph.bundle.version,
            "seconds": round(time.perf_counter() - started, 3),
        }

    # -- machinery ----------------------------------------------------------------------

    def _load(self, version: str | None) -> RecommendGraph:
        bundle = load_bundle(version_folder(self.config.models_dir, version))
        reader = FeatureReader(
            self.store, self.client, bundle.ranking_service, list(bundle.item_ids)
        )
        check_features(bundle, reader)
        graph = RecommendGraph(bundle, reader, self.client, self.keys, self.config)
        graph.warm_up()
        self.metrics.set_model(bundle.version)
        return graph

    def _early(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> Early | None:
        """A /recommend body validated and its graph's Redis read sent (Prefetch); None
        when the body is not valid (the handler says what is wrong). No read goes out
        when the key the request needs is not there."""
        try:
            request = api.RecommendRequest.model_validate_json(body)
        except ValidationError:
            return None
        if self.config.require_key_for_recommend:
            given = next((v for k, v in headers if k == b"x-api-key"), None)
            if given is None or not self._key_ok(given):
                return Early(request, None)
        return Early(request, self.graph.prefetch(_graph_request(request)))

    def _switch(self, version: str) -> None:
        with self._swap:
            if version == self.graph.bundle.version:
                return
            graph = self._load(version)
            graph.last = self.graph.last
            self.graph = graph  # one reference assignment: a request uses one graph throughout
            self.writer.online = graph.reader.users
            self.metrics.reloads.inc()
            _settle_heap()  # the old model's objects go, the new one's are frozen
            logger.info("switched to model %s", version)

    def _wanted_version(self) -> str | None:
        if self.config.model_version:
            return self.config.model_version
        try:
            wanted = self.client.get(self.keys.model)
        except redis.RedisError:
            return None
        if wanted is None:
            return None
        name = wanted.decode() if isinstance(wanted, bytes) else str(wanted)
        return name if (self.config.models_dir / name / "manifest.json").exists() else None

    def _event_writer(self) -> EventWriter:
        params = load_params(self.config.params_path).ingest
        clean = self.config.clean_dir
        consent = (
            ConsentBook.from_clean(clean, params)
            if (clean / "users.parquet").exists()
            else ConsentBook.empty(params)
        )
        self.rules = EventRules(params, consent)
        if (clean / "events").exists():
            loaded = bootstrap_history(self.client, self.keys, clean)
            logger.info("history bootstrap: %d users", loaded)
        items = self.graph.reader.items.columns
        categories = dict(zip(items["item_id"], items["category"], strict=True))
        spill = SpillLog(self.config.spill_dir / self.keys.project)
        return EventWriter(self.client, self.keys, self.graph.reader.users, categories, spill)

    def _background(self) -> None:
        last_model_check = last_items_check = 0.0
        while not self._stop.wait(0.5):
            now = time.monotonic()
            try:
                if self.writer.spill.has_pending():
                    replayed = self.writer.replay()
                    if replayed:
                        logger.info("replayed %d spilled event(s)", replayed)
                if now - last_model_check > 2:
                    last_model_check = now
                    wanted = self._wanted_version()
                    if wanted and wanted != self.graph.bundle.version:
                        self._switch(wanted)
                if now - last_items_check > 10:
                    last_items_check = now
                    self.graph.reader.refresh_items()
            except (redis.RedisError, OSError, BundleError) as exc:
                logger.warning("background task: %s", exc)

    def _authorise(self, key: str | None) -> None:
        # Starlette decodes headers as latin-1: back to the bytes sent, which compare_digest
        # takes whatever they hold (a str with non-ASCII characters would raise).
        if key is None or not self._key_ok(key.encode("latin-1")):
            raise HTTPException(401, {"error": "missing or invalid X-API-Key header"})

    def _key_ok(self, key: bytes) -> bool:
        return any(secrets.compare_digest(key, k.encode()) for k in self.api_keys)

    def _count(self, route: str, status: int, started: float) -> None:
        self.metrics.count(route, status, time.perf_counter() - started)

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
