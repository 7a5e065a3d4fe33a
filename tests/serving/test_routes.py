"""The HTTP contract of serving.routes on FastAPI's test client, over a stand-in replica
(no Ray, no models, no Redis): bodies, error shapes, keys, and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.api import ErrorResponse, RecommendResponse
from serving.auth import ApiKeys
from serving.config import ServingConfig
from serving.event_rules import CleanEvents, EventRejected
from serving.events import WriteResult
from serving.graph import Answer, Request
from serving.metrics import ServingMetrics
from serving.routes import build_api

KEY = {"X-API-Key": "right"}


class Graph:
    def __init__(self) -> None:
        self.bundle = SimpleNamespace(version="v1")
        self.degraded = False
        self.cache = SimpleNamespace(applies=lambda req: req.timestamp is None)
        self.asked: list[Request] = []
        self.recorded: list[str] = []

    async def recommend(self, req: Request, log_features: bool = False) -> Answer:
        self.asked.append(req)
        items = [{"item_id": f"i{n}", "score": 1.0 - n, "reason": "why"} for n in range(req.k)]
        body = {"request_id": req.request_id, "model_version": "v1", "items": items}
        return Answer({**body, "degraded": False}, {"total": 0.001}, known=True)

    async def record(self, req: Request, answer: Answer) -> None:
        self.recorded.append(req.request_id)


class Rules:
    def clean(self, events: list[Any], now: datetime) -> CleanEvents:
        if any(e.event_type == "clickk" for e in events):
            raise EventRejected(
                [{"index": 0, "field": "event_type", "value": "clickk", "problem": "unknown"}]
            )
        return CleanEvents([{"event_id": e.event_id or f"e{n}"} for n, e in enumerate(events)], [])


class Writer:
    spill = SimpleNamespace(pending=lambda: 0)

    def write(self, clean: list[dict[str, Any]]) -> WriteResult:
        return WriteResult(len(clean), [str(e["event_id"]) for e in clean], 0)


class Lifecycle:
    def __init__(self) -> None:
        self.running = False

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    async def close() -> None:
        return None

    replica = SimpleNamespace(
        config=ServingConfig(models_dir=tmp_path, max_body_bytes=2048),
        graph=Graph(),
        metrics=ServingMetrics(),
        rules=Rules(),
        writer=Writer(),
        close=close,
    )
    lifecycle = Lifecycle()
    keys = ApiKeys(["right"], admin_keys=["boss"])
    app = build_api(replica, lifecycle, keys)  # type: ignore[arg-type]
    with TestClient(app) as test_client:
        assert lifecycle.running  # the lifespan starts the background work
        test_client.replica = replica  # type: ignore[attr-defined]
        yield test_client
    assert not lifecycle.running


def test_recommend_takes_the_model_and_answers_in_the_response_model(client: TestClient) -> None:
    body = {"user_id": " u1 ", "k": 3, "context": {"device": "mobile"}}
    response = client.post("/recommend", json=body)
    assert response.status_code == 200
    answer = RecommendResponse.model_validate(response.json())
    assert len(answer.items) == 3
    graph = client.replica.graph  # type: ignore[attr-defined]
    (asked,) = graph.asked
    assert (asked.user_id, asked.k, asked.device) == ("u1", 3, "mobile")
    assert graph.recorded == [asked.request_id]  # after the response


@pytest.mark.parametrize(
    ("body", "field"),
    [({"user_id": "u1", "k": 0}, "k"), ({"k": 5}, "user_id"), ({"user_id": "u", "x": 1}, "x")],
)
def test_bad_bodies_get_the_error_shape_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/recommend", json=body)
    assert response.status_code == 422
    error = ErrorResponse.model_validate(response.json())
    assert error.detail and any(p.field == field for p in error.detail)
    bad = client.post(
        "/recommend", content=b'{"user_id": ', headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400 and "malformed JSON" in bad.json()["error"]
    big = client.post("/recommend", json={"user_id": "u1", "exclude": ["x" * 100] * 30})
    assert big.status_code == 413 and "limit of 2048 bytes" in big.json()["error"]


def test_events_take_one_a_list_or_a_batch_with_a_key(client: TestClient) -> None:
    event = {
        "user_id": "u1",
        "item_id": "i1",
        "event_type": "purchase",
        "timestamp": datetime.now(UTC).isoformat(),
        "event_id": "e-1",
    }
    for body in (event, [event, event], {"events": [event]}):
        assert client.post("/events", json=body).status_code == 401
        response = client.post("/events", json=body, headers=KEY)
        assert response.status_code == 202, response.json()
    missing = client.post("/events", json={"events": [{"user_id": "u1"}]}, headers=KEY)
    assert missing.status_code == 422
    assert any(p["field"] == "events.0.item_id" for p in missing.json()["detail"])
    rejected = client.post("/events", json={**event, "event_type": "clickk"}, headers=KEY)
    assert rejected.status_code == 422 and "event_type" in rejected.json()["error"]


def test_the_openapi_document_describes_bodies_errors_and_metrics(client: TestClient) -> None:
    docs = client.get("/openapi.json").json()
    recommend = docs["paths"]["/recommend"]["post"]
    asked = recommend["requestBody"]["content"]["application/json"]["schema"]
    assert asked == {"$ref": "#/components/schemas/RecommendRequest"}
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, method, statuses in (
        ("/recommend", "post", ("400", "413", "422")),
        ("/events", "post", ("400", "401", "422")),
        ("/admin/reload", "post", ("401", "404")),
    ):
        responses = docs["paths"][path][method]["responses"]
        for status in statuses:
            assert responses[status]["content"]["application/json"]["schema"] == error
    events = docs["paths"]["/events"]["post"]["requestBody"]["content"]["application/json"]
    assert "oneOf" in events["schema"] or "anyOf" in events["schema"]
    assert "x-api-key" in [p["name"] for p in docs["paths"]["/events"]["post"]["parameters"]]
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "tailwise_requests_total" in metrics.text
    assert list(docs["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]


@pytest.mark.parametrize(
    ("path", "body", "key", "status"),
    [
        ("/admin/reload", {"version": "v9"}, "right", 403),  # a write key on an admin route
        ("/admin/reload", {"version": "v9"}, "wrong", 401),
        ("/admin/reload", {"version": "v9"}, None, 401),
        ("/admin/reload", {"version": "v9"}, "boss", 404),  # admitted: no such version
        ("/events", [], "boss", 403),  # an admin key on a write route
        ("/events", [], "rightish", 401),
    ],
)
def test_each_key_opens_its_own_scope_only(
    client: TestClient, path: str, body: Any, key: str | None, status: int
) -> None:
    headers = {"X-API-Key": key} if key else {}
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == status, response.json()
    error = ErrorResponse.model_validate(response.json())
    if status == 403:
        assert "scope" in error.error


def test_a_key_in_both_scopes_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="both a write key"):
        ApiKeys(["same"], admin_keys=["same"])


def test_the_openapi_document_describes_scopes_overload_and_unknown_routes(
    client: TestClient,
) -> None:
    docs = client.get("/openapi.json").json()
    for path in ("/recommend", "/events", "/admin/reload"):
        responses = docs["paths"][path]["post"]["responses"]
        assert {"401", "403", "503"} <= set(responses)
        assert "Retry-After" in responses["503"]["headers"]
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert ErrorResponse.model_validate(missing.json()).error == "Not Found"
    wrong = client.get("/events")
    assert wrong.status_code == 405 and "POST" in wrong.headers["allow"]
    ErrorResponse.model_validate(wrong.json())
