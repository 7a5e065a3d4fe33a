"""Group-sequential tests with Lan-DeMets alpha spending: for teams that plan their looks.

    SequentialPlan (an experiment definition's `sequential:`) --next_looks(previous report,
    users now)--> the looks so far, each at its information fraction t = users / planned
    users (capped at 1) --boundaries(fractions, alpha, spending)--> one z boundary per look
    --holm_test(tests of one comparison)--> per metric: z, the boundary it had to cross,
    crossed or not, the repeated confidence interval

The confidence sequence of tailwise.experiments.stats.sequential stays valid however often
people look, and pays for it: at a few planned looks it rejects far less than alpha. A
group-sequential test spends alpha only at the looks that happen. The spending function
alpha(t) says how much of alpha may be spent by information fraction t; the boundary c_k of
look k makes the probability under H0 of crossing first at look k equal to
alpha(t_k) - alpha(t_(k-1)), under the canonical joint distribution of the looks' z
statistics (a Brownian motion: corr(Z_i, Z_j) = sqrt(t_i / t_j)), computed with scipy's
multivariate normal rectangle probabilities and brentq. Two-sided and symmetric: each side
spends half, by Lan and DeMets' functions (as gsDesign, rpact and the published tables do):

    obrien_fleming   alpha/2 side: 2 - 2 Phi(z_(1 - alpha/4) / sqrt(t))  (spends little early)
    pocock           alpha/2 side: alpha/2 log(1 + (e - 1) t)             (spends evenly)

The final look spends what is left: it is the look at t = 1, the look numbered
`sequential.looks` when the plan gives one, or a look made once the experiment has stopped.

Which looks happened: each report records its look (number, users, information fraction,
end of the data) and the plan it was made under in report.json's `sequential` section, and
the next report reads it back (monitoring.experiments), so later boundaries account for the
earlier looks. Reading the same data again (same users) is the same look, not a new one;
fewer users than the last look, or a plan that changed between looks, is an error (move the
report away to start over). Data that arrives after the final look is not tested: no alpha
is left.

Several metrics of one comparison: Holm's step-down on the boundaries (the metric with the
largest |z| against the boundaries at alpha / m, the next at alpha / (m - 1), ...), which
keeps the familywise error at alpha across metrics and looks (Maurer and Bretz 2013).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from scipy import optimize
from scipy.stats import multivariate_normal, norm

from tailwise.experiments.stats import StatsError, TestResult

Spending = Literal["obrien_fleming", "pocock"]
SPENDING: tuple[Spending, ...] = ("obrien_fleming", "pocock")
TINY = 1e-12  # alpha increments below this cannot be resolved: such a look cannot reject
MAX_LOOKS = 60


class SequentialPlan(BaseModel):
    """An experiment definition's `sequential:`: how reports that are read repeatedly
    keep the false-positive rate at alpha."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["confidence_sequence", "group_sequential"] = Field(
        "confidence_sequence",
        description="confidence_sequence: valid however often the report is read; "
        "group_sequential: alpha spent at the looks that happen (needs planned_users).",
    )
    planned_users: int | None = Field(
        None,
        ge=2,
        validate_default=True,
        description="Users (all variants) at the planned end: t = users / this.",
    )
    spending: Spending = Field(
        "obrien_fleming", description="Lan-DeMets spending function: obrien_fleming or pocock."
    )
    looks: int | None = Field(
        None, ge=1, le=MAX_LOOKS, description="Planned number of looks; the last spends the rest."
    )

    @field_validator("planned_users", mode="after")
    @classmethod
    def _needed(cls, value: int | None, info: ValidationInfo) -> int | None:
        method = info.data.get("method")
        if method == "group_sequential" and value is None:
            raise ValueError("method group_sequential needs planned_users (users at the end)")
        if method == "confidence_sequence" and value is not None:
            raise ValueError("planned_users is for method group_sequential only")
        return value

    @field_validator("spending", "looks", mode="after")
    @classmethod
    def _group_only(cls, value: Any, info: ValidationInfo) -> Any:
        if info.data.get("method") == "confidence_sequence" and value not in (None, SPENDING[0]):
            raise ValueError(f"{info.field_name} is for method group_sequential only")
        return value

    @property
    def group(self) -> bool:
        return self.method == "group_sequential"


