"""Bandit state in Redis: posteriors per (experiment, variant) and the allocation replicas use.

    exposures + outcomes (tailwise.experiments.attribution)
      --count_posteriors--> Beta(1 + successes, 1 + exposures - successes) per variant
      --allocation_for--> tailwise.experiments.bandit.allocation: the definition's weights
                          until every variant has `burn_in` exposures, then Thompson
                          sampling's P(best) with every arm at least the floor
      --PosteriorStore.write--> tailwise:<project>:experiments:posteriors:<experiment>
                                tailwise:<project>:experiments:allocation:<experiment>
                                tailwise:<project>:experiments:allocated_at:<experiment>
    replicas --PosteriorStore.read_allocations, every `allocation_refresh_seconds`-->
        variant weights (serving.experiments)

The event consumer (`tailwise events consume`) recounts the posteriors from the whole
exposures and events tables on each pass, so a pass that crashed or ran twice cannot count
an exposure twice. A success is an exposure with at least one attributed event of the
bandit's metric (click: any of `CLICK_TYPES`; conversion: `CONVERSION_TYPES`). The
allocation itself changes at most every `bandit.update_seconds` (the definition's): a pass
sooner than that stores the new posteriors and keeps the allocation replicas use.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import redis

from tailwise.experiments import bandit
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

    def as_bandit(self) -> bandit.BetaPosterior:
        """The same posterior as the bandit's math takes it."""
        return bandit.BetaPosterior(self.alpha, self.beta, self.exposures)


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
    experiment: Experiment, posteriors: Mapping[str, Posterior], params: ExperimentsParams
) -> dict[str, float]:
    """The variant weights replicas should use now: the definition's without a bandit,
    else tailwise.experiments.bandit.allocation (the definition's weights during the
    burn-in). Deterministic for the same counts: the draws are seeded by them."""
    if experiment.bandit is None:
        return experiment.weights
    counts = json.dumps(sorted((k, p.exposures, p.successes) for k, p in posteriors.items()))
    seed = int.from_bytes(hashlib.sha256(f"{experiment.salt}|{counts}".encode()).digest()[:8])
    return bandit.allocation(
        {n: p.as_bandit() for n, p in posteriors.items()},
        floor=experiment.bandit.floor,
        burn_in=experiment.bandit.burn_in,
        draws=params.thompson_draws,
        rng=np.random.default_rng([params.seed, seed]),
        start=experiment.weights,
    )


class PosteriorStore:
    """The two hashes per experiment under `prefix` (serving.keys.Keys.prefix), and when
    the allocation was last changed (seconds since the epoch)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        from tailwise.redis_clients import is_cluster

        self.client, self.prefix = client, prefix
        # On a Redis Cluster the experiment name is a hash tag: the transaction in `write`
        # touches its three keys, which must then share a slot.
        self._tag = "{%s}" if is_cluster(client) else "%s"

    def posteriors_key(self, experiment: str) -> str:
        return f"{self.prefix}experiments:posteriors:{self._tag % experiment}"

    def allocation_key(self, experiment: str) -> str:
        return f"{self.prefix}experiments:allocation:{self._tag % experiment}"

    def allocated_at_key(self, experiment: str) -> str:
        return f"{self.prefix}experiments:allocated_at:{self._tag % experiment}"

    def write(
        self,
        experiment: str,
        posteriors: Mapping[str, Posterior],
        weights: Mapping[str, float] | None,
        now: float | None = None,
    ) -> None:
        """Replace the posteriors and, unless `weights` is None (the allocation stays),
        the allocation and its time, in one transaction (a replica never reads half)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.posteriors_key(experiment))
        pipe.hset(
            self.posteriors_key(experiment),
            mapping={
                n: json.dumps({"exposures": p.exposures, "successes": p.successes})
                for n, p in posteriors.items()
            },
        )
        if weights is not None:
            pipe.delete(self.allocation_key(experiment))
            pipe.hset(
                self.allocation_key(experiment), mapping={n: repr(w) for n, w in weights.items()}
            )
            pipe.set(self.allocated_at_key(experiment), repr(time.time() if now is None else now))
        pipe.execute()

    def allocated_at(self, experiment: str) -> float | None:
        raw: Any = self.client.get(self.allocated_at_key(experiment))
        return None if raw is None else float(raw)

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
    now: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Recount every bandit experiment's posteriors and store them, with a new allocation
    when `bandit.update_seconds` have passed since the stored one was made (or there is
    none); returns {experiment: {variant: {exposures, successes, weight}}}, the weights
    being those replicas read now."""
    now = time.time() if now is None else now
    summary: dict[str, dict[str, Any]] = {}
    for e in experiments:
        if e.bandit is None:
            continue
        if exposures is None or exposures.empty:
            posteriors = {v.name: Posterior(0, 0) for v in e.variants}
        else:
            types = CLICK_TYPES if e.bandit.metric == "click" else CONVERSION_TYPES
            posteriors = count_posteriors(e, exposures, outcomes, types)
        stored = store.read_allocations([e.name]).get(e.name)
        made = store.allocated_at(e.name)
        if (
            stored is not None
            and set(stored) == set(e.weights)
            and made is not None
            and now - made < e.bandit.update_seconds
        ):
            weights = stored  # not due yet: replicas keep the allocation they have
            store.write(e.name, posteriors, None, now)
        else:
            weights = allocation_for(e, posteriors, params)
            store.write(e.name, posteriors, weights, now)
        summary[e.name] = {
            n: {"exposures": p.exposures, "successes": p.successes, "weight": weights[n]}
            for n, p in posteriors.items()
        }
    return summary


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
