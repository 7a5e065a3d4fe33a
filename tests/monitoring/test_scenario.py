"""The closed loop end to end: control and shift, each trained, served, replayed, monitored.

Slow (two tiny trainings, a retraining, two Ray Serve apps): it runs the scenario of
bench/drift_scenario.py at its --tiny scale on a private redis-server, and checks what the issue asks:
the control run retrains nothing; the shifted run detects the shift in the incoming events,
retrains through DVC on data that includes the served events, promotes a challenger that
scores better on the shifted period, and the serving app answers with it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bench.scenario import SHIFT, ScenarioConfig, ScenarioResult, run_scenario, scenario_params
from tailwise import registry
from tailwise.ports import free_port
from tests.conftest import PrivateRedis

pytestmark = pytest.mark.slow


def _run(name: str, shift: dict | None, root: Path, redis_url: str) -> ScenarioResult:
    cfg = ScenarioConfig(
        name=f"{name}_{free_port()}",
        users=1500,
        items=200,
        days=40,
        shift_days=10,
        shift=shift,
        requests_per_day=30,
        port=free_port(),
        redis_url=redis_url,
        params=scenario_params(tiny=True),
    )
    return run_scenario(cfg, root / name)


@pytest.fixture(scope="module")
def redis_url(redis_server: Callable[[], PrivateRedis]) -> str:
    return redis_server().url


@pytest.mark.timeout(1800)  # trains and serves like the shift run: past 600 s on a busy machine
def test_control_run_retrains_nothing(tmp_path: Path, redis_url: str) -> None:
    result = _run("control", None, tmp_path, redis_url)
    assert result.request_errors == 0, result.error_samples
    assert result.replayed_requests == 300
    assert not result.loop.retrain, result.loop.reasons
    assert result.loop.challenger is None and "retrain" not in result.loop.seconds
    models = tmp_path / "control/data/models"
    assert [e.action for e in registry.entries(models)] == ["published"]
    assert result.serving_version_after == result.champion


@pytest.mark.timeout(1800)  # serves, detects, retrains and promotes: ~5 min, 3x on a slow day
def test_shift_is_detected_retrained_on_served_events_and_promoted(
    tmp_path: Path, redis_url: str
) -> None:
    shift = {k: v for k, v in SHIFT.items() if k != "new_items_share"} | {"new_items": 20}
    result = _run("shift", shift, tmp_path, redis_url)
    root = tmp_path / "shift"
    assert result.request_errors == 0, result.error_samples
    summary = json.loads((Path(result.loop.report or "").parent / "summary.json").read_text())
    assert {"device", "category"} <= set(summary["events"]["drift"]["drifted"])
    assert result.loop.retrain and any("incoming-event drift" in r for r in result.loop.reasons)
    # The retrain ran through DVC, on data that includes what the API accepted.
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    served = [d for d in lock["stages"]["ingest"]["deps"] if d["path"] == "data/served/events"]
    assert served and served[0]["nfiles"] > 0
    report = json.loads((root / "data/clean/quality_report.json").read_text())
    assert "served_events" in report["sources"]
    # The challenger won on the shifted holdout, was promoted, and serves.
    assert result.loop.decision == "promoted", result.loop.decision_reasons
    scores = result.loop.scores
    assert scores["challenger"]["ndcg@10"] > scores["champion"]["ndcg@10"]
    models = root / "data/models"
    assert registry.champion(models) == result.loop.challenger != result.champion
    assert [e.action for e in registry.entries(models)] == ["published", "published", "promoted"]
    assert result.serving_version_after == result.loop.challenger
    assert result.shift_to_promotion_s is not None and result.shift_to_promotion_s > 0
