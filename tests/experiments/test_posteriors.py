"""Bandit state: posteriors counted from exposures and outcomes, Thompson allocation with a
burn-in and a floor, both stored in Redis (own key prefix) and read back as replicas do."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis

from tailwise.experiments.definitions import Experiment, ExperimentsParams
from tailwise.experiments.posteriors import (
    Posterior,
    PosteriorStore,
    allocation_for,
    count_posteriors,
    refresh_posteriors,
    thompson_allocation,
)
from tests.serving.events_support import REDIS_URL

PARAMS = ExperimentsParams(thompson_draws=4000)


def bandit(burn_in: int = 100, floor: float = 0.05) -> Experiment:
    return Experiment.model_validate(
        {
            "name": "exp",
            "salt": "salt-exp",
            "start": "2026-12-01",
            "bandit": {"metric": "click", "burn_in": burn_in, "floor": floor},
            "variants": [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5}],
        }
    )


def test_thompson_moves_traffic_to_the_better_arm_and_keeps_the_floor() -> None:
    posteriors = {"a": Posterior(1000, 50), "b": Posterior(1000, 80), "c": Posterior(1000, 20)}
    weights = thompson_allocation(posteriors, np.random.default_rng(0), 0.05, 4000)
    assert weights["b"] > 0.85 and min(weights.values()) >= 0.05 - 1e-12
    assert sum(weights.values()) == pytest.approx(1.0)
    even = thompson_allocation(
        {"a": Posterior(0, 0), "b": Posterior(0, 0)}, np.random.default_rng(0), 0.0, 4000
    )
    assert even["a"] == pytest.approx(0.5, abs=0.03)


def test_burn_in_keeps_the_definitions_weights_then_the_allocation_is_deterministic() -> None:
    e = bandit(burn_in=1000)
    early = {"a": Posterior(300, 10), "b": Posterior(300, 60)}
    assert allocation_for(e, early, PARAMS) == {"a": 0.5, "b": 0.5}
    late = {"a": Posterior(600, 20), "b": Posterior(600, 120)}
    first = allocation_for(e, late, PARAMS)
    assert first == allocation_for(e, late, PARAMS) and first["b"] >= 0.95 - 1e-9
    assert first["a"] == pytest.approx(0.05)  # the floor

    def bad(posteriors: Any, rng: np.random.Generator, floor: float) -> dict[str, float]:
        return {"a": 0.7, "b": 0.7}

    with pytest.raises(ValueError, match="summing to 1"):
        allocation_for(e, late, PARAMS, bad)


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
