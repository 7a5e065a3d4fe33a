"""POST /content over a stand-in replica (no Ray, no models, no Redis): the body, the
error shape, keys, fallbacks counted in the metrics, experiments and degraded mode."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.api import ContentResponse, ErrorResponse
from serving.auth import ApiKeys
from serving.config import ServingConfig
from serving.metrics import ServingMetrics
from serving.routes import build_api
from tests.serving.content_support import EVIL, ROOT, Graph


class Router:
    """The replica's experiments as serving.experiments offers them: the variant's answer,
    its recorder and the routing; `log` writes the exposure."""

    def __init__(self) -> None:
        self.logged: list[str] = []

    async def recommend(self, graph: Graph, req: Any, log: bool) -> tuple[Any, Any, Any]:
        answer = await graph.recommend(req)
        fields = {"experiment": "hero_test", "variant": "b", "propensity": 0.5}
        answer.body.update(fields)
        routed = SimpleNamespace(fields=fields, variant=SimpleNamespace(template="lapsed"))
        return answer, graph, routed

    async def log(self, aclient: Any, req: Any, routed: Any) -> None:
        self.logged.append(req.request_id)


def make_client(
    content: Path, tmp_path: Path, require_key: bool = False, router: Router | None = None
) -> TestClient:
    async def close() -> None:
        return None

    replica = SimpleNamespace(
        config=ServingConfig(
            models_dir=tmp_path, content_dir=content, require_key_for_recommend=require_key
        ),
        graph=Graph(),
        metrics=ServingMetrics(),
        close=close,
        aclient=None,
        **({"experiments": router} if router is not None else {}),
    )
    lifecycle = SimpleNamespace(start=lambda: None, stop=lambda: None)
    app = build_api(replica, lifecycle, ApiKeys(["right"], require_key))  # type: ignore[arg-type]
    client = TestClient(app)
    client.replica = replica  # type: ignore[attr-defined]
    return client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(ROOT / "content", tmp_path) as c:
        yield c


def metric(client: TestClient, name: str) -> float:
    text = client.get("/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_content_renders_the_segment_template_with_the_request_id(client: TestClient) -> None:
    body = {"user_id": "u1", "slot": "home_hero", "context": {"device": "desktop"}}
    response = client.post("/content", json=body)
    assert response.status_code == 200, response.text
    out = ContentResponse.model_validate(response.json())
    graph = client.replica.graph  # type: ignore[attr-defined]
    (asked,) = graph.asked
    assert asked.k == 4 and asked.device == "desktop"  # the slot's item count
    assert out.request_id == asked.request_id and graph.recorded == [asked.request_id]
    assert (out.template, out.fallback, out.experiment, out.degraded) == (
        "frequent_buyers",
        False,
        None,
        False,
    )
    assert out.content.headline == "New in from the brands you love"
    assert [i.item_id for i in out.content.items] == ["i0", "i1", "i2", "i3"]
    first = out.content.items[0]
    assert (first.title, first.brand, first.price, first.reason) == (
        EVIL,
        "Acme",
        "9.50",
        "popular",
    )
    assert "<script>" not in out.html and "&lt;script&gt;" in out.html
    assert "18-24" not in response.text  # no profile or item field beyond the catalogue's
    assert metric(client, 'tailwise_content_responses_total{outcome="template"') == 1


def test_recent_items_and_rules_per_user(client: TestClient) -> None:
    out = client.post("/content", json={"user_id": "u2", "slot": "home_hero"}).json()
    assert out["template"] == "lapsed"
    assert "Old favourite" in out["html"] and 'data-item="unknown"' not in out["html"]


def test_an_experiment_in_the_answer_picks_the_template(client: TestClient) -> None:
    graph = client.replica.graph  # type: ignore[attr-defined]
    graph.extra = {"experiment": "hero", "variant": "evening", "propensity": 0.5}
    out = client.post("/content", json={"user_id": "u1", "slot": "home_hero"}).json()
    assert (out["template"], out["experiment"], out["variant"], out["propensity"]) == (
        "evening",
        "hero",
        "evening",
        0.5,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"slot": "home_hero"}, "user_id"),
        ({"user_id": "u1"}, "slot"),
        ({"user_id": "u1", "slot": "Home Hero"}, "slot"),
        ({"user_id": "u1", "slot": "home_hero", "context": {"daypart": "noon"}}, "context.daypart"),
        ({"user_id": "u1", "slot": "home_hero", "x": 1}, "x"),
    ],
)
def test_bad_bodies_get_the_error_shape_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/content", json=body)
    assert response.status_code == 422
    error = ErrorResponse.model_validate(response.json())
    assert error.detail and any(p.field == field for p in error.detail), error


def test_a_slot_the_manifest_lacks_is_404_naming_the_known_slots(client: TestClient) -> None:
    response = client.post("/content", json={"user_id": "u1", "slot": "nope"})
    assert response.status_code == 404
    error = ErrorResponse.model_validate(response.json())
    assert error.detail and error.detail[0].field == "slot" and "home_hero" in error.error


def test_a_broken_template_answers_the_fallback_and_is_counted(tmp_path: Path) -> None:
    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    (content / "home_hero" / "frequent_buyers.mustache").write_text("{{#items}}{{nme}}{{/items}}")
    with make_client(content, tmp_path) as client:
        response = client.post("/content", json={"user_id": "u1", "slot": "home_hero"})
        assert response.status_code == 200
        out = response.json()
        assert out["template"] == "fallback" and out["fallback"]
        assert out["content"]["headline"] == "Discover this week's favourites"
        errors = 'tailwise_content_errors_total{kind="missing_variable",slot="home_hero",'
        assert metric(client, errors + 'template="frequent_buyers"') == 1
        assert metric(client, 'tailwise_content_responses_total{outcome="fallback"') == 1


def test_degraded_answers_from_memory_without_a_profile(client: TestClient) -> None:
    client.replica.graph.degraded = True  # type: ignore[attr-defined]
    out = client.post("/content", json={"user_id": "u1", "slot": "home_hero"}).json()
    assert out["degraded"] and out["template"] == "default"  # no segment: the default


def test_the_key_rule_of_recommend_applies(tmp_path: Path) -> None:
    with make_client(ROOT / "content", tmp_path, require_key=True) as client:
        body = {"user_id": "u1", "slot": "email_block"}
        denied = client.post("/content", json=body)
        assert denied.status_code == 401 and "X-API-Key" in denied.json()["error"]
        ok = client.post("/content", json=body, headers={"X-API-Key": "right"})
        assert ok.status_code == 200 and ok.json()["template"] == "default"


def test_without_a_manifest_content_is_503_and_recommend_still_works(tmp_path: Path) -> None:
    with make_client(tmp_path / "missing", tmp_path) as client:
        response = client.post("/content", json={"user_id": "u1", "slot": "home_hero"})
        assert response.status_code == 503 and "does not exist" in response.json()["error"]
        assert client.post("/recommend", json={"user_id": "u1"}).status_code == 200


def test_the_openapi_document_describes_content(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/content"]["post"]["responses"]
    assert {"200", "400", "401", "404", "413", "422", "503"} <= set(responses)


def test_the_replicas_experiment_routes_the_request_and_its_variant_names_the_template(
    tmp_path: Path,
) -> None:
    router = Router()
    with make_client(ROOT / "content", tmp_path, router=router) as client:
        out = client.post("/content", json={"user_id": "u1", "slot": "home_hero"}).json()
        assert (out["template"], out["experiment"], out["variant"], out["propensity"]) == (
            "lapsed",
            "hero_test",
            "b",
            0.5,
        )
        assert router.logged == [out["request_id"]]  # the exposure, after the response
        assert client.replica.graph.recorded == [out["request_id"]]  # type: ignore[attr-defined]
