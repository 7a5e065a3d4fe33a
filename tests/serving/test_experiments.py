"""Experiments on the request path (serving.experiments) over stand-in graphs: the response
names experiment, variant and propensity; a holdout gets the popular list; a rules variant
its own graph; exposures go to the stream after the response; events carry request_id,
slot and position through the event rules, the stream and the consumer into attribution
and the bandit's posteriors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import redis
import redis.asyncio
import yaml
from fastapi.testclient import TestClient

from serving.auth import ApiKeys
from serving.config import ServingConfig
from serving.events import event_json
from serving.experiments import ExperimentRouter, build_router, check_definitions
from serving.graph import Answer, RecommendGraph, Request
from serving.keys import Keys
from serving.metrics import ServingMetrics
from serving.routes import build_api
from tailwise.experiments.attribution import attribute_served
from tailwise.experiments.definitions import DefinitionError
from tailwise.experiments.posteriors import PosteriorStore, refresh_posteriors
from tailwise.ingest.streams import consume
from tests.serving.events_support import REDIS_URL, make_event, rules
from tests.serving.test_routes import Lifecycle, Rules, Writer

EXPERIMENT = {
    "name": "home",
    "salt": "home-salt",
    "layer": "home",
    "start": "2026-01-01",
    "bandit": {"burn_in": 3, "floor": 0.1},  # every arm has 3+ of the 12 users
    "variants": [
        {"name": "control", "weight": 0.4},
        {"name": "fewer", "weight": 0.4, "rules": {"max_per_category": 1}},
        {"name": "popular", "type": "holdout", "weight": 0.2},
    ],
}


class Graph:
    """A served graph: records what it answered; its pipeline's cold start is the popular list."""

    def __init__(self, version: str = "v1") -> None:
        self.bundle = SimpleNamespace(
            version=version,
            allow_repeats=False,
            history_features=(),
            history_input=None,
            candidates_mode="two_tower",
        )
        self.reader = SimpleNamespace()
        self.client = None
        self.degraded = False
        self.cache = SimpleNamespace(applies=lambda req: False)
        self.asked: list[Request] = []
        self.pipeline = SimpleNamespace(cold_start=self.cold_start)

    async def recommend(self, req: Request, log_features: bool = False) -> Answer:
        self.asked.append(req)
        items = [{"item_id": "personal", "score": 1.0, "reason": "for you"}]
        return Answer(
            {
                "request_id": req.request_id,
                "model_version": self.bundle.version,
                "items": items,
                "degraded": False,
            },
            {},
        )

    def cold_start(self, req: Request, exclude: set[str]) -> Answer:
        items = [{"item_id": "popular", "score": 1.0, "reason": "popular right now"}]
        return Answer(
            {
                "request_id": req.request_id,
                "model_version": self.bundle.version,
                "items": items,
                "degraded": False,
            },
            cold_start=True,
        )

    async def record(self, req: Request, answer: Answer) -> None:
        return None


def folder_with(tmp_path: Path, *experiments: dict[str, Any]) -> ServingConfig:
    (tmp_path / "experiments").mkdir()
    for e in experiments:
        (tmp_path / "experiments" / f"{e['name']}.yaml").write_text(yaml.safe_dump(e))
    (tmp_path / "params.yaml").write_text("experiments: {allocation_refresh_seconds: 1}\n")
    return ServingConfig(models_dir=tmp_path / "models", params_path=tmp_path / "params.yaml")


def router(
    config: ServingConfig,
    keys: Keys,
    store: PosteriorStore | None = None,
    stand_in_rules: bool = True,
) -> ExperimentRouter:
    definitions = check_definitions(config)
    from serving.experiments import experiments_params

    def load(version: str) -> Any:
        return Graph(version)

    made = ExperimentRouter(definitions, experiments_params(config), keys, config, load, store)
    if stand_in_rules:  # a rules variant's graph: a stand-in too
        made._with_rules = lambda graph, rules, tag: Graph(f"rules:{tag}")  # type: ignore[method-assign]
    return made