def spent(t: float, alpha: float, spending: Spending = "obrien_fleming") -> float:
    """Two-sided alpha spent by information fraction t (both sides together)."""
    if not 0 < alpha < 1:
        raise StatsError(f"alpha must lie in (0, 1), got {alpha}")
    if not 0 <= t <= 1:
        raise StatsError(f"information fraction must lie in [0, 1], got {t}")
    if spending == "obrien_fleming":
        return 0.0 if t == 0 else float(4 * norm.sf(norm.isf(alpha / 4) / math.sqrt(t)))
    if spending == "pocock":
        return float(alpha * math.log1p((math.e - 1) * t))
    raise StatsError(f"spending must be one of {', '.join(SPENDING)}, got {spending!r}")


def boundaries(
    fractions: Sequence[float],
    alpha: float = 0.05,
    spending: Spending = "obrien_fleming",
    final: bool = False,
) -> tuple[float, ...]:
    """Two-sided z boundaries of looks at increasing information fractions in (0, 1];
    `final`: the last look spends all that is left. A look with nothing to spend gets inf."""
    ts = tuple(float(t) for t in fractions)
    if not ts or len(ts) > MAX_LOOKS:
        raise StatsError(f"looks: need 1 to {MAX_LOOKS} information fractions, got {len(ts)}")
    if not all(a < b for a, b in zip((0.0, *ts), ts, strict=False)) or ts[-1] > 1:
        raise StatsError(f"information fractions must increase within (0, 1], got {list(ts)}")
    spent(1.0, alpha, spending)  # checks alpha and spending
    return _boundaries(ts, alpha, spending, final)


@functools.lru_cache(maxsize=1024)
def _boundaries(
    ts: tuple[float, ...], alpha: float, spending: Spending, final: bool
) -> tuple[float, ...]:
    """A look's boundary depends only on the looks up to it: the earlier ones come from the
    cache (each report adds one look), and only the last is solved here."""
    earlier = _boundaries(ts[:-1], alpha, spending, False) if len(ts) > 1 else ()
    before = spent(ts[-2], alpha, spending) if len(ts) > 1 else 0.0
    total = alpha if final else spent(ts[-1], alpha, spending)
    t = np.asarray(ts)
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    return (*earlier, _boundary(len(ts) - 1, total - before, np.asarray(earlier), cov))


def _boundary(k: int, increment: float, earlier: np.ndarray, cov: np.ndarray) -> float:
    """c with P(|Z_k| >= c, |Z_j| < c_j for j < k) = increment (by symmetry, twice the
    upper side's rectangle probability); brentq below the marginal boundary."""
    if increment < TINY:
        return math.inf
    marginal = float(norm.isf(increment / 2))
    if k == 0:
        return marginal
    finite = np.minimum(earlier, 40.0)  # inf boundaries: no constraint, kept finite for Genz
    rng_seed = 0  # the same quasi-random points for every c: a smooth function for brentq

    def excess(c: float) -> float:
        p = multivariate_normal.cdf(
            np.r_[finite, np.inf],
            mean=np.zeros(len(finite) + 1),
            cov=cov,
            lower_limit=np.r_[-finite, c],
            abseps=increment * 1e-3,
            releps=0,
            rng=np.random.default_rng(rng_seed),
        )
        return 2 * float(p) - increment

    if excess(marginal) >= 0:  # the earlier looks hardly bind: within the integration error
        return marginal
    low = max(marginal - 1.0, 0.0)
    if excess(low) <= 0:
        low = 0.0
    return float(optimize.brentq(excess, low, marginal, xtol=1e-4))


@dataclass(frozen=True)
class Look:
    """One report of a group-sequential experiment."""

    number: int
    users: int
    fraction: float
    end: str
    final: bool

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "users": self.users, "fraction": self.fraction,
                "end": self.end, "final": self.final}  # fmt: skip


@dataclass(frozen=True)
class Looks:
    """The looks so far (the current one last) and whether the data came after the final
    look (then nothing is tested)."""

    looks: tuple[Look, ...]
    after_final: bool = False

    @property
    def current(self) -> Look:
        return self.looks[-1]

    @property
    def fractions(self) -> tuple[float, ...]:
        return tuple(lk.fraction for lk in self.looks)

    def section(self, plan: SequentialPlan, alpha: float) -> dict[str, Any]:
        """What a report records (its `sequential` section) and next_looks reads back."""
        return {
            "method": plan.method,
            "spending": plan.spending,
            "planned_users": plan.planned_users,
            "planned_looks": plan.looks,
            "alpha": alpha,
            "look": self.current.number,
            "final": self.current.final,
            "after_final": self.after_final,
            "looks": [lk.as_dict() for lk in self.looks],
        }


