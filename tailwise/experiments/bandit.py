"""Thompson sampling over an experiment's variants, as pure functions.

The request path keeps one posterior per variant (in Redis, tailwise.experiments.posteriors),
updates it from attributed outcomes with `update`, and at a set interval asks `allocation`
for the traffic shares it then assigns by:

    BetaPosterior     click or conversion per exposure (Beta-Bernoulli, conjugate counts)
    NormalPosterior   revenue per exposure (Normal-Inverse-Gamma on sufficient statistics:
                      n, sum, sum of squares)

    allocation(posteriors, floor, burn_in, draws, rng, start) -> {variant: share}
        `start` (default: equal shares) until every arm has `burn_in` observations; then
        each arm's share is
        the Monte Carlo probability (over `draws` posterior draws from a seeded
        numpy Generator) that its mean is the highest, mixed with a floor so no arm
        starves: share = floor + (1 - k * floor) * P(best).

Nothing here does I/O or keeps state; the same posteriors, draws and seed give the same
allocation in every process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np


class BanditError(ValueError):
    """A bad posterior or allocation parameter; the message names it."""


@dataclass(frozen=True)
class BetaPosterior:
    """Beta(alpha, beta) over a rate; the prior Beta(1, 1) is uniform."""

    alpha: float = 1.0
    beta: float = 1.0
    n: int = 0  # observations (exposures) folded in

    def __post_init__(self) -> None:
        if self.alpha <= 0 or self.beta <= 0:
            raise BanditError(
                f"BetaPosterior: alpha and beta must be > 0, got {self.alpha}, {self.beta}"
            )

    def update(self, successes: int, trials: int) -> BetaPosterior:
        if trials < 0 or not 0 <= successes <= trials:
            raise BanditError(f"update: need 0 <= successes <= trials, got {successes}, {trials}")
        return BetaPosterior(
            self.alpha + successes, self.beta + trials - successes, self.n + trials
        )

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def sample(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        return rng.beta(self.alpha, self.beta, size=draws)


@dataclass(frozen=True)
class NormalPosterior:
    """Normal-Inverse-Gamma over (mean, variance) of a value per exposure (e.g. revenue).

    mean ~ N(mu, sigma^2 / kappa), sigma^2 ~ InvGamma(a, b); the default prior is vague
    (kappa and a small) so a few observations dominate it."""

    mu: float = 0.0
    kappa: float = 1e-3
    a: float = 1.0
    b: float = 1.0
    n: int = 0

    def __post_init__(self) -> None:
        if self.kappa <= 0 or self.a <= 0 or self.b <= 0:
            raise BanditError(f"NormalPosterior: kappa, a, b must be > 0, got {self}")

    def update(self, count: int, total: float, total_squares: float) -> NormalPosterior:
        """Fold in `count` observations with sum `total` and sum of squares `total_squares`."""
        if count < 0:
            raise BanditError(f"update: count must be >= 0, got {count}")
        if count == 0:
            return self
        mean = total / count
        ss = max(total_squares - count * mean * mean, 0.0)
        kappa = self.kappa + count
        return NormalPosterior(
            mu=(self.kappa * self.mu + total) / kappa,
            kappa=kappa,
            a=self.a + count / 2,
            b=self.b + ss / 2 + self.kappa * count * (mean - self.mu) ** 2 / (2 * kappa),
            n=self.n + count,
        )

    @property
    def mean(self) -> float:
        return self.mu

    def sample(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        variance = self.b / rng.gamma(self.a, 1.0, size=draws)  # InvGamma(a, b)
        return rng.normal(self.mu, np.sqrt(variance / self.kappa))


Posterior = BetaPosterior | NormalPosterior


def allocation(
    posteriors: Mapping[str, Posterior],
    floor: float = 0.05,
    burn_in: int = 100,
    draws: int = 2000,
    rng: np.random.Generator | None = None,
    start: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Traffic share per variant (sums to 1): P(best) under the posteriors, with a floor;
    during the burn-in `start` (one share per variant, summing to 1; default equal)."""
    k = len(posteriors)
    if k < 2:
        raise BanditError(f"allocation needs at least 2 variants, got {k}")
    if not 0 <= floor <= 1 / k:
        raise BanditError(f"floor must lie in [0, 1/{k}] for {k} variants, got {floor}")
    if burn_in < 0 or draws < 1:
        raise BanditError(f"burn_in must be >= 0 and draws >= 1, got {burn_in}, {draws}")
    names = sorted(posteriors)
    if start is not None and (
        set(start) != set(names) or abs(sum(start.values()) - 1) > 1e-6 or min(start.values()) < 0
    ):
        raise BanditError(f"start shares {dict(start)}: one per variant {names}, summing to 1")
    if min(posteriors[v].n for v in names) < burn_in:
        return {v: float(start[v]) for v in names} if start else dict.fromkeys(names, 1 / k)
    rng = rng if rng is not None else np.random.default_rng(0)
    samples = np.stack([posteriors[v].sample(rng, draws) for v in names])
    wins = np.bincount(samples.argmax(axis=0), minlength=k) / draws
    shares = floor + (1 - k * floor) * wins
    return {v: float(s) for v, s in zip(names, shares, strict=True)}


def update_all(
    posteriors: Mapping[str, BetaPosterior], successes: Mapping[str, int], trials: Mapping[str, int]
) -> dict[str, BetaPosterior]:
    """Every arm's Beta posterior updated with its counts since the last update."""
    unknown = sorted((set(successes) | set(trials)) - set(posteriors))
    if unknown:
        raise BanditError(f"update_all: counts for unknown variants {unknown}")
    return {
        v: p.update(successes.get(v, 0), trials.get(v, 0)) if v in trials else replace(p)
        for v, p in posteriors.items()
    }
