"""Bandit state in Redis: posteriors per (experiment, variant) and the allocation replicas use.

    exposures + outcomes (tailwise.experiments.attribution)
      --count_posteriors--> Beta(1 + successes, 1 + exposures - successes) per variant
      --allocation_for--> the definition's weights during the burn-in, then the
                          allocator's (default: Thompson sampling, `thompson_allocation`)
                          with every arm at least the floor
      --PosteriorStore.write--> tailwise:<project>:experiments:posteriors:<experiment>
                                tailwise:<project>:experiments:allocation:<experiment>
    replicas --PosteriorStore.read_allocations, every `allocation_refresh_seconds`-->
        variant weights (serving.experiments)

The event consumer (`tailwise events consume`) recounts the posteriors from the whole
exposures and events tables on each pass, so a pass that crashed or ran twice cannot count
an exposure twice. A success is an exposure with at least one attributed event of the
bandit's metric (click: any of `click_event_types`; conversion: `conversion_event_types`).
The allocator is a plain function of the posteriors so that another allocation (the
statistics package's bandit) can be dropped in; it must return weights summing to 1.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import redis

from tailwise.experiments.definitions import Experiment, ExperimentsParams

CLICK_TYPES = ("product_view", "add_to_cart", "purchase")
CONVERSION_TYPES = ("purchase",)


@dataclass(frozen=True)
class Posterior:
    """Beta-Bernoulli posterior of one variant under a uniform Beta(1, 1) prior."""

    exposures: int
    successes: int

    @property
    def alpha(self) -> float:
        return 1.0 + self.successes

    @property
    def beta(self) -> float:
        return 1.0 + self.exposures - self.successes

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)


class Allocator(Protocol):
    def __call__(
        self, posteriors: Mapping[str, Posterior], rng: np.random.Generator, floor: float
    ) -> dict[str, float]: ...


def thompson_allocation(
    posteriors: Mapping[str, Posterior],
    rng: np.random.Generator,
    floor: float,
    draws: int = 10_000,
) -> dict[str, float]:
    """Each variant's probability of being the best under the posteriors (Monte Carlo with
    `draws` joint draws), raised to at least `floor` and renormalised."""
    names = list(posteriors)
    if not names:
        return {}
    if floor * len(names) > 1:
        raise ValueError(f"floor {floor} x {len(names)} variants is over 1")
    alpha = np.array([posteriors[n].alpha for n in names])
    beta = np.array([posteriors[n].beta for n in names])
    samples = rng.beta(alpha, beta, size=(draws, len(names)))
    best = np.bincount(samples.argmax(axis=1), minlength=len(names)) / draws
    shares = floor + (1.0 - floor * len(names)) * best
    shares = shares / shares.sum()
    return {n: float(s) for n, s in zip(names, shares, strict=True)}


def count_posteriors(
    experiment: Experiment,
    exposures: pd.DataFrame,
    outcomes: pd.DataFrame,
    success_types: Iterable[str],
) -> dict[str, Posterior]:
    """Exposures and successes per variant of `experiment` (every variant, zeros too)."""
    exp = exposures.loc[exposures["experiment"] == experiment.name]
    exp = exp.drop_duplicates("request_id")
    hits = outcomes.loc[
        (outcomes["experiment"] == experiment.name)
        & outcomes["event_type"].isin(list(success_types))
        & outcomes["request_id"].notna()
    ]
    won = set(hits["request_id"])
    found = {}
    for v in experiment.variants:
        ids = exp.loc[exp["variant"] == v.name, "request_id"]
        found[v.name] = Posterior(len(ids), int(ids.isin(won).sum()))
    return found


def allocation_for(
    experiment: Experiment,
    posteriors: Mapping[str, Posterior],
    params: ExperimentsParams,
    allocator: Allocator | None = None,
) -> dict[str, float]:
    """The variant weights replicas should use now: the definition's without a bandit or
    during the burn-in, else the allocator's. Deterministic for the same counts."""
    if experiment.bandit is None:
        return experiment.weights
    total = sum(p.exposures for p in posteriors.values())
    if total < experiment.bandit.burn_in:
        return experiment.weights
    counts = json.dumps(sorted((k, p.exposures, p.successes) for k, p in posteriors.items()))
    seed = int.from_bytes(hashlib.sha256(f"{experiment.salt}|{counts}".encode()).digest()[:8])
    rng = np.random.default_rng([params.seed, seed])
    floor = experiment.bandit.floor
    if allocator is None:
        return thompson_allocation(posteriors, rng, floor, params.thompson_draws)
    weights = allocator(posteriors, rng, floor)
    if abs(sum(weights.values()) - 1.0) > 1e-6 or set(weights) != set(posteriors):
        raise ValueError(f"allocator returned weights {weights}: one per variant, summing to 1")
    return weights


class PosteriorStore:
    """The two hashes per experiment under `prefix` (serving.keys.Keys.prefix)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client, self.prefix = client, prefix

    def posteriors_key(self, experiment: str) -> str:
        return f"{self.prefix}experiments:posteriors:{experiment}"

    def allocation_key(self, experiment: str) -> str:
        return f"{self.prefix}experiments:allocation:{experiment}"

    def write(
        self, experiment: str, posteriors: Mapping[str, Posterior], weights: Mapping[str, float]
    ) -> None:
        """Replace both hashes in one transaction (a replica never reads half of them)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.posteriors_key(experiment), self.allocation_key(experiment))
        pipe.hset(
            self.posteriors_key(experiment),
            mapping={
                n: json.dumps({"exposures": p.exposures, "successes": p.successes})
                for n, p in posteriors.items()
            },
        )
        pipe.hset(self.allocation_key(experiment), mapping={n: repr(w) for n, w in weights.items()})
        pipe.execute()

    def read_posteriors(self, experiment: str) -> dict[str, Posterior]:
        raw: dict[Any, Any] = self.client.hgetall(self.posteriors_key(experiment))  # type: ignore[assignment]
        found = {}
        for name, body in raw.items():
            data = json.loads(body)
            found[_text(name)] = Posterior(int(data["exposures"]), int(data["successes"]))
        return found

    def read_allocations(self, experiments: Iterable[str]) -> dict[str, dict[str, float]]:
        """Experiment -> weights, for those that have an allocation stored (one round trip)."""
        names = list(experiments)
        if not names:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.allocation_key(name))
        found = {}
        for name, raw in zip(names, pipe.execute(), strict=True):
            if raw:
                found[name] = {_text(k): float(v) for k, v in raw.items()}
        return found


def refresh_posteriors(
    store: PosteriorStore,
    experiments: Iterable[Experiment],
    exposures: pd.DataFrame | None,
    outcomes: pd.DataFrame,
    params: ExperimentsParams,
    allocator: Allocator | None = None,
) -> dict[str, dict[str, Any]]:
    """Recount every bandit experiment's posteriors and store them with the allocation;
    returns {experiment: {variant: {exposures, successes, weight}}}."""
    summary: dict[str, dict[str, Any]] = {}
    for e in experiments:
        if e.bandit is None:
            continue
        if exposures is None or exposures.empty:
            posteriors = {v.name: Posterior(0, 0) for v in e.variants}
        else:
            types = CLICK_TYPES if e.bandit.metric == "click" else CONVERSION_TYPES
            posteriors = count_posteriors(e, exposures, outcomes, types)
        weights = allocation_for(e, posteriors, params, allocator)
        store.write(e.name, posteriors, weights)
        summary[e.name] = {
            n: {"exposures": p.exposures, "successes": p.successes, "weight": weights[n]}
            for n, p in posteriors.items()
        }
    return summary


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
