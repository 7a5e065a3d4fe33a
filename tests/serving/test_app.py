"""The real Ray Serve app over HTTP: contract, bad input, cold start, events, cache, reload,
and a Redis outage (a private redis-server stopped with SIGSTOP) with nothing lost."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from serving.api import RecommendRequest, RecommendResponse
from serving.keys import Keys
from tests.serving.conftest import ServedApp, ServedWorld

pytestmark = pytest.mark.slow
KEY = "test-key"
ADMIN = "test-admin-key"


class Client:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        key: str | None = KEY,
        raw: bytes | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["X-API-Key"] = key
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                text = response.read().decode()
                status = response.status
        except urllib.error.HTTPError as exc:
            text, status = exc.read().decode(), exc.code
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text

    def recommend(self, user: str, k: int = 10, **extra: Any) -> dict[str, Any]:
        status, body = self.call("POST", "/recommend", {"user_id": user, "k": k, **extra})
        assert status == 200, body
        return body

    def event(self, user: str, item: str, kind: str = "purchase", **extra: Any) -> dict[str, Any]:
        event = {
            "user_id": user,
            "item_id": item,
            "event_type": kind,
            "timestamp": datetime.now(UTC).isoformat(),
            "event_id": f"t-{uuid.uuid4().hex}",
            **extra,
        }
        status, body = self.call("POST", "/events", event)
        assert status == 202, body
        return body

    def metric(self, name: str) -> float:
        _, text = self.call("GET", "/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture(scope="module")
def app(served_app: ServedApp) -> Client:
    return Client(served_app.url)


@pytest.fixture(scope="module")
def users(served_world: ServedWorld) -> list[str]:
    frame = pd.read_parquet(served_world.features / "user_profile.parquet")
    return sorted(frame["user_id"].astype(str))


def test_contract_of_recommend(app: Client, users: list[str], served_world: ServedWorld) -> None:
    body = app.recommend(users[0], k=5, context={"device": "mobile", "country": "DE"})
    links = {"experiment", "variant", "propensity"}  # null: no experiment runs here
    assert set(body) == {"request_id", "model_version", "items", "degraded", *links}
    assert all(body[field] is None for field in links)
    assert RecommendResponse.model_validate(body, strict=True).model_dump(mode="json") == body
    assert body["model_version"] == served_world.version and body["degraded"] is False
    assert len(body["items"]) == 5
    assert len({i["item_id"] for i in body["items"]}) == 5
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert all(isinstance(i["reason"], str) and i["reason"] for i in body["items"])
    status, health = app.call("GET", "/healthz")
    assert status == 200 and health == {"status": "ok"}
    status, ready = app.call("GET", "/readyz")
    assert status == 200 and ready["ready"] is True
    status, docs = app.call("GET", "/openapi.json")
    assert status == 200 and "/recommend" in docs["paths"] and "/events" in docs["paths"]
    recommend = docs["paths"]["/recommend"]["post"]
    answer = recommend["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["$ref"].endswith("/RecommendResponse")
    asked = recommend["requestBody"]["content"]["application/json"]["schema"]
    assert asked == {"$ref": "#/components/schemas/RecommendRequest"}
    # Every error body the API returns is described, and is the one ErrorResponse.
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for status in ("400", "401", "413", "422"):
        assert recommend["responses"][status]["content"]["application/json"]["schema"] == error
    metrics = docs["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    models = docs["components"]["schemas"]
    assert set(models["RecommendRequest"]["properties"]) == set(RecommendRequest.model_fields)
    assert "#/components/schemas/RequestContext" in json.dumps(models["RecommendRequest"])
    assert "device" in models["RequestContext"]["properties"]
    assert "x-api-key" in [p["name"] for p in recommend["parameters"]]


def test_content_renders_a_slot_for_a_known_user(app: Client, users: list[str]) -> None:
    from serving.api import ContentResponse

    ctx = {"device": "mobile", "country": "DE"}
    status, body = app.call(
        "POST", "/content", {"user_id": users[1], "slot": "home_hero", "context": ctx}
    )
    assert status == 200, body
    out = ContentResponse.model_validate(body)
    assert out.template != "fallback" and not out.fallback and not out.degraded
    assert 1 <= len(out.content.items) <= 4 and out.content.headline
    assert all(i.title for i in out.content.items)  # catalogue fields joined from the table
    assert all(f'data-item="{i.item_id}"' in out.html for i in out.content.items)
    assert len(out.request_id) == 32 and out.experiment is None
    assert app.metric('tailwise_content_responses_total{outcome="template",slot="home_hero"}') >= 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "u1", "k": 0}, "k"),
        ({"user_id": "u1", "k": 101}, "k"),
        ({"user_id": "u1", "k": "ten"}, "k"),
        ({"k": 5}, "user_id"),
        ({"user_id": "", "k": 5}, "user_id"),
        ({"user_id": "u1", "exclude": "i1"}, "exclude"),
        ({"user_id": "u1", "surprise": 1}, "surprise"),
    ],
)
def test_bad_recommend_requests_name_the_field(app: Client, body: dict, field: str) -> None:
    status, answer = app.call("POST", "/recommend", body)
    assert status == 422
    assert field in answer["error"] and any(d["field"] == field for d in answer["detail"])


def test_malformed_and_oversized_bodies_are_4xx(app: Client) -> None:
    status, answer = app.call("POST", "/recommend", raw=b'{"user_id": "u1", "k": ')
    assert status in (400, 422) and "JSON" in answer["error"]
    status, answer = app.call("POST", "/events", raw=b"{not json")
    assert status == 400 and "malformed JSON" in answer["error"]
    big = json.dumps({"user_id": "u1", "exclude": ["x" * 100] * 20_000}).encode()
    status, answer = app.call("POST", "/recommend", raw=big)
    assert status == 413 and "exceeds" in answer["error"]
    over = json.dumps({"user_id": "u1", "exclude": ["x" * 100] * 1_500}).encode()
    status, answer = app.call("POST", "/recommend", raw=over)  # under the default limit
    assert status == 413 and "limit of 100000 bytes" in answer["error"]


def _hmget_calls(world: ServedWorld) -> int:
    stats = redis.Redis.from_url(world.redis.url).info("commandstats")
    return int(stats.get("cmdstat_hmget", {}).get("calls", 0))


def test_one_feature_read_per_request_and_none_for_bad_bodies(
    app: Client,
    users: list[str],
    served_world: ServedWorld,
) -> None:
    contexts = [{}, {"device": "mobile"}, {"device": "tablet", "country": "FR"}]
    first = [app.recommend(u, k=4, context=c) for u, c in zip(users[1:4], contexts, strict=True)]
    before = _hmget_calls(served_world)
    for user, context in zip(users[1:4], contexts, strict=True):
        body = {"user_id": user, "k": 4, "context": context, "exclude": ["nothing-like-it"]}
        assert app.call("POST", "/recommend", body)[0] == 200
    assert _hmget_calls(served_world) - before == 3
    for bad in ({"user_id": users[5], "k": 0}, {"user_id": " ", "k": 3}):
        assert app.call("POST", "/recommend", bad)[0] == 422
    assert _hmget_calls(served_world) - before == 3
    again = [app.recommend(u, k=4, context=c) for u, c in zip(users[1:4], contexts, strict=True)]
    assert [b["items"] for b in again] == [b["items"] for b in first]


def test_unknown_user_gets_cold_start_for_the_context(app: Client) -> None:
    body = app.recommend(f"new-{uuid.uuid4().hex[:6]}", k=7, context={"device": "mobile"})
    assert len(body["items"]) == 7 and body["degraded"] is False
    assert all(i["reason"].startswith("popular") for i in body["items"])


def test_the_replica_runs_at_normal_priority(app: Client) -> None:
    """Not at Ray's nice 15 for workers: beside a normal-priority process (a consumer, a
    retraining) the replica would wait for a core (serving.server.WORKER_PRIORITY)."""
    import os

    import psutil

    from serving.server import WORKER_PRIORITY, replica_pids

    pids = replica_pids()
    assert pids
    # The suite's own environment may set it; the replica follows the environment.
    name = "RAY_worker_niceness"  # Ray's spelling
    expected = int(os.environ.get(name, WORKER_PRIORITY[name]))
    assert {psutil.Process(pid).nice() for pid in pids} == {expected}


def test_known_users_are_answered_by_the_model_and_metrics_count_any_that_are_not(
    app: Client, users: list[str]
) -> None:
    _, text = app.call("GET", "/metrics")
    assert "tailwise_known_user_cold_start_responses_total" in text
    assert "tailwise_known_user_without_features_responses_total" in text
    cold = app.metric("tailwise_known_user_cold_start_responses_total")
    for user in users[6:9]:
        assert len(app.recommend(user, k=5)["items"]) == 5
    assert app.metric("tailwise_known_user_cold_start_responses_total") == cold


def test_unknown_items_in_exclude_and_events_are_fine(app: Client, users: list[str]) -> None:
    body = app.recommend(users[1], k=5, exclude=["no-such-item", "another"])
    first = body["items"][0]["item_id"]
    assert first not in app.recommend(users[1], k=5, exclude=[first])["items"]
    app.event(users[1], "brand-new-item", "product_view")


def test_events_need_a_key_and_valid_fields(app: Client, users: list[str]) -> None:
    event = {"user_id": users[2], "item_id": "i1", "event_type": "purchase", "timestamp": "now"}
    assert app.call("POST", "/events", event, key=None)[0] == 401
    assert app.call("POST", "/events", event, key="wrong")[0] == 401
    assert app.call("POST", "/events", event, key="cl\u00e9")[0] == 401  # not ASCII: not a 500
    status, answer = app.call("POST", "/events", event)
    assert status == 422 and "timestamp" in json.dumps(answer)
    status, answer = app.call(
        "POST", "/events", {**event, "timestamp": 1.79e9, "event_type": "clickk"}
    )
    assert status == 422 and "event_type" in json.dumps(answer)
    status, answer = app.call("POST", "/events", {"events": [{"user_id": users[2]}]})
    assert status == 422 and "item_id" in json.dumps(answer)
    # A null rule of the event contract: accepted without the value, as batch ingestion does.
    body = app.event(users[2], "i1", "product_view", price=2_000_000)
    assert body["accepted"] == 1 and [(a["field"], a["value"]) for a in body["adjusted"]] == [
        ("price", 2_000_000)
    ]


def test_an_event_changes_the_next_recommendation(app: Client, users: list[str]) -> None:
    user = users[3]
    before = app.recommend(user, k=10)
    top = before["items"][0]["item_id"]
    app.event(user, top, "purchase")
    after = app.recommend(user, k=10)
    assert top not in [i["item_id"] for i in after["items"]]


def test_cache_hits_and_is_invalidated_by_the_users_events(
    app: Client,
    users: list[str],
    served_world: ServedWorld,
) -> None:
    user = users[4]
    client = redis.Redis.from_url(served_world.redis.url)
    cached = Keys(str(served_world.settings.feast_project)).rec(user)
    app.recommend(user, k=6)
    _wait_for(lambda: client.exists(cached) == 1)  # written once the response is out
    hits = app.metric('tailwise_cache_total{outcome="hit"}')
    app.recommend(user, k=6)
    assert app.metric('tailwise_cache_total{outcome="hit"}') == hits + 1
    app.event(user, "i000001", "product_view")
    assert client.exists(cached) == 0
    misses = app.metric('tailwise_cache_total{outcome="miss"}')
    app.recommend(user, k=6)
    assert app.metric('tailwise_cache_total{outcome="miss"}') == misses + 1
    assert app.metric("tailwise_stage_seconds_count") > 0


def test_a_users_cached_answers_stay_bounded_however_the_requests_vary(
    app: Client,
    users: list[str],
    served_world: ServedWorld,
) -> None:
    """Every write renews the hash's TTL: 3x MAX_FIELDS different k for one user leave at
    most MAX_FIELDS answers cached, and the newest is among them."""
    from serving.response_cache import MAX_FIELDS

    user = users[5]
    client = redis.Redis.from_url(served_world.redis.url)
    cached = Keys(str(served_world.settings.feast_project)).rec(user)
    client.delete(cached)
    sizes = [0]
    for k in range(1, 3 * MAX_FIELDS + 1):
        app.recommend(user, k=k)
        _wait_for(lambda: client.hlen(cached) != sizes[-1])  # this answer's write landed
        sizes.append(client.hlen(cached))
    assert max(sizes) <= MAX_FIELDS, sizes
    hits = app.metric('tailwise_cache_total{outcome="hit"}')
    app.recommend(user, k=3 * MAX_FIELDS)
    assert app.metric('tailwise_cache_total{outcome="hit"}') == hits + 1


def _wait_for(condition: Any, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_reload_switches_versions_without_failed_requests(
    app: Client,
    users: list[str],
    served_world: ServedWorld,
) -> None:
    models = served_world.models
    copy = f"{served_world.version}-copy"
    shutil.copytree(models / served_world.version, models / copy)
    manifest = json.loads((models / copy / "manifest.json").read_text())
    (models / copy / "manifest.json").write_text(json.dumps({**manifest, "version": copy}))
    failures: list[Any] = []
    versions: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        n = 0
        while not stop.is_set():
            status, body = app.call("POST", "/recommend", {"user_id": users[n % 50], "k": 5})
            n += 1
            if status != 200:
                failures.append((status, body))
            else:
                versions.add(body["model_version"])

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        # Loading a version (SavedModel, trees, checks, warm-up) takes seconds, longer on a
        # busy machine while requests keep coming: what must not happen is a failed request.
        status, body = app.call("POST", "/admin/reload", {"version": copy}, ADMIN, timeout=120)
        assert status == 200, body
        assert body == {**body, "previous": served_world.version, "model_version": copy}
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert copy in versions
    assert app.call("POST", "/admin/reload", {"version": "nope"}, ADMIN)[0] == 404
    assert app.call("POST", "/admin/reload", {"version": copy})[0] == 403  # a write key
    assert app.call("POST", "/admin/reload", {"version": copy}, key=None)[0] == 401
    status, body = app.call(
        "POST", "/admin/reload", {"version": served_world.version}, ADMIN, timeout=120
    )
    assert status == 200 and body["model_version"] == served_world.version


def test_redis_outage_degrades_spills_and_recovers_without_losing_events(
    app: Client,
    users: list[str],
    served_world: ServedWorld,
) -> None:
    user = users[5]
    app.recommend(user, k=5)  # remembered in memory for the fallback
    stream = Keys(str(served_world.settings.feast_project)).events
    client = redis.Redis.from_url(served_world.redis.url)
    served_world.redis.pause()
    try:
        degraded = app.recommend(user, k=5)
        assert degraded["degraded"] is True and len(degraded["items"]) == 5
        stranger = app.recommend("never-seen-before", k=4, context={"country": "DE"})
        assert stranger["degraded"] is True and len(stranger["items"]) == 4
        spilled = [app.event(user, f"i{n:06d}", "product_view") for n in range(5)]
        assert all(r["spilled"] == 1 for r in spilled)
    finally:
        served_world.redis.resume()
    ids = {e for r in spilled for e in r["event_ids"]}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        in_stream = {json.loads(f[b"e"])["event_id"] for _, f in client.xrange(stream)}
        if ids <= in_stream:
            break
        time.sleep(0.2)
    assert ids <= in_stream, f"lost: {ids - in_stream}"
    recovered = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        recovered = app.recommend(user, k=5)
        if not recovered["degraded"]:
            break
        time.sleep(0.3)
    assert recovered is not None and recovered["degraded"] is False
    assert app.metric("tailwise_degraded_responses_total") >= 2


def test_simulated_shoppers_use_the_running_api(app: Client, generated: tuple[Path, Path]) -> None:
    """tailwise.experiments.simulation against the real server: every visit answered,
    clicks sent as events the API accepts (pseudonymised ids, as the clean data holds)."""
    import asyncio

    import httpx

    from tailwise.experiments.simulation import ChoiceModel, Shoppers, SimulationConfig, simulate
    from tailwise.privacy import pseudonymise

    shoppers = Shoppers(generated[0], ChoiceModel())
    keyed = pseudonymise(pd.Series(shoppers.user_ids), b"t" * 40)  # the fixture's ingest key
    ids = dict(zip(shoppers.user_ids, keyed, strict=True))
    cfg = SimulationConfig(days=1, users_per_day=40, k=10, seed=1, time_limit_s=90)

    async def run() -> Any:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            return await simulate(client, shoppers, cfg, ids.__getitem__, {"X-API-Key": KEY})

    result = asyncio.run(run())
    assert result.requests == 40 and result.failed == 0, result.errors
    assert result.clicks > 0 and {e["experiment"] for e in result.exposures} == {"(none)"}
    assert all(e["request_id"] for e in result.exposures)
