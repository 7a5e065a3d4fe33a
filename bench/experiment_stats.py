"""Benchmark: do the experiment statistics keep their promises? Figures, not timings.

Simulated experiments with known truth run through tailwise.experiments.stats and
tailwise.experiments.bandit (the code the report and the request path use):

  A/A              no true difference: the share of experiments a test calls significant at
                   alpha 0.05 (conversion by the two-proportion z-test; revenue per user,
                   skewed with many zeros, by Welch's t-test) must lie in 4.0-6.0%
  A/A ratio        CTR per exposure, users seen 1-15 times with their own click rates: the
                   delta method over users in 4.0-6.0%; a z-test treating exposures as
                   independent far above (shown, so the reason for the delta method shows)
  peeking          the same A/A looked at daily for 14 days, stopping at the first
                   significant look: the naive test far above 6%, the confidence sequence
                   (always-valid) at most 6% (it holds for continuous monitoring, so with
                   14 looks it is conservative by design), and on the same daily data the
                   group-sequential test (Lan-DeMets spending, O'Brien-Fleming- and
                   Pocock-type; tailwise.experiments.group_sequential, looks recorded as a
                   report records them) in 4.0-6.0%
  unequal looks    the group-sequential test when traffic varies by day of week and the
                   plan's users are not reached (the planned 14th look spends what is
                   left): in 4.0-6.0%
  SRM              balanced traffic: false alarms at p < 0.001 at most 0.2%; a 48/52 split
                   of 20,000 users: detected in at least 95% of runs
  power            conversion 10% -> 11.5% (MDE +1.5 points), the sample size statsmodels
                   says gives 80% power: empirical power within 3 points of the analytic one
  CI coverage      the 95% intervals (Wald difference of proportions; Welch) cover the true
                   difference in 94-96% of runs
  Thompson         four arms with known rates, 10,000 rounds, posteriors updated every 10
                   rounds, floor 2%, burn-in 50 per arm: expected cumulative regret below
                   half of a uniform split's (mean over repetitions)

Every figure has its band; the script exits 1 when one misses. Results:
bench/results/experiment_stats.{json,md}.

    python bench/experiment_stats.py    (7-20 minutes on a shared core; --scale 0.1 for a quick look)
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from statsmodels.stats.power import NormalIndPower  # noqa: E402
from statsmodels.stats.proportion import proportion_effectsize  # noqa: E402

from tailwise.experiments import bandit, stats  # noqa: E402
from tailwise.experiments import group_sequential as gs  # noqa: E402

ALPHA = 0.05


def aa_conversion(rng: np.random.Generator, runs: int, n: int = 5000, p: float = 0.1) -> float:
    x = rng.binomial(n, p, size=(runs, 2))
    hits = [stats.two_proportions(int(a), n, int(b), n).p_value < ALPHA for a, b in x]
    return float(np.mean(hits))


def revenue(rng: np.random.Generator, size: Any) -> np.ndarray:
    """Revenue per user: 8% buy, order values log-normal (mean about 60)."""
    buys = rng.random(size) < 0.08
    return np.where(buys, rng.lognormal(3.8, 0.8, size), 0.0)


def aa_revenue(rng: np.random.Generator, runs: int, n: int = 2000) -> float:
    hits = [stats.welch(revenue(rng, n), revenue(rng, n)).p_value < ALPHA for _ in range(runs)]
    return float(np.mean(hits))


def aa_ctr(rng: np.random.Generator, runs: int, n: int = 4000) -> tuple[float, float]:
    """A/A on CTR per exposure with users seen 1-15 times and clicking at their own rate:
    (delta method over users, naive z-test treating exposures as independent)."""
    delta = naive = 0
    for _ in range(runs):
        arms = []
        for _ in range(2):
            exposures = rng.integers(1, 16, n)
            arms.append((rng.binomial(exposures, rng.beta(0.5, 4.5, n)), exposures))
        (xc, ec), (xt, et) = arms
        delta += stats.ratio_delta(xc, ec, xt, et).p_value < ALPHA
        naive += (
            stats.two_proportions(
                int(xc.sum()), int(ec.sum()), int(xt.sum()), int(et.sum())
            ).p_value
            < ALPHA
        )
    return delta / runs, naive / runs


def peeking(
    rng: np.random.Generator, runs: int, days: int = 14, per_day: int = 500, p: float = 0.1
) -> dict[str, float]:
    """Share of A/A experiments stopped as significant at any daily look: naive, confidence
    sequence, group sequential (O'Brien-Fleming- and Pocock-type spending), same data."""
    daily = rng.binomial(per_day, p, size=(runs, days, 2)).cumsum(axis=1)
    users = np.full(days, 2 * per_day).cumsum()
    plans = {
        f"group_{spending}": gs.SequentialPlan(
            method="group_sequential", planned_users=int(users[-1]), spending=spending
        )
        for spending in gs.SPENDING
    }
    hits = dict.fromkeys(["naive", "confidence_sequence", *plans], 0)
    for run in daily:
        hit = dict.fromkeys(hits, False)
        previous: dict[str, dict[str, Any] | None] = dict.fromkeys(plans)
        for day, (a, b) in enumerate(run, start=1):
            n = day * per_day
            result = stats.two_proportions(int(a), n, int(b), n)
            hit["naive"] |= result.p_value < ALPHA
            seq = stats.sequential(result, ALPHA, tuning=2 * days * per_day)
            hit["confidence_sequence"] |= seq.p_value < ALPHA
            for name, plan in plans.items():
                crossed, previous[name] = group_look(result, previous[name], 2 * n, plan)
                hit[name] |= crossed
        for name in hits:
            hits[name] += hit[name]
    return {name: count / runs for name, count in hits.items()}


def group_look(
    result: stats.TestResult,
    previous: dict[str, Any] | None,
    users: int,
    plan: gs.SequentialPlan,
) -> tuple[bool, dict[str, Any]]:
    """One report of a group-sequential plan, as tailwise.experiments.analysis makes it: the
    looks read back from the previous report's section; crossed or not, and the new section."""
    looks = gs.next_looks(previous, users, "", plan, ALPHA)
    crossed = gs.holm_test({"conversion": result}, looks, ALPHA, plan.spending)["conversion"]
    return bool(crossed["crossed"]), looks.section(plan, ALPHA)


WEEK = np.array([0.7, 0.9, 1.0, 1.0, 1.1, 1.5, 0.8])  # traffic by day of week (mean 1)


def unequal_looks(
    rng: np.random.Generator, runs: int, per_day: int = 500, p: float = 0.1
) -> tuple[float, list[float]]:
    """A/A with 14 daily looks whose traffic follows WEEK, planned at 7% more users than
    arrive: the plan's 14th look is final and spends what is left. The share stopped as
    significant, and the information fractions."""
    n = np.round(per_day * np.tile(WEEK, 2)).astype(int).cumsum()
    planned = int(2 * n[-1] * 1.07)
    plan = gs.SequentialPlan(
        method="group_sequential", planned_users=planned, spending="obrien_fleming", looks=14
    )
    hits = 0
    fractions: list[float] = []  # the same in every run: the traffic is the plan's
    for _ in range(runs):
        x = rng.binomial(np.diff(n, prepend=0)[:, None], p, size=(len(n), 2)).cumsum(axis=0)
        previous: dict[str, Any] | None = None
        hit = False
        for day, (a, b) in enumerate(x):
            result = stats.two_proportions(int(a), int(n[day]), int(b), int(n[day]))
            crossed, previous = group_look(result, previous, 2 * int(n[day]), plan)
            hit |= crossed
        fractions = [lk["fraction"] for lk in (previous or {}).get("looks", [])]
        hits += hit
    return hits / runs, fractions


def srm_rates(rng: np.random.Generator, runs: int, detect_runs: int) -> tuple[float, float]:
    weights = {"a": 0.5, "b": 0.5}
    balanced = rng.binomial(20_000, 0.5, runs)
    alarms = [stats.srm({"a": int(a), "b": 20_000 - int(a)}, weights).flagged for a in balanced]
    skewed = rng.binomial(20_000, 0.48, detect_runs)
    found = [stats.srm({"a": int(a), "b": 20_000 - int(a)}, weights).flagged for a in skewed]
    return float(np.mean(alarms)), float(np.mean(found))


def power(rng: np.random.Generator, runs: int) -> dict[str, float]:
    p0, p1 = 0.10, 0.115
    h = proportion_effectsize(p1, p0)
    n = math.ceil(NormalIndPower().solve_power(effect_size=h, alpha=ALPHA, power=0.8))
    analytic = float(NormalIndPower().power(effect_size=h, nobs1=n, alpha=ALPHA))
    x0, x1 = rng.binomial(n, p0, runs), rng.binomial(n, p1, runs)
    results = [stats.two_proportions(int(a), n, int(b), n) for a, b in zip(x0, x1, strict=True)]
    empirical = float(np.mean([r.p_value < ALPHA for r in results]))
    covered = float(np.mean([r.ci_low <= p1 - p0 <= r.ci_high for r in results]))
    return {"n_per_arm": n, "analytic": analytic, "empirical": empirical, "coverage": covered}


def welch_coverage(rng: np.random.Generator, runs: int, n: int = 10_000) -> float:
    truth = 0.1 * 0.08 * math.exp(3.8 + 0.8**2 / 2)  # +10% revenue per user: 10% more buyers
    hits = 0
    for _ in range(runs):
        c = revenue(rng, n)
        t = np.where(rng.random(n) < 0.088, rng.lognormal(3.8, 0.8, n), 0.0)
        r = stats.welch(c, t)
        hits += r.ci_low <= truth <= r.ci_high
    return hits / runs


def regret(
    rng: np.random.Generator, rates: list[float], rounds: int, reps: int, every: int = 10
) -> tuple[float, float]:
    """Mean expected cumulative regret of Thompson sampling and of a uniform split."""
    best, names = max(rates), [f"arm{k}" for k in range(len(rates))]
    gaps = np.array([best - r for r in rates])
    totals = []
    for _ in range(reps):
        post = {v: bandit.BetaPosterior() for v in names}
        total = 0.0
        for _ in range(rounds // every):
            shares = bandit.allocation(post, floor=0.02, burn_in=50, draws=1000, rng=rng)
            share = np.array([shares[v] for v in names])
            total += every * float(share @ gaps)
            arms = rng.choice(len(names), size=every, p=share / share.sum())
            clicks = rng.random(every) < np.asarray(rates)[arms]
            trials = np.bincount(arms, minlength=len(names))
            wins = np.bincount(arms, weights=clicks, minlength=len(names))
            post = bandit.update_all(
                post,
                {v: int(wins[k]) for k, v in enumerate(names)},
                {v: int(trials[k]) for k, v in enumerate(names)},
            )
        totals.append(total)
    return float(np.mean(totals)), float(rounds * gaps.mean())


def check(name: str, value: float, low: float, high: float) -> dict[str, Any]:
    ok = low <= value <= high
    print(f"{'ok  ' if ok else 'MISS'} {name}: {value:.4g} (band {low:g} .. {high:g})")
    return {"figure": name, "value": value, "low": low, "high": high, "ok": ok}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply every run count.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if not 0.05 <= args.scale <= 10:
        parser.error(f"--scale must lie in [0.05, 10], got {args.scale}")
    runs = lambda n: max(int(n * args.scale), 50)  # noqa: E731
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    figures = [
        check(f"A/A false positives, conversion z-test ({runs(10_000):,} runs)",
              aa_conversion(rng, runs(10_000)), 0.04, 0.06),
        check(f"A/A false positives, revenue Welch t ({runs(4_000):,} runs)",
              aa_revenue(rng, runs(4_000)), 0.04, 0.06),
    ]  # fmt: skip
    delta, per_exposure = aa_ctr(rng, runs(4_000))
    figures += [
        check(f"A/A false positives, CTR per exposure, delta method ({runs(4_000):,} runs)",
              delta, 0.04, 0.06),
        check(f"A/A false positives, CTR per exposure, naive z over exposures ({runs(4_000):,} "
              "runs; shown to be wrong)", per_exposure, 0.07, 1.0),
    ]  # fmt: skip
    peeks = peeking(rng, runs(2_000))
    figures += [
        check(f"A/A, 14 daily looks, naive test ({runs(2_000):,} runs)", peeks["naive"],
              0.10, 1.0),
        check(f"A/A, 14 daily looks, sequential: confidence sequence ({runs(2_000):,} runs)",
              peeks["confidence_sequence"], 0.0, 0.06),
        check(f"A/A, 14 daily looks, group sequential (O'Brien-Fleming spending), "
              f"{runs(2_000):,} runs", peeks["group_obrien_fleming"], 0.04, 0.06),
        check(f"A/A, 14 daily looks, group sequential (Pocock spending), {runs(2_000):,} runs",
              peeks["group_pocock"], 0.04, 0.06),
    ]  # fmt: skip
    alarms, found = srm_rates(rng, runs(20_000), runs(2_000))
    figures += [
        check(
            f"SRM false alarms, balanced 20,000 users ({runs(20_000):,} runs)", alarms, 0.0, 0.002
        ),
        check(
            f"SRM detection, 48/52 split of 20,000 users ({runs(2_000):,} runs)", found, 0.95, 1.0
        ),
    ]
    pw = power(rng, runs(10_000))
    figures += [
        check(f"power at MDE +1.5 pts, n={pw['n_per_arm']:,}/arm: empirical - analytic "
              f"({pw['analytic']:.3f}) ({runs(10_000):,} runs)", pw["empirical"] - pw["analytic"], -0.03, 0.03),
        check(f"95% CI coverage, difference of proportions ({runs(10_000):,} runs)", pw["coverage"], 0.94, 0.96),
        check(f"95% CI coverage, Welch revenue per user, 10,000 users/arm ({runs(6_000):,} runs)",
              welch_coverage(rng, runs(6_000)), 0.94, 0.96),
    ]  # fmt: skip
    rates = [0.05, 0.06, 0.07, 0.09]
    ts, uniform = regret(rng, rates, 10_000, reps=max(int(20 * args.scale), 3))
    figures.append(
        check(f"Thompson regret / uniform regret ({ts:.1f} / {uniform:.1f}), rates {rates}, "
              "10,000 rounds", ts / uniform, 0.0, 0.5)
    )  # fmt: skip
    # Its own stream, so the figures above draw the same numbers as before it was added.
    share, fractions = unequal_looks(np.random.default_rng([args.seed, 1]), runs(4_000))
    figures.append(
        check(f"A/A, 14 daily looks, traffic by day of week, 93% of planned users reached, "
              f"group sequential (O'Brien-Fleming spending; information fractions "
              f"{', '.join(f'{t:.2f}' for t in fractions)}), {runs(4_000):,} runs",
              share, 0.04, 0.06)
    )  # fmt: skip
    seconds = time.perf_counter() - started
    command = "python bench/experiment_stats.py" + (
        " " + shlex.join(sys.argv[1:]) if sys.argv[1:] else ""
    )
    result = {"command": command, "seed": args.seed, "seconds": round(seconds, 1),
              "alpha": ALPHA, "power": pw, "figures": figures}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "experiment_stats.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Experiment statistics: figures against their bands",
        "",
        f"`{command}` (seed {args.seed}, {seconds:.0f} s; simulated experiments, not timings)",
        "",
        "| figure | value | band | |",
        "|---|---:|---|---|",
        *(
            f"| {f['figure']} | {f['value']:.4f} | {f['low']:g} .. {f['high']:g} | "
            f"{'ok' if f['ok'] else 'MISSED'} |"
            for f in figures
        ),
        "",
        "The confidence sequence's band is its ceiling: it is valid under continuous "
        "monitoring, so at 14 looks it stays below alpha by design. The group-sequential "
        "test spends alpha at the looks that happen (Lan-DeMets spending, boundaries from "
        "the looks' joint normal distribution), so its band is alpha's: 4.0-6.0%. Each look "
        "goes through the same bookkeeping as a report (the looks so far read back from the "
        "previous look's record).",
    ]
    (args.out / "experiment_stats.md").write_text("\n".join(lines) + "\n")
    missed = [f["figure"] for f in figures if not f["ok"]]
    print(f"{len(figures) - len(missed)}/{len(figures)} figures in band, {seconds:.0f} s")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