def next_looks(
    previous: Mapping[str, Any] | None,
    users: int,
    end: str,
    plan: SequentialPlan,
    alpha: float,
    stopped: bool = False,
) -> Looks:
    """The looks including this one, from the previous report's `sequential` section
    (None: this is the first look). `stopped`: the experiment has ended, this look is final."""
    if plan.planned_users is None:
        raise StatsError("sequential.planned_users: needed by method group_sequential")
    fraction = min(users / plan.planned_users, 1.0)
    earlier = _recorded(previous, plan, alpha)
    if earlier and users <= earlier[-1].users:
        last = earlier[-1]
        if users < last.users:
            raise StatsError(
                f"this data has {users:,} users, fewer than look {last.number}'s "
                f"{last.users:,}: wrong tables, or move the report away to start the looks over"
            )
        if stopped and not last.final:  # the same data, now known to be the last look
            earlier[-1] = Look(last.number, last.users, last.fraction, last.end, True)
        return Looks(tuple(earlier))
    if earlier and earlier[-1].final:
        return Looks(tuple(earlier), after_final=True)
    number = len(earlier) + 1
    final = stopped or fraction >= 1.0 or (plan.looks is not None and number >= plan.looks)
    return Looks((*earlier, Look(number, users, fraction, end, final)))


def _recorded(previous: Mapping[str, Any] | None, plan: SequentialPlan, alpha: float) -> list[Look]:
    if not previous or previous.get("method") != "group_sequential":
        return []
    recorded = {"planned_users": previous.get("planned_users"),
                "spending": previous.get("spending"), "alpha": previous.get("alpha")}  # fmt: skip
    now = {"planned_users": plan.planned_users, "spending": plan.spending, "alpha": alpha}
    for field, value in recorded.items():
        if value != now[field]:
            raise StatsError(
                f"sequential.{field} changed from {value!r} to {now[field]!r} since the last "
                "look: a group-sequential plan holds for the whole experiment (move the "
                "report away to start the looks over)"
            )
    try:
        return [Look(int(lk["number"]), int(lk["users"]), float(lk["fraction"]), str(lk["end"]),
                     bool(lk["final"])) for lk in previous["looks"]]  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise StatsError(f"the previous report's sequential.looks is unreadable ({exc})") from exc


def holm_test(
    tests: Mapping[str, TestResult],
    looks: Looks,
    alpha: float,
    spending: Spending = "obrien_fleming",
) -> dict[str, dict[str, Any]]:
    """Per metric at the current look: z, the boundary it had to cross (Holm's step-down
    over the boundaries at alpha / m, alpha / (m - 1), ...), crossed, and the repeated
    confidence interval (difference +- boundary at alpha x standard error)."""
    names = list(tests)
    z = {m: _z(tests[m]) for m in names}
    if looks.after_final:
        return {m: _entry(tests[m], looks, z[m], None, None, False) for m in names}
    final = looks.current.final
    own = boundaries(looks.fractions, alpha, spending, final)[-1]
    order = sorted(names, key=lambda m: -abs(z[m]))
    out: dict[str, dict[str, Any]] = {}
    going = True
    for rank, m in enumerate(order):
        level = alpha / (len(order) - rank)
        bound = boundaries(looks.fractions, level, spending, final)[-1]
        going = going and abs(z[m]) >= bound
        out[m] = _entry(tests[m], looks, z[m], bound, own, going)
    return {m: out[m] for m in names}


def _z(result: TestResult) -> float:
    if result.std_error > 0:
        return result.difference / result.std_error
    return 0.0 if result.difference == 0 else math.copysign(math.inf, result.difference)


def _entry(
    result: TestResult, looks: Looks, z: float, bound: float | None, own: float | None,
    crossed: bool,
) -> dict[str, Any]:  # fmt: skip
    half = own * result.std_error if own is not None and math.isfinite(own) else math.inf
    return {
        "method": "group_sequential",
        "look": looks.current.number,
        "z": z,
        "boundary": bound,  # inf (null in JSON): nothing spent yet at this look
        "after_final": looks.after_final,
        "crossed": crossed,
        "ci_low": result.difference - half if own is not None else None,
        "ci_high": result.difference + half if own is not None else None,
        "p_value": None,  # no p-value: the decision is the boundary's
        "p_holm": None,
        "significant": crossed,
    }
