"""Load shedding of one replica: a bounded number of requests in flight, a fast 503 past it.

    request --> Shedder: in flight < max_in_flight? --> the app (routes)
                                   no               --> 503 ErrorResponse, Retry-After,
                                                        counted in tailwise_shed_requests

An overloaded replica that queues answers everything late: at twice the rate it sustains,
requests waited seconds and clients gave up (bench/results/overload.md). Refusing at the
door keeps the accepted requests' latency near `max_in_flight` x the time one takes, and
the refusal costs no body read and no Redis call. GET routes (health, readiness, metrics,
the OpenAPI document) are never shed, so probes and scrapes still see the replica; nor are
the operators' /admin/* calls, which neither wait for nor take a slot (a reload under load
must go through, and its seconds of loading must not cost the traffic a slot).

Ray Serve's own limits stay behind this one as a backstop: `max_ongoing_requests` (above
`max_in_flight`, so requests reach the shedder) and `max_queued_requests` (past which Ray
answers 503 itself, text/plain, with the same Retry-After).

A client that goes away mid-request is not a server error: the replica counts it in
tailwise_client_disconnects and logs it at debug level.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match

from serving.metrics import ServingMetrics

logger = logging.getLogger("tailwise.serving")
NEVER_SHED = frozenset({"GET", "HEAD", "OPTIONS"})
OPERATORS = "/admin/"


class Shedder:
    """ASGI middleware: at most `limit` requests in flight, a 503 for the rest."""

    def __init__(
        self,
        app: Any,
        limit: int,
        retry_after: int,
        metrics: ServingMetrics,
        routes: Callable[[], Sequence[BaseRoute]] = list,
    ) -> None:
        self.app, self.limit, self.metrics, self.routes = app, limit, metrics, routes
        self.retry_after = str(retry_after)
        self.in_flight = 0

    def route(self, scope: Any) -> str:
        """The route template a request matches ("other" for none): a bounded label."""
        for route in self.routes():
            if route.matches(scope)[0] is Match.FULL:
                return str(getattr(route, "path", "other"))
        return "other"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in NEVER_SHED
            or scope["path"].startswith(OPERATORS)
        ):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.metrics.shed.labels(route=self.route(scope)).inc()
            await self._refuse(send)
            return
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            disconnected(self.metrics, self.route(scope))
        except asyncio.CancelledError:  # the server cancels a request whose client left
            disconnected(self.metrics, self.route(scope))
            raise
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.set(self.in_flight)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(
            {
                "error": f"overloaded: {self.limit} requests in flight; retry after "
                f"{self.retry_after} s",
                "detail": None,
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", self.retry_after.encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def disconnected(metrics: ServingMetrics, route: str) -> None:
    """A client left before its answer: counted, logged at debug level, not an error."""
    metrics.disconnects.labels(route=route).inc()
    logger.debug("client disconnected before the answer to %s", route)