@pytest.fixture
def app(tmp_path: Path) -> Iterator[TestClient]:
    config = folder_with(tmp_path, EXPERIMENT)
    keys = Keys("unit")
    served = Graph()

    async def close() -> None:
        return None

    replica = SimpleNamespace(
        config=config,
        graph=served,
        metrics=ServingMetrics(),
        rules=Rules(),
        writer=Writer(),
        close=close,
        experiments=router(config, keys),
        aclient=None,
    )
    logged: list[Any] = []

    async def log(client: Any, req: Request, routed: Any) -> None:
        logged.append((req, routed))

    replica.experiments.log = log  # type: ignore[method-assign]
    with TestClient(build_api(replica, Lifecycle(), ApiKeys(["k"]))) as client:  # type: ignore[arg-type]
        client.logged = logged  # type: ignore[attr-defined]
        client.replica = replica  # type: ignore[attr-defined]
        yield client


def test_recommend_names_the_variant_and_applies_its_change(app: TestClient) -> None:
    seen: dict[str, dict[str, Any]] = {}
    for n in range(60):
        body = app.post("/recommend", json={"user_id": f"user-{n}", "slot": "home"}).json()
        seen.setdefault(body["variant"], body)
        assert body["experiment"] == "home"
        assert body["propensity"] == {"control": 0.4, "fewer": 0.4, "popular": 0.2}[body["variant"]]
    assert set(seen) == {"control", "fewer", "popular"}
    assert seen["popular"]["items"][0]["item_id"] == "popular"  # holdout: no personalisation
    assert seen["control"]["items"][0]["item_id"] == "personal"
    assert seen["control"]["model_version"] == "v1"
    assert seen["fewer"]["model_version"] == 'rules:{"max_per_category": 1}'
    again = app.post("/recommend", json={"user_id": "user-3"}).json()
    first = app.post("/recommend", json={"user_id": "user-3"}).json()
    assert again["variant"] == first["variant"]  # sticky
    logged = app.logged  # type: ignore[attr-defined]
    assert len(logged) == 62 and logged[0][0].slot == "home"
    req, routed = logged[0]
    assert routed.fields["variant"] == routed.assignments[0].variant and req.user_id == "user-0"


def test_a_rules_variant_gets_its_own_graph_with_the_override(tmp_path: Path) -> None:
    config = folder_with(tmp_path, EXPERIMENT)
    r = router(config, Keys("unit"), stand_in_rules=False)
    served = Graph()
    made = r.graph_for(r.definitions.experiments[0].variant("fewer"), served)  # type: ignore[arg-type]
    assert isinstance(made, RecommendGraph) and made.config.rules.max_per_category == 1
    assert made is r.graph_for(r.definitions.experiments[0].variant("fewer"), served)  # type: ignore[arg-type]
    assert made.cache.version != "v1"  # its own response-cache entries
    assert r.graph_for(r.definitions.experiments[0].variant("control"), served) is served  # type: ignore[arg-type]


def test_a_bad_rule_override_is_an_error_naming_the_variant_and_field(tmp_path: Path) -> None:
    bad = {
        **EXPERIMENT,
        "variants": [
            {"name": "a", "weight": 0.5, "rules": {"max_per_category": 0}},
            {"name": "b", "weight": 0.5},
        ],
    }
    with pytest.raises(
        DefinitionError, match=r"variants.0 \(a\): rules.max_per_category: Input should be greater"
    ):
        check_definitions(folder_with(tmp_path, bad))


def test_events_carry_request_id_slot_and_position_to_the_stream_only() -> None:
    clean = rules().clean([make_event(request_id="r1", slot="home", position=2)], datetime.now(UTC))
    (event,) = clean.events
    assert (event["request_id"], event["slot"], event["position"]) == ("r1", "home", 2)
    assert json.loads(event_json(event, links=True))["request_id"] == "r1"
    assert "request_id" not in json.loads(event_json(event))  # recent lists stay as they were
    (plain,) = rules().clean([make_event()], datetime.now(UTC)).events
    assert "request_id" not in json.loads(event_json(plain, links=True))


def test_a_negative_position_is_a_422_naming_it(app: TestClient) -> None:
    event = {
        "user_id": "u1",
        "item_id": "i1",
        "event_type": "product_view",
        "timestamp": datetime.now(UTC).isoformat(),
        "position": -1,
    }
    response = app.post("/events", json=event, headers={"X-API-Key": "k"})
    assert response.status_code == 422 and any(
        p["field"] == "position" for p in response.json()["detail"]
    )


