"""Graceful overload (serving.overload): past `max_in_flight` a replica answers 503 at once,
with Retry-After, in the error shape, and counts it; a client that leaves is counted, not
an error. In process on a slow stand-in app, then a burst against the running app."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from email.message import Message
from typing import Any

import httpx
import pytest
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from serving.api import ErrorResponse
from serving.metrics import ServingMetrics
from serving.overload import Shedder
from tests.serving.conftest import ServedApp


def _value(metrics: ServingMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _slow_app(gate: asyncio.Event) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        if scope["path"] == "/leave":
            raise ClientDisconnect()
        if scope["method"] == "POST" and not scope["path"].startswith("/admin/"):
            await request.body()
            await gate.wait()
        await JSONResponse({"ok": True})(scope, receive, send)

    return app


@pytest.mark.unit
def test_past_the_limit_requests_get_a_fast_503_in_the_error_shape() -> None:
    async def run() -> tuple[list[httpx.Response], list[httpx.Response], ServingMetrics]:
        metrics, gate = ServingMetrics(), asyncio.Event()
        routes = [Route("/recommend", _slow_app(gate), methods=["POST"])]
        shedder = Shedder(_slow_app(gate), 3, 2, metrics, routes=lambda: routes)
        transport = httpx.ASGITransport(app=shedder)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            held = [asyncio.create_task(client.post("/recommend", json={})) for _ in range(3)]
            while shedder.in_flight < 3:
                await asyncio.sleep(0.001)
            started = time.perf_counter()
            refused = [await client.post("/recommend", json={}) for _ in range(5)]
            assert time.perf_counter() - started < 1.0  # refused without waiting for the 3
            probes = [await client.get("/metrics")]  # reads are never shed
            probes.append(await client.post("/admin/reload", json={}))  # nor operators' calls
            assert shedder.in_flight == 3  # ...which take no slot
            gate.set()
            return [*await asyncio.gather(*held), *probes], refused, metrics

    accepted, refused, metrics = asyncio.run(run())
    assert [r.status_code for r in accepted] == [200] * 5
    for response in refused:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "2"
        assert "overloaded" in ErrorResponse.model_validate(response.json()).error
    assert _value(metrics, "tailwise_shed_requests_total", route="/recommend") == 5
    assert _value(metrics, "tailwise_in_flight_requests") == 0


@pytest.mark.unit
def test_a_burst_passes_up_to_max_in_flight_and_a_standing_queue_is_cut_to_standing_in_flight() -> (
    None
):
    """In flight not below half of standing_in_flight for standing_seconds is a standing
    queue: the limit drops from max_in_flight to standing_in_flight until the queue drains,
    and bursts that drain in time keep the wide limit."""
    now = [0.0]

    async def run() -> list[tuple[float, int, int]]:
        metrics, gate = ServingMetrics(), asyncio.Event()
        shedder = Shedder(
            _slow_app(gate),
            8,
            1,
            metrics,
            standing_limit=4,
            standing_seconds=0.1,
            clock=lambda: now[0],
        )
        transport = httpx.ASGITransport(app=shedder)
        seen: list[tuple[float, int, int]] = []
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def arrive(n: int) -> list[asyncio.Task[httpx.Response]]:
                held = []
                for _ in range(n):
                    held.append(asyncio.create_task(client.post("/recommend", json={})))
                    await asyncio.sleep(0.005)  # let it be admitted or refused
                return held

            # a burst of 6 at t=0: under max_in_flight (8), all admitted
            burst = await arrive(6)
            seen.append((now[0], shedder.in_flight, sum(t.done() for t in burst)))
            now[0] = 0.05  # still a burst (< 0.1 s not drained): a 7th and 8th are admitted
            burst += await arrive(3)  # the 9th is past max_in_flight
            seen.append((now[0], shedder.in_flight, sum(t.done() for t in burst)))
            now[0] = 0.2  # in flight has stood at >= 2 for 0.2 s: standing queue
            late = await arrive(3)
            seen.append((now[0], shedder.in_flight, sum(t.done() for t in late)))
            gate.set()  # the queue drains ...
            await asyncio.gather(*burst, *late)
            gate.clear()
            now[0] = 0.25  # ... and the wide limit is back at once
            again = await arrive(5)
            seen.append((now[0], shedder.in_flight, sum(t.done() for t in again)))
            gate.set()
            await asyncio.gather(*again)
        return seen

    seen = asyncio.run(run())
    assert seen == [
        (0.0, 6, 0),  # 6 in flight, none refused
        (0.05, 8, 1),  # 8 in flight, the 9th refused at once
        (0.2, 8, 3),  # standing: all 3 refused (8 >= standing_in_flight 4)
        (0.25, 5, 0),  # drained, then a burst of 5 admitted again
    ]


@pytest.mark.unit
def test_work_after_the_answer_takes_no_slot() -> None:
    """A route's background work after its answer (cache write, served log) does not count
    as a request in flight: the client is no longer waiting."""
    seen: list[int] = []

    async def answer_then_work(scope: Any, receive: Any, send: Any) -> None:
        seen.append(shedder.in_flight)  # while it works on the answer
        await JSONResponse({"ok": True})(scope, receive, send)
        seen.append(shedder.in_flight)  # background work after the answer

    shedder = Shedder(answer_then_work, limit=1, retry_after=1, metrics=ServingMetrics())

    async def run() -> int:
        transport = httpx.ASGITransport(app=shedder)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.post("/recommend", json={})).status_code

    assert asyncio.run(run()) == 200
    assert seen == [1, 0]
    assert shedder.in_flight == 0


@pytest.mark.unit
def test_a_client_that_leaves_is_counted_not_raised() -> None:
    metrics = ServingMetrics()
    shedder = Shedder(_slow_app(asyncio.Event()), limit=3, retry_after=1, metrics=metrics)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/leave", "headers": [], "query_string": b""}
    asyncio.run(shedder(scope, receive, send))  # no exception escapes
    assert sent == []
    assert _value(metrics, "tailwise_client_disconnects_total", route="other") == 1
    assert shedder.in_flight == 0


def _post(url: str, body: dict[str, Any], timeout: float = 30) -> tuple[int, str, Message]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers  # case-insensitive lookups


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


@pytest.mark.slow
def test_a_burst_past_max_in_flight_gets_503s_and_no_500(served_app: ServedApp) -> None:
    """Bursts of 40 concurrent requests (at most 5 bursts, until one is refused) against a
    replica with max_in_flight=4: every answer is a 200 or a 503 with Retry-After, the app's
    in the error shape and counted, Ray's (past its slots and queue) in Ray's words."""
    url = served_app.url
    before = _metric(url, "tailwise_shed_requests_total")
    statuses: Counter[int] = Counter()
    refused: list[tuple[str, Message]] = []
    with ThreadPoolExecutor(max_workers=40) as pool:
        for burst in range(5):
            bodies = [{"user_id": f"burst-{burst}-{n}", "k": 10} for n in range(40)]
            for status, text, headers in pool.map(lambda b: _post(f"{url}/recommend", b), bodies):
                statuses[status] += 1
                if status == 503:
                    refused.append((text, headers))
            if refused:
                break
    assert set(statuses) <= {200, 503}, statuses
    assert refused, f"no request was refused: {statuses}"
    shed = 0
    for text, headers in refused:
        # Past Ray's own slots and queue (max_ongoing_requests + max_queued_requests) Ray
        # refuses before the app runs, in its own words; the app's 503s are in the error shape.
        if not text.startswith("Request dropped due to backpressure"):
            assert ErrorResponse.model_validate_json(text).error.startswith("overloaded")
            shed += 1
        assert headers.get("Retry-After") == str(served_app.config.retry_after_seconds)
    assert shed, "every 503 came from Ray's queue, none from the app's shedding"
    assert _metric(url, "tailwise_shed_requests_total") - before == shed
    # back to normal at once: a lone request is answered
    assert _post(f"{url}/recommend", {"user_id": "after-burst", "k": 5})[0] == 200


@pytest.mark.slow
def test_a_client_gone_mid_body_is_counted_as_a_disconnect(served_app: ServedApp) -> None:
    url = urllib.parse.urlsplit(served_app.url)
    before = _metric(served_app.url, "tailwise_client_disconnects_total")
    with socket.create_connection((url.hostname, url.port), timeout=10) as raw:
        raw.sendall(
            b"POST /recommend HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + b'{"user_id": "'
        )
        time.sleep(0.5)  # the replica is reading the body
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _metric(served_app.url, "tailwise_client_disconnects_total") > before:
            return
        time.sleep(0.3)
    raise AssertionError("the disconnect was not counted in tailwise_client_disconnects_total")
