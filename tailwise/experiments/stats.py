"""The statistics of an experiment: tests, intervals, sample-ratio mismatch, Holm, sequential.

Every test is a small pure function on counts or arrays, built on scipy and statsmodels
(no hand-written distributions), so the report and the benchmark (bench/experiment_stats.py)
call the same code:

    two_proportions   conversion (users who bought / users): statsmodels' pooled z-test,
                      the Wald interval of the difference (confint_proportions_2indep)
    welch             revenue per user: scipy's Welch t-test and its interval
    ratio_delta       ratio metrics (CTR = clicks / exposures, AOV = revenue / orders)
                      when the user, not the exposure, is the randomised unit: the delta
                      method's variance of a ratio of means, a normal test
    sequential        the always-valid version of any of the above: the asymptotic
                      confidence sequence of Waudby-Smith et al. (2023), the one GrowthBook
                      offers, valid however often people look
    srm               sample-ratio mismatch: chi-squared goodness of fit of users per variant
                      against the configured weights, flagged at p < 0.001
    holm              Holm's step-down adjustment across the metrics of one comparison

Each returns a `TestResult` holding the difference (treatment - control), its interval, the
p-value and the standard error, so the sequential interval can be computed from any of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

SRM_THRESHOLD = 1e-3
SEQUENTIAL_TUNING = 5000  # the sample size the confidence sequence is tightest at


class StatsError(ValueError):
    """Bad input to a statistic; the message names the parameter."""


@dataclass(frozen=True)
class TestResult:
    """One comparison of a treatment with the control on one metric."""

    test: str
    control: float
    treatment: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    std_error: float
    n_control: int
    n_treatment: int

    @property
    def relative(self) -> float:
        return self.difference / self.control if self.control else math.nan

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "relative": self.relative}


@dataclass(frozen=True)
class SrmResult:
    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float
    flagged: bool


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise StatsError(f"alpha must lie in (0, 1), got {alpha}")


def _check_sizes(**sizes: float) -> None:
    for name, n in sizes.items():
        if n < 2:
            raise StatsError(f"{name} must be at least 2, got {n}")


def two_proportions(
    x_control: int, n_control: int, x_treatment: int, n_treatment: int, alpha: float = 0.05
) -> TestResult:
    """Two-proportion z-test (pooled variance) and the Wald interval of p_t - p_c."""
    _check_alpha(alpha)
    _check_sizes(n_control=n_control, n_treatment=n_treatment)
    for name, x, n in (
        ("x_control", x_control, n_control),
        ("x_treatment", x_treatment, n_treatment),
    ):
        if not 0 <= x <= n:
            raise StatsError(f"{name} must lie in [0, {n}], got {x}")
    p_c, p_t = x_control / n_control, x_treatment / n_treatment
    se = math.sqrt(p_c * (1 - p_c) / n_control + p_t * (1 - p_t) / n_treatment)
    if x_control + x_treatment in (0, n_control + n_treatment):
        p_value = 1.0  # no variation at all: nothing can differ
    else:
        _, p = proportions_ztest([x_treatment, x_control], [n_treatment, n_control])
        p_value = float(p)
    low, high = confint_proportions_2indep(
        x_treatment, n_treatment, x_control, n_control, method="wald", compare="diff", alpha=alpha
    )
    return TestResult(
        "two-proportion z", p_c, p_t, p_t - p_c, float(low), float(high), p_value, se,
        n_control, n_treatment,
    )  # fmt: skip


def welch(control: Any, treatment: Any, alpha: float = 0.05) -> TestResult:
    """Welch's unequal-variance t-test of the means and its interval (scipy)."""
    _check_alpha(alpha)
    c, t = np.asarray(control, float), np.asarray(treatment, float)
    _check_sizes(n_control=len(c), n_treatment=len(t))
    se = math.sqrt(c.var(ddof=1) / len(c) + t.var(ddof=1) / len(t))
    if se == 0:
        d = float(t.mean() - c.mean())
        return TestResult("welch t", float(c.mean()), float(t.mean()), d, d, d,
                          1.0 if d == 0 else 0.0, 0.0, len(c), len(t))  # fmt: skip
    result = stats.ttest_ind(t, c, equal_var=False)
    ci = result.confidence_interval(1 - alpha)
    return TestResult(
        "welch t", float(c.mean()), float(t.mean()), float(t.mean() - c.mean()),
        float(ci.low), float(ci.high), float(result.pvalue), se, len(c), len(t),
    )  # fmt: skip