@pytest.fixture
def aclient() -> Iterator[redis.asyncio.Redis]:
    yield redis.asyncio.Redis.from_url(REDIS_URL)


def test_exposures_and_linked_events_become_outcomes_and_posteriors(
    tmp_path: Path, client: redis.Redis, keys: Keys, make_writer: Any, aclient: redis.asyncio.Redis
) -> None:
    config = folder_with(tmp_path, EXPERIMENT)
    store = PosteriorStore(client, keys.prefix)
    r = router(config, keys, store)
    served = Graph()

    async def serve(user: str) -> tuple[Request, Answer]:
        req = Request(user, request_id=f"req-{user}", slot="home")
        answer, _, routed = await r.recommend(served, req, False)  # type: ignore[arg-type]
        assert routed is not None
        await r.log(aclient, req, routed)
        return req, answer

    async def serve_all() -> list[tuple[Request, Answer]]:
        try:
            return [await serve(f"user-{n}") for n in range(12)]
        finally:
            await aclient.aclose()

    answers = asyncio.run(serve_all())
    writer = make_writer()
    now = datetime.now(UTC) - timedelta(minutes=5)
    clicks = [
        make_event(
            req.user_id,
            "i1",
            timestamp=now.isoformat(),
            request_id=req.request_id,
            position=0,
            event_id=f"click-{req.user_id}",
        )
        for req, answer in answers
        if answer.body["variant"] == "fewer"
    ]
    assert clicks
    writer.write(rules().clean(clicks, datetime.now(UTC)).events)
    result = consume(client, keys, tmp_path / "served")
    assert result.exposures is not None and result.exposures.written == 12
    exposures = pd.read_parquet(tmp_path / "served" / "exposures")
    assert set(exposures["propensity"]) <= {0.4, 0.2} and set(exposures["slot"]) == {"home"}
    outcomes = attribute_served(tmp_path / "served", pd.Timedelta(hours=24))
    assert set(outcomes["variant"]) == {"fewer"} and len(outcomes) == len(clicks)
    assert outcomes["position"].tolist() == [0] * len(clicks)
    summary = refresh_posteriors(store, r.definitions.experiments, exposures, outcomes, r.params)
    fewer = summary["home"]["fewer"]
    assert fewer["exposures"] == fewer["successes"] == len(clicks)
    r.refresh(now=1e9)  # the replica reads the allocation ...
    assert r.weights["home"] == store.read_allocations(["home"])["home"]
    assert max(r.weights["home"], key=r.weights["home"].get) == "fewer"
    user = next(req.user_id for req, a in answers if a.body["variant"] == "fewer")
    assert r.route(user, datetime.now(UTC)).assignments[0].propensity == round(  # type: ignore[union-attr]
        r.weights["home"]["fewer"], 6
    )


def test_no_folder_means_no_router(tmp_path: Path) -> None:
    config = ServingConfig(models_dir=tmp_path, params_path=tmp_path / "params.yaml")
    assert build_router(config, Keys("unit"), None, lambda v: None) is None  # type: ignore[arg-type]


