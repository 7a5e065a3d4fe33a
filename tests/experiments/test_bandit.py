"""Thompson sampling: conjugate updates, burn-in, floor, determinism, and it finds the best arm."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from tailwise.experiments.bandit import (
    BanditError,
    BetaPosterior,
    NormalPosterior,
    allocation,
    update_all,
)


def test_beta_update_adds_counts() -> None:
    p = BetaPosterior().update(30, 100)
    assert (p.alpha, p.beta, p.n) == (31, 71, 100)
    assert p.mean == pytest.approx(31 / 102)


def test_normal_posterior_mean_and_spread_follow_the_data() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(12.0, 4.0, 5000)
    p = NormalPosterior().update(len(x), float(x.sum()), float((x**2).sum()))
    assert p.mean == pytest.approx(x.mean(), abs=1e-3)
    draws = p.sample(np.random.default_rng(4), 20000)
    # The posterior of the mean: sd close to s / sqrt(n) (t with 2a degrees of freedom).
    assert draws.std() == pytest.approx(x.std(ddof=1) / np.sqrt(len(x)), rel=0.05)
    scale = np.sqrt(p.b / (p.a * p.kappa))
    assert draws.std() == pytest.approx(sps.t(2 * p.a, loc=p.mu, scale=scale).std(), rel=0.05)


def test_burn_in_gives_equal_shares() -> None:
    arms = {"a": BetaPosterior().update(1, 50), "b": BetaPosterior().update(40, 50)}
    assert allocation(arms, floor=0.05, burn_in=100) == {"a": 0.5, "b": 0.5}


def test_burn_in_uses_the_start_shares_when_given() -> None:
    arms = {"a": BetaPosterior().update(5, 50), "b": BetaPosterior()}
    assert allocation(arms, burn_in=10, start={"a": 0.7, "b": 0.3}) == {"a": 0.7, "b": 0.3}
    with pytest.raises(BanditError, match="summing to 1"):
        allocation(arms, burn_in=10, start={"a": 0.7, "b": 0.7})


def test_allocation_follows_the_probability_of_being_best_with_a_floor() -> None:
    arms = {
        "a": BetaPosterior().update(100, 1000),
        "b": BetaPosterior().update(150, 1000),
        "c": BetaPosterior().update(102, 1000),
    }
    shares = allocation(arms, floor=0.05, burn_in=100, draws=4000, rng=np.random.default_rng(0))
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["b"] > 0.85 and min(shares.values()) >= 0.05
    again = allocation(arms, floor=0.05, burn_in=100, draws=4000, rng=np.random.default_rng(0))
    assert shares == again


def test_revenue_arms_use_the_normal_posterior() -> None:
    rng = np.random.default_rng(5)
    arms = {}
    for name, mean in (("low", 1.0), ("high", 1.3)):
        x = rng.exponential(mean, 3000)
        arms[name] = NormalPosterior().update(len(x), float(x.sum()), float((x**2).sum()))
    shares = allocation(arms, floor=0.0, burn_in=10, rng=np.random.default_rng(1))
    assert shares["high"] > 0.95


def test_update_all_and_bad_parameters() -> None:
    arms = {"a": BetaPosterior(), "b": BetaPosterior()}
    new = update_all(arms, {"a": 3}, {"a": 10})
    assert new["a"].n == 10 and new["b"].n == 0
    with pytest.raises(BanditError, match="unknown variants"):
        update_all(arms, {"z": 1}, {"z": 2})
    with pytest.raises(BanditError, match="floor"):
        allocation(arms, floor=0.6)
    with pytest.raises(BanditError, match="at least 2"):
        allocation({"a": BetaPosterior()})
    with pytest.raises(BanditError, match="successes"):
        BetaPosterior().update(5, 3)