def ratio_mean_variance(numerator: Any, denominator: Any) -> tuple[float, float]:
    """sum(numerator) / sum(denominator) and its delta-method variance, per-unit rows."""
    x, y = np.asarray(numerator, float), np.asarray(denominator, float)
    n = len(x)
    if n < 2 or len(y) != n:
        raise StatsError(
            f"ratio needs matching numerator/denominator of 2+ units, got {n}, {len(y)}"
        )
    mx, my = x.mean(), y.mean()
    if my == 0:
        raise StatsError("ratio denominator sums to 0 (no exposures / orders in a variant)")
    cov = np.cov(x, y, ddof=1)
    r = mx / my
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (my * my * n)
    return float(r), float(max(var, 0.0))


def ratio_delta(
    num_control: Any, den_control: Any, num_treatment: Any, den_treatment: Any, alpha: float = 0.05
) -> TestResult:
    """Difference of two ratio metrics (units = users) with delta-method variances."""
    _check_alpha(alpha)
    r_c, v_c = ratio_mean_variance(num_control, den_control)
    r_t, v_t = ratio_mean_variance(num_treatment, den_treatment)
    d, se = r_t - r_c, math.sqrt(v_c + v_t)
    z = stats.norm.ppf(1 - alpha / 2)
    p = float(2 * stats.norm.sf(abs(d) / se)) if se > 0 else (1.0 if d == 0 else 0.0)
    return TestResult("delta-method z", r_c, r_t, d, d - z * se, d + z * se, p, se,
                      len(np.asarray(num_control)), len(np.asarray(num_treatment)))  # fmt: skip


def sequential(
    result: TestResult, alpha: float = 0.05, tuning: float = SEQUENTIAL_TUNING
) -> TestResult:
    """The always-valid interval and p-value of `result` (asymptotic confidence sequence).

    With N units in both arms and s^2 = N * se^2 the per-unit variance, the interval is
    d +- s * sqrt(2 (N rho^2 + 1) / (N^2 rho^2) * log(sqrt(N rho^2 + 1) / alpha)), rho chosen
    so the sequence is tightest at N = tuning. The p-value is the smallest alpha whose
    interval excludes 0 (closed form), capped at 1 and never below the fixed-n one."""
    _check_alpha(alpha)
    if tuning <= 0:
        raise StatsError(f"tuning must be positive, got {tuning}")
    n = result.n_control + result.n_treatment
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning
    s2 = n * result.std_error**2
    if s2 == 0:
        return TestResult(**{**asdict(result), "test": result.test + " (sequential)"})
    a = n * rho2 + 1
    half = math.sqrt(s2) * math.sqrt(2 * a / (n * n * rho2) * math.log(math.sqrt(a) / alpha))
    exponent = result.difference**2 / s2 * (n * n * rho2) / (2 * a)
    p = min(1.0, math.sqrt(a) * math.exp(-exponent))
    return TestResult(
        result.test + " (sequential)", result.control, result.treatment, result.difference,
        result.difference - half, result.difference + half, max(p, result.p_value),
        result.std_error, result.n_control, result.n_treatment,
    )  # fmt: skip


def srm(counts: Mapping[str, int], weights: Mapping[str, float]) -> SrmResult:
    """Chi-squared goodness of fit of units per variant against the weights (p < 0.001)."""
    missing = sorted(set(weights) ^ set(counts))
    if missing:
        raise StatsError(f"srm: variants {missing} are in only one of counts and weights")
    if any(w <= 0 for w in weights.values()):
        raise StatsError(f"srm: weights must be positive, got {dict(weights)}")
    names = sorted(weights)
    observed = np.array([counts[v] for v in names], float)
    total = observed.sum()
    if len(names) < 2 or total == 0:
        raise StatsError("srm needs at least two variants and one unit")
    w = np.array([weights[v] for v in names], float)
    expected = total * w / w.sum()
    chi2, p = stats.chisquare(observed, expected)
    return SrmResult(
        {v: int(c) for v, c in zip(names, observed, strict=True)},
        {v: float(e) for v, e in zip(names, expected, strict=True)},
        float(chi2),
        float(p),
        bool(p < SRM_THRESHOLD),
    )


def holm(p_values: Sequence[float], alpha: float = 0.05) -> list[float]:
    """Holm-adjusted p-values (statsmodels), in the order given."""
    _check_alpha(alpha)
    if not len(p_values):
        return []
    _, adjusted, _, _ = multipletests(list(p_values), alpha=alpha, method="holm")
    return [float(p) for p in adjusted]