def test_the_validate_command_lists_good_definitions_and_names_a_bad_field(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from serving.commands import register
    from tailwise.cli import app as cli
    from tailwise.console import EXIT_BAD_INPUT

    register(cli)
    config = folder_with(tmp_path, EXPERIMENT)
    args = [
        "experiments",
        "validate",
        "--params",
        str(config.params_path),
        "--models",
        str(tmp_path),
    ]
    good = CliRunner().invoke(cli, args)
    assert good.exit_code == 0, good.output
    assert "home: layer home [0, 1)" in good.output and "1 experiment(s) valid" in good.output
    bad = {**EXPERIMENT, "name": "other", "salt": "other-salt", "stop": "2025-01-01"}
    (tmp_path / "experiments" / "other.yaml").write_text(yaml.safe_dump(bad))
    failed = CliRunner().invoke(cli, args)
    text = failed.output.replace("\n", "")  # the console wraps long lines
    assert failed.exit_code == EXIT_BAD_INPUT
    assert "other.yaml: experiment: stop 2025-01-01T00:00:00+00:00 is not after start" in text
    assert "Traceback" not in text


def test_a_holdout_in_another_layer_wins_and_the_response_names_it(tmp_path: Path) -> None:
    global_holdout = {
        "name": "global",
        "salt": "global-salt",
        "layer": "aaa-global",
        "start": "2026-01-01",
        "variants": [
            {"name": "personal", "weight": 0.5},
            {"name": "none", "type": "holdout", "weight": 0.5},
        ],
    }
    r = router(folder_with(tmp_path, EXPERIMENT, global_holdout), Keys("unit"))
    now = datetime.now(UTC)
    routes = [r.route(f"user-{n}", now) for n in range(200)]
    both = [x for x in routes if x is not None and len(x.assignments) == 2]
    held = [x for x in both if any(a.variant == "none" for a in x.assignments)]
    assert held and all(x.variant.type == "holdout" for x in held)
    assert all(x.fields["experiment"] == "global" and x.fields["variant"] == "none" for x in held)
    home_holdout = [x for x in both if x not in held and x.variant.type == "holdout"]
    assert all(x.fields["experiment"] == "home" for x in home_holdout)


def test_a_variants_model_version_is_loaded_once_per_replica(tmp_path: Path) -> None:
    (tmp_path / "models" / "v2").mkdir(parents=True)
    (tmp_path / "models" / "v2" / "manifest.json").write_text("{}")
    pinned = {
        **EXPERIMENT,
        "variants": [
            {"name": "a", "weight": 0.5},
            {"name": "b", "weight": 0.5, "model_version": "v2"},
        ],
    }
    config = folder_with(tmp_path, pinned)
    loaded: list[str] = []

    def load(version: str) -> Any:
        loaded.append(version)
        return Graph(version)

    from serving.experiments import experiments_params

    r = ExperimentRouter(
        check_definitions(config), experiments_params(config), Keys("unit"), config, load, None
    )
    r.load_versions()
    r.load_versions()
    served = Graph()
    b = r.definitions.experiments[0].variant("b")
    assert r.graph_for(b, served).bundle.version == "v2" and loaded == ["v2"]  # type: ignore[arg-type]
    assert r.graph_for(r.definitions.experiments[0].variant("a"), served) is served  # type: ignore[arg-type]


ASSIGN_IN_ANOTHER_SERVER = """
import json, sys
from pathlib import Path
from tests.serving.test_experiments import assigned_by_a_server
print(json.dumps(assigned_by_a_server(Path(sys.argv[1]), json.loads(sys.argv[2]))))
"""


def assigned_by_a_server(folder: Path, users: list[str]) -> dict[str, list[Any]]:
    """user -> [experiment, variant, propensity] as a whole API app over `folder`'s
    definitions answers /recommend (a server of its own: app, replica, router)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder_with(folder, EXPERIMENT)

    async def close() -> None:
        return None

    replica = SimpleNamespace(
        config=config,
        graph=Graph(),
        metrics=ServingMetrics(),
        rules=Rules(),
        writer=Writer(),
        close=close,
        experiments=router(config, Keys("unit")),
        aclient=None,
    )

    async def log(client: Any, req: Request, routed: Any) -> None:
        return None

    replica.experiments.log = log  # type: ignore[method-assign]
    out = {}
    with TestClient(build_api(replica, Lifecycle(), ApiKeys(["k"]))) as client:  # type: ignore[arg-type]
        for user in users:
            body = client.post("/recommend", json={"user_id": user, "k": 1}).json()
            out[user] = [body["experiment"], body["variant"], body["propensity"]]
    return out


def test_two_server_processes_give_every_user_the_same_sticky_variant(tmp_path: Path) -> None:
    import subprocess
    import sys

    users = [f"u{n:05d}" for n in range(60)]
    here = assigned_by_a_server(tmp_path / "a", users)
    (tmp_path / "b").mkdir()
    run = subprocess.run(
        [sys.executable, "-c", ASSIGN_IN_ANOTHER_SERVER, str(tmp_path / "b"), json.dumps(users)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert run.returncode == 0, run.stderr[-2000:]
    there = json.loads(run.stdout.strip().splitlines()[-1])
    assert there == here
    assert {v[1] for v in here.values()} == {"control", "fewer", "popular"}
    again = assigned_by_a_server(tmp_path / "c", users[::-1])
    assert again == here  # sticky: asked again, in another order, each user keeps theirs
