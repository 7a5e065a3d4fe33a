"""Load shedding of one replica: a bounded number of requests in flight, a fast 503 past it.

    request --> Shedder: in flight < the limit? --> the app (routes)
                                   no           --> 503 ErrorResponse, Retry-After,
                                                    counted in tailwise_shed_requests

    the limit: max_in_flight while the queue drains (a burst), standing_in_flight once
    in flight has not fallen below half of standing_in_flight for standing_queue_ms (a
    standing queue: the arrivals outrun the replica)

A burst and an overload look the same for a moment and need opposite answers. Bursts at a
rate the replica sustains queue for a few ms and drain, and refusing them would turn normal
traffic into errors; a count limit tight enough to keep the accepted requests fast under
overload refuses some of every burst (bench/results/overload_settings.md). So the replica admits up
to `max_in_flight` while the queue keeps draining, and only when it has not drained (in
flight below half of `standing_in_flight`) for `standing_queue_ms` (the idea of CoDel,
Nichols and Jacobson 2012, on a count instead of a sojourn time) does it refuse past
`standing_in_flight`; the first moment the queue drains it admits bursts again. Drained is
below half the standing limit, not below the limit itself: a replica held at the limit
dips under it with every answer, and would go back to admitting bursts each time.

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
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match

from serving.metrics import ServingMetrics

logger = logging.getLogger("tailwise.serving")
NEVER_SHED = frozenset({"GET", "HEAD", "OPTIONS"})
OPERATORS = "/admin/"


class Shedder:
    """ASGI middleware: at most `limit` requests in flight (`standing_limit` once in flight
    has not fallen below half of it for `standing_seconds`), a 503 for the rest."""

    def __init__(
        self,
        app: Any,
        limit: int,
        retry_after: int,
        metrics: ServingMetrics,
        routes: Callable[[], Sequence[BaseRoute]] = list,
        standing_limit: int | None = None,
        standing_seconds: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app, self.limit, self.metrics, self.routes = app, limit, metrics, routes
        self.standing_limit = limit if standing_limit is None else min(standing_limit, limit)
        self.standing_seconds, self.clock = standing_seconds, clock
        self.retry_after = str(retry_after)
        self.in_flight = 0
        self.drained_below = max(1, self.standing_limit // 2)
        self.drained_at = clock()  # the last moment in flight was below drained_below

    def current_limit(self) -> int:
        """max_in_flight while the queue drains, standing_in_flight under a standing queue."""
        now = self.clock()
        if self.in_flight < self.drained_below:
            self.drained_at = now
        standing = now - self.drained_at > self.standing_seconds
        return self.standing_limit if standing else self.limit

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
        limit = self.current_limit()
        if self.in_flight >= limit:
            self.metrics.shed.labels(route=self.route(scope)).inc()
            await self._refuse(send, limit)
            return
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)
        answered = False

        def done() -> None:  # once per request: its answer is sent, or it ended without one
            nonlocal answered
            if not answered:
                answered = True
                self.in_flight -= 1
                self.metrics.in_flight.set(self.in_flight)
                if self.in_flight < self.drained_below:
                    self.drained_at = self.clock()

        async def send_then_count(message: Any) -> None:
            await send(message)
            # the answer's last part: from here on the client is not waiting, and the
            # route's background work (cache write, served log) takes no slot
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done()

        try:
            await self.app(scope, receive, send_then_count)
        except ClientDisconnect:
            disconnected(self.metrics, self.route(scope))
        except asyncio.CancelledError:  # the server cancels a request whose client left
            disconnected(self.metrics, self.route(scope))
            raise
        finally:
            done()

    async def _refuse(self, send: Any, limit: int) -> None:
        body = json.dumps(
            {
                "error": f"overloaded: {limit} requests in flight; retry after "
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
