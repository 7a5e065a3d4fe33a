"""The statistics against textbook values and scipy / statsmodels cross-checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from tailwise.experiments import stats

# R's `sleep` data set; t.test(extra ~ group, data = sleep) is the textbook Welch example.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_welch_matches_the_sleep_example() -> None:
    r = stats.welch(SLEEP_2, SLEEP_1)  # treatment group 1 minus control group 2
    assert r.difference == pytest.approx(-1.58)
    assert r.p_value == pytest.approx(0.07939, abs=5e-5)
    assert (r.ci_low, r.ci_high) == pytest.approx((-3.3654832, 0.2054832), abs=1e-6)


def test_two_proportions_matches_prop_test_without_correction() -> None:
    # prop.test(c(15, 25), c(50, 50), correct = FALSE): X-squared = 4.1667, p = 0.04123
    r = stats.two_proportions(15, 50, 25, 50)
    assert r.difference == pytest.approx(0.2)
    assert r.p_value == pytest.approx(0.04123, abs=5e-5)
    chi2, p, _, _ = sps.chi2_contingency([[15, 35], [25, 25]], correction=False)
    assert r.p_value == pytest.approx(p) and chi2 == pytest.approx(4.1667, abs=1e-4)
    se = math.sqrt(0.3 * 0.7 / 50 + 0.5 * 0.5 / 50)
    assert (r.ci_low, r.ci_high) == pytest.approx((0.2 - 1.959964 * se, 0.2 + 1.959964 * se))


def test_delta_method_reduces_to_the_mean_with_one_exposure_each() -> None:
    rng = np.random.default_rng(1)
    c, t = rng.binomial(1, 0.1, 4000), rng.binomial(1, 0.12, 4000)
    ones = np.ones(4000)
    r = stats.ratio_delta(c, ones, t, ones)
    assert r.std_error == pytest.approx(stats.welch(c, t).std_error, rel=1e-9)


def test_delta_method_variance_matches_the_spread_of_simulated_ratios() -> None:
    rng = np.random.default_rng(2)
    ratios, variances = [], []
    for _ in range(400):
        exposures = rng.integers(1, 8, 2000)
        clicks = rng.binomial(exposures, rng.beta(2, 18, 2000))  # users differ: clustered
        r, v = stats.ratio_mean_variance(clicks, exposures)
        ratios.append(r)
        variances.append(v)
    assert np.mean(variances) == pytest.approx(np.var(ratios, ddof=1), rel=0.2)


def test_srm_flags_48_52_and_not_a_balanced_split() -> None:
    flagged = stats.srm({"a": 9600, "b": 10400}, {"a": 0.5, "b": 0.5})
    assert flagged.chi2 == pytest.approx(32.0) and flagged.flagged
    assert flagged.p_value == pytest.approx(sps.chi2.sf(32.0, 1))
    fine = stats.srm({"a": 10030, "b": 9970}, {"a": 0.5, "b": 0.5})
    assert not fine.flagged and fine.expected == {"a": 10000.0, "b": 10000.0}
    weighted = stats.srm({"a": 2000, "b": 8000}, {"a": 0.2, "b": 0.8})
    assert weighted.chi2 == 0 and not weighted.flagged


def test_holm_matches_the_step_down_by_hand() -> None:
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_sequential_interval_is_wider_and_its_p_value_inverts_it() -> None:
    fixed = stats.two_proportions(900, 10000, 1000, 10000)
    seq = stats.sequential(fixed, alpha=0.05)
    assert seq.ci_low < fixed.ci_low and seq.ci_high > fixed.ci_high
    assert seq.p_value >= fixed.p_value
    # The always-valid p-value is below alpha exactly when the interval leaves out 0.
    for clicks in range(900, 1101, 10):
        s = stats.sequential(stats.two_proportions(900, 10000, clicks, 10000), alpha=0.05)
        assert (s.p_value < 0.05) == (s.ci_low > 0 or s.ci_high < 0)


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda: stats.two_proportions(5, 2, 1, 10), "x_control"),
        (lambda: stats.welch([1.0], [1.0, 2.0]), "n_control"),
        (lambda: stats.two_proportions(1, 10, 1, 10, alpha=1.5), "alpha"),
        (lambda: stats.srm({"a": 5}, {"a": 0.5, "b": 0.5}), "only one"),
        (lambda: stats.ratio_delta([1, 2], [0, 0], [1, 2], [1, 1]), "denominator"),
    ],
)
def test_bad_input_names_the_parameter(call, word: str) -> None:
    with pytest.raises(stats.StatsError, match=word):
        call()
