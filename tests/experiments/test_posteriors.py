"""Bandit state: posteriors counted from exposures and outcomes, the allocation of
tailwise.experiments.bandit (burn-in on the definition's weights, a floor, an update
interval), stored in Redis (own key prefix) and read back as replicas do."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import redis

from tailwise.experiments import bandit as thompson
from tailwise.experiments.definitions import Experiment, ExperimentsParams
from tailwise.experiments.posteriors import (
    Posterior,
    PosteriorStore,
    allocation_for,
    count_posteriors,
    refresh_posteriors,
)
from tests.serving.events_support import REDIS_URL

PARAMS = ExperimentsParams(thompson_draws=4000)


def bandit(
    burn_in: int = 100, floor: float = 0.05, update_seconds: float = 0.0, arms: str = "ab"
) -> Experiment:
    return Experiment.model_validate(
        {
            "name": "exp",
            "salt": "salt-exp",
            "start": "2026-12-01",
            "bandit": {
                "metric": "click",
                "burn_in": burn_in,
                "floor": floor,
                "update_seconds": update_seconds,
            },
            "variants": [
                {"name": a, "weight": w}
                for a, w in zip(
                    arms, [0.6, *[0.4 / (len(arms) - 1)] * (len(arms) - 1)], strict=True
                )
            ],
        }
    )


def test_the_allocation_is_the_bandit_modules_thompson_sampling() -> None:
    e = bandit(burn_in=100, arms="abc")
    posteriors = {"a": Posterior(1000, 50), "b": Posterior(1000, 80), "c": Posterior(1000, 20)}
    weights = allocation_for(e, posteriors, PARAMS)
    assert weights["b"] > 0.85 and min(weights.values()) >= 0.05 - 1e-12
    assert sum(weights.values()) == pytest.approx(1.0)
    # The same numbers as tailwise.experiments.bandit.allocation given the same draws.
    again = thompson.allocation(
        {
            n: thompson.BetaPosterior().update(p.successes, p.exposures)
            for n, p in posteriors.items()
        },
        floor=0.05,
        burn_in=100,
        draws=PARAMS.thompson_draws,
        rng=np.random.default_rng(0),
    )
    assert again["b"] == pytest.approx(weights["b"], abs=0.02)


def test_burn_in_keeps_the_definitions_weights_until_every_arm_has_its_exposures() -> None:
    e = bandit(burn_in=500)
    # 900 exposures in all, but arm a has fewer than the burn-in: the definition's weights.
    early = {"a": Posterior(400, 10), "b": Posterior(500, 100)}
    assert allocation_for(e, early, PARAMS) == {"a": 0.6, "b": 0.4}
    late = {"a": Posterior(600, 20), "b": Posterior(600, 120)}
    first = allocation_for(e, late, PARAMS)
    assert first == allocation_for(e, late, PARAMS) and first["b"] >= 0.95 - 1e-9
    assert first["a"] == pytest.approx(0.05)  # the floor


def test_a_floor_the_arms_cannot_all_have_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"bandit.floor 0.4 x 3 variants passes 1"):
        bandit(floor=0.4, arms="abc")
    with pytest.raises(thompson.BanditError, match="start shares"):
        thompson.allocation(
            {"a": thompson.BetaPosterior(), "b": thompson.BetaPosterior()},
            start={"a": 0.5, "c": 0.5},
        )


def test_successes_are_exposures_with_an_attributed_click() -> None:
    exposures = pd.DataFrame(
        {
            "request_id": ["r1", "r2", "r3", "r4", "r4"],
            "user_id": ["u1", "u2", "u3", "u4", "u4"],
            "experiment": "exp",
            "variant": ["a", "a", "b", "b", "b"],
        }
    )
    outcomes = pd.DataFrame(
        {
            "request_id": ["r1", "r1", "r3", "r2"],
            "experiment": "exp",
            "event_type": ["product_view", "purchase", "product_view", "page_view"],
        }
    )
    found = count_posteriors(bandit(), exposures, outcomes, ["product_view", "purchase"])
    assert found == {"a": Posterior(2, 1), "b": Posterior(2, 1)}


@pytest.fixture
def store(client: redis.Redis) -> Iterator[PosteriorStore]:
    prefix = f"tailwise:test_{uuid.uuid4().hex[:8]}:"
    yield PosteriorStore(client, prefix)
    doomed = list(client.scan_iter(match=f"{prefix}*"))
    if doomed:
        client.delete(*doomed)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(REDIS_URL)
    yield conn
    conn.close()


def test_refresh_stores_posteriors_and_allocation_that_replicas_read(store: PosteriorStore) -> None:
    e = bandit(burn_in=10)
    n = 200
    exposures = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "user_id": [f"u{i}" for i in range(n)],
            "experiment": "exp",
            "variant": ["a" if i % 2 else "b" for i in range(n)],
        }
    )
    clicked = [f"r{i}" for i in range(n) if (i % 2 == 0 and i % 3 == 0) or i % 20 == 1]
    outcomes = pd.DataFrame(
        {"request_id": clicked, "experiment": "exp", "event_type": "product_view"}
    )
    summary = refresh_posteriors(store, [e], exposures, outcomes, PARAMS)
    assert summary["exp"]["b"]["exposures"] == 100 and summary["exp"]["b"]["successes"] == 34
    assert store.read_posteriors("exp") == {"a": Posterior(100, 10), "b": Posterior(100, 34)}
    read = store.read_allocations(["exp", "missing"])
    assert set(read) == {"exp"} and read["exp"]["b"] > 0.9
    # A second pass over the same tables stores the same state (nothing counted twice).
    refresh_posteriors(store, [e], exposures, outcomes, PARAMS)
    assert store.read_posteriors("exp")["b"] == Posterior(100, 34)
    assert store.read_allocations(["exp"]) == read


def test_the_allocation_changes_at_most_every_update_interval(store: PosteriorStore) -> None:
    e = bandit(burn_in=50, update_seconds=3600)
    ids = [f"r{i}" for i in range(200)]
    exposures = pd.DataFrame(
        {"request_id": ids, "user_id": ids, "experiment": "exp", "variant": ["a", "b"] * 100}
    )
    none = pd.DataFrame({"request_id": [], "experiment": [], "event_type": []})
    # Burn-in not reached at t=0 (no exposures): the definition's weights, stamped t=0.
    refresh_posteriors(store, [e], exposures.iloc[:0], none, PARAMS, now=0.0)
    assert store.read_allocations(["exp"])["exp"] == {"a": 0.6, "b": 0.4}
    # b wins every exposure, but an hour has not passed: posteriors move, allocation stays.
    wins = pd.DataFrame({"request_id": ids[1::2], "experiment": "exp", "event_type": "purchase"})
    summary = refresh_posteriors(store, [e], exposures, wins, PARAMS, now=1800.0)
    assert store.read_posteriors("exp")["b"] == Posterior(100, 100)
    assert summary["exp"]["b"]["weight"] == 0.4
    assert store.read_allocations(["exp"])["exp"] == {"a": 0.6, "b": 0.4}
    # Once the interval has passed the bandit's allocation is stored.
    summary = refresh_posteriors(store, [e], exposures, wins, PARAMS, now=3600.0)
    assert store.read_allocations(["exp"])["exp"]["b"] == pytest.approx(0.95)
    assert store.allocated_at("exp") == 3600.0
