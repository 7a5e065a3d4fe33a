"""Simulated shoppers: choices follow true utilities; a run against stub ASGI apps shaped
like today's API (no experiment fields) and like the API with them."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from serving import api
from tailwise.experiments.simulation import (
    ChoiceModel,
    Shoppers,
    SimulationConfig,
    SimulationError,
    choose,
    simulate,
)
from tailwise.synthetic.utility import true_utility

END = datetime(2026, 11, 20, tzinfo=UTC)


def test_a_better_list_earns_more_clicks_and_position_matters() -> None:
    rng, model = np.random.default_rng(0), ChoiceModel()
    good, bad = np.linspace(3, 1, 10), np.linspace(-1, -3, 10)

    def clicks(u: np.ndarray) -> int:
        return sum(int(choose(u, 0.0, rng, model)[0].sum()) for _ in range(4000))

    assert clicks(good) > 2 * clicks(bad)
    assert clicks(good) > clicks(good[::-1]) * 1.1  # best first beats best last
    clicked, bought = choose(good, 0.0, rng, model)
    assert not (bought & ~clicked).any()


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tailwise.synthetic import GenerateConfig, generate

    root = tmp_path_factory.mktemp("shoppers")
    generate(GenerateConfig(users=150, items=120, days=10, seed=5), root)
    return root


class TodayEvent(BaseModel):
    """The fields of /events before it took experiment links (extra fields refused)."""

    model_config = ConfigDict(extra="forbid")
    user_id: str
    item_id: str
    event_type: str
    timestamp: str
    price: float | None = None
    device: str | None = None


class ExperimentEvent(TodayEvent):
    request_id: str | None = None
    position: int | None = None


def _stub(shoppers: Shoppers, with_experiment: bool) -> tuple[FastAPI, list[dict[str, Any]]]:
    """An API that shows the 'good' variant each user's 10 best items and 'bad' the 10 worst."""
    app, received = FastAPI(), []
    ids = list(shoppers.item_pos)

    @app.post("/recommend")
    def recommend(request: api.RecommendRequest) -> dict[str, Any]:
        body = request.model_dump()
        uid = body["user_id"]
        user = shoppers.user_ids.index(uid)
        scores = true_utility(shoppers.users.take([user]), shoppers.items, shoppers.world,
                              [uid] * len(ids), ids)  # fmt: skip
        variant = "good" if hashlib.sha256(uid.encode()).digest()[0] % 2 else "bad"
        order = np.argsort(-scores if variant == "good" else scores)[: body["k"]]
        reply = {"request_id": f"r{len(received)}-{uid}", "model_version": "v1",
                 "items": [{"item_id": ids[i], "score": 0.0, "reason": ""} for i in order]}  # fmt: skip
        if with_experiment:
            reply.update(experiment="lists", variant=variant, propensity=0.5)
        return reply

    if with_experiment:

        @app.post("/events")
        def events(body: list[ExperimentEvent]) -> dict[str, Any]:
            received.extend(e.model_dump() for e in body)
            return {"accepted": len(body), "event_ids": []}
    else:  # an API without experiment links (extra fields refused)

        @app.post("/events", status_code=202)
        def today_events(body: list[TodayEvent]) -> dict[str, Any]:
            received.extend(e.model_dump() for e in body)
            return {"accepted": len(body), "event_ids": []}

    return app, received


@pytest.mark.parametrize("with_experiment", [False, True])
def test_a_run_against_the_api_sends_events_and_the_better_variant_wins(
    truth: Path, with_experiment: bool
) -> None:
    shoppers = Shoppers(truth, ChoiceModel())
    app, received = _stub(shoppers, with_experiment)
    cfg = SimulationConfig(days=2, users_per_day=150, k=10, seed=3, end=END, time_limit_s=120)
    seen: list[int] = []

    async def run() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://stub") as client:
            return await simulate(client, shoppers, cfg, progress=lambda d, t: seen.append(d))

    result = asyncio.run(run())
    assert result.requests == 300 and result.failed == 0 and seen[-1] == 300
    assert result.clicks == sum(e["event_type"] == "product_view" for e in received) > 0
    assert ("request_id" in received[0]) == with_experiment
    if not with_experiment:
        assert {e["variant"] for e in result.exposures} == {"v1"}
        return
    per = result.per_variant()
    assert per["good"]["mean_true_utility"] > per["bad"]["mean_true_utility"]
    assert (
        per["good"]["clicks"] / per["good"]["requests"]
        > 2 * per["bad"]["clicks"] / per["bad"]["requests"]
    )
    assert all(e["request_id"].endswith(e["user_id"]) for e in received)


def test_bad_parameters_and_truth_are_named(tmp_path: Path) -> None:
    with pytest.raises(SimulationError, match="users_per_day"):
        SimulationConfig(users_per_day=0)
    with pytest.raises(SimulationError, match="--truth"):
        Shoppers(tmp_path, ChoiceModel())


def test_the_command_runs_against_a_server_over_http(truth: Path, tmp_path: Path) -> None:
    import threading

    import uvicorn
    from typer.testing import CliRunner

    from tailwise.cli import app
    from tailwise.ports import free_port

    stub, received = _stub(Shoppers(truth, ChoiceModel()), with_experiment=True)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(stub, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            threading.Event().wait(0.05)
        args = ["simulate", "--truth", str(truth), "--url", f"http://127.0.0.1:{port}",
                "--days", "1", "--users-per-day", "40", "--raw-ids", "--out", str(tmp_path / "sim")]  # fmt: skip
        result = CliRunner().invoke(app, args)
    finally:
        server.should_exit = True
        thread.join(10)
    assert result.exit_code == 0, result.output
    assert "40 visits (0 failed)" in result.output and received
    summary = json.loads((tmp_path / "sim/summary.json").read_text())
    assert set(summary["per_variant"]) <= {"good", "bad"} and summary["requests"] == 40
    exposures = pd.read_parquet(tmp_path / "sim/exposures.parquet")
    assert set(exposures["experiment"]) == {"lists"} and len(exposures) == 40


def test_the_command_says_when_the_api_is_down(truth: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tailwise.cli import app
    from tailwise.ports import free_port

    args = ["simulate", "--truth", str(truth), "--url", f"http://127.0.0.1:{free_port()}",
            "--days", "1", "--users-per-day", "2", "--raw-ids", "--out", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 5 and "did not answer" in result.output


def test_a_shed_request_comes_back_after_retry_after_and_a_lasting_503_answers() -> None:
    """The server sheds load with 503 + Retry-After: the shopper comes back (bounded)."""
    from tailwise.experiments import simulation

    calls: list[float] = []

    def answers(refusals: int) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            calls.append(asyncio.get_event_loop().time())
            if len(calls) <= refusals:
                return httpx.Response(503, headers={"Retry-After": "0"}, json={"error": "x"})
            return httpx.Response(200, json={"ok": True})

        return httpx.MockTransport(handler)

    async def post(refusals: int) -> httpx.Response:
        calls.clear()
        async with httpx.AsyncClient(transport=answers(refusals), base_url="http://t") as client:
            return await simulation._post(client, "/recommend", {}, {})

    assert asyncio.run(post(2)).status_code == 200 and len(calls) == 3
    lasting = asyncio.run(post(100))
    assert lasting.status_code == 503 and len(calls) == simulation.OVERLOAD_RETRIES + 1
