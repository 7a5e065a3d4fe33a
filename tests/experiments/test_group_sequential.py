"""Group-sequential boundaries against published values, the spending functions, the looks'
bookkeeping, the plan's validation and the report's group-sequential result."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps

from tailwise.experiments import group_sequential as gs
from tailwise.experiments.analysis import AnalysisConfig, analyse
from tailwise.experiments.definitions import DefinitionError, load_definitions
from tailwise.experiments.stats import StatsError, two_proportions
from tests.experiments.tables import DAY0, experiment_tables

FIVE = [0.2, 0.4, 0.6, 0.8, 1.0]
GROUP = gs.SequentialPlan(method="group_sequential", planned_users=20_000)


@pytest.mark.parametrize(
    ("spending", "published"),
    [
        # Lan-DeMets O'Brien-Fleming-type, 5 equal looks, two-sided 0.05 (DeMets & Lan 1994;
        # gsDesign's sfLDOF, rpact): 4.877, 3.357, 2.680, 2.290, 2.031
        ("obrien_fleming", [4.877, 3.357, 2.680, 2.290, 2.031]),
        # Pocock-type (gsDesign's sfLDPocock): 2.438, 2.427, 2.410, 2.397, 2.386
        ("pocock", [2.438, 2.427, 2.410, 2.397, 2.386]),
    ],
)
def test_boundaries_match_the_published_tables(
    spending: gs.Spending, published: list[float]
) -> None:
    assert gs.boundaries(FIVE, 0.05, spending) == pytest.approx(published, abs=1.5e-3)


def test_one_look_is_the_fixed_sample_test_and_the_final_look_spends_the_rest() -> None:
    assert gs.boundaries([1.0], 0.05) == pytest.approx((sps.norm.isf(0.025),))
    early = gs.boundaries([0.3, 0.7], 0.05)
    final = gs.boundaries([0.3, 0.7], 0.05, final=True)
    assert final[0] == early[0] and final[1] < early[1]
    # All of alpha spent over the looks: their joint crossing probability is alpha.
    rng = np.random.default_rng(3)
    steps = rng.standard_normal((200_000, 2)) * np.sqrt([0.3, 0.4])
    z = steps.cumsum(axis=1) / np.sqrt([0.3, 0.7])
    crossed = (np.abs(z) >= np.asarray(final)).any(axis=1).mean()
    assert crossed == pytest.approx(0.05, abs=0.002)


@pytest.mark.parametrize("spending", gs.SPENDING)
def test_spending_is_monotone_from_zero_to_alpha(spending: gs.Spending) -> None:
    t = np.linspace(0, 1, 101)
    spent = [gs.spent(x, 0.05, spending) for x in t]
    assert spent[0] == 0 and spent[-1] == pytest.approx(0.05)
    assert all(a < b for a, b in itertools.pairwise(spent))


def test_obrien_fleming_spends_little_early_and_pocock_evenly() -> None:
    assert gs.spent(0.2, 0.05, "obrien_fleming") < 1e-5 < gs.spent(0.2, 0.05, "pocock")
    obf = gs.boundaries(FIVE, 0.05, "obrien_fleming")
    assert all(a > b for a, b in itertools.pairwise(obf))


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda: gs.boundaries([0.5, 0.4]), "increase"),
        (lambda: gs.boundaries([0.5, 1.2]), "increase"),
        (lambda: gs.boundaries([]), "looks"),
        (lambda: gs.spent(0.5, 1.5), "alpha"),
        (lambda: gs.spent(0.5, 0.05, "linear"), "spending"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_names_the_parameter(call, word: str) -> None:
    with pytest.raises(StatsError, match=word):
        call()


DEFINITION = {
    "name": "checkout",
    "salt": "checkout-2026",
    "start": "2026-11-01",
    "variants": [{"name": "control", "weight": 0.5}, {"name": "b", "weight": 0.5}],
}


def definition_error(tmp_path: Path, sequential: dict) -> str:
    folder = tmp_path / "exp"
    folder.mkdir(exist_ok=True)
    (folder / "checkout.yaml").write_text(yaml.safe_dump({**DEFINITION, "sequential": sequential}))
    with pytest.raises(DefinitionError) as caught:
        load_definitions(folder)
    return str(caught.value)


def test_the_plan_is_read_from_the_definition_and_bad_values_name_the_field(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "good"
    folder.mkdir()
    plan = {"method": "group_sequential", "planned_users": 14000, "spending": "pocock"}
    (folder / "checkout.yaml").write_text(yaml.safe_dump({**DEFINITION, "sequential": plan}))
    found = load_definitions(folder).by_name("checkout").sequential
    assert found.group and found.planned_users == 14000 and found.spending == "pocock"
    assert (
        definition_error(tmp_path, {"method": "group_sequential"}).count(
            "sequential.planned_users: method group_sequential needs planned_users"
        )
        == 1
    )
    text = definition_error(tmp_path, {"method": "group_sequential", "planned_users": 1000,
                                       "spending": "linear"})  # fmt: skip
    assert "sequential.spending" in text and "'obrien_fleming' or 'pocock'" in text
    assert "sequential.planned_users: Input should be greater than or equal to 2" in (
        definition_error(tmp_path, {"method": "group_sequential", "planned_users": 0})
    )
    assert "sequential.looks: looks is for method group_sequential only" in (
        definition_error(tmp_path, {"looks": 5})
    )
    assert "sequential.method" in definition_error(tmp_path, {"method": "bayes"})


def looks_of(users: list[int], plan: gs.SequentialPlan = GROUP) -> gs.Looks:
    previous = None
    for n in users:
        looks = gs.next_looks(previous, n, "", plan, 0.05)
        previous = looks.section(plan, 0.05)
    return looks


def test_looks_are_counted_from_the_previous_report() -> None:
    looks = looks_of([2000, 5000, 5000, 9000])  # the same data read twice is one look
    assert [lk.number for lk in looks.looks] == [1, 2, 3]
    assert looks.fractions == pytest.approx((0.1, 0.25, 0.45)) and not looks.current.final
    assert looks_of([8000, 20000, 25000]).after_final  # nothing left after the final look
    assert looks_of([8000, 25000]).fractions == (0.4, 1.0)  # capped at 1, final
    planned = gs.SequentialPlan(method="group_sequential", planned_users=20_000, looks=2)
    assert looks_of([3000, 6000], planned).current.final
    with pytest.raises(StatsError, match="fewer than look 2's"):
        looks_of([3000, 6000, 5000])
    changed = GROUP.model_copy(update={"planned_users": 30_000})
    with pytest.raises(StatsError, match=r"sequential\.planned_users changed from 20000 to 30000"):
        gs.next_looks(looks_of([3000]).section(GROUP, 0.05), 6000, "", changed, 0.05)


def test_holm_step_down_over_the_boundaries() -> None:
    looks = looks_of([10_000, 20_000])
    strong, weak = (
        two_proportions(1000, 10000, 1200, 10000),
        two_proportions(1000, 10000, 1095, 10000),
    )
    out = gs.holm_test({"a": strong, "b": weak}, looks, 0.05)
    bounds = gs.boundaries(looks.fractions, 0.05, final=True)
    half = gs.boundaries(looks.fractions, 0.025, final=True)
    assert out["a"]["boundary"] == pytest.approx(half[-1]) and out["a"]["crossed"]
    assert out["b"]["boundary"] == pytest.approx(bounds[-1])
    assert out["b"]["crossed"] == (abs(out["b"]["z"]) >= bounds[-1])
    low, high = out["a"]["ci_low"], out["a"]["ci_high"]
    assert (high - low) / 2 == pytest.approx(bounds[-1] * strong.std_error)


def test_the_report_carries_the_group_sequential_result() -> None:
    rng = np.random.default_rng(7)
    exp, out = experiment_tables(
        rng, 6000, {"control": 0.5, "b": 0.5}, {"control": 0.05, "b": 0.08}
    )
    previous = None
    for day in (2, 5):
        cut = DAY0 + pd.Timedelta(days=day)
        cfg = AnalysisConfig(sequential=GROUP, previous=previous)
        result = analyse("exp", exp.loc[exp["timestamp"] < cut], out, cfg)
        previous = result["sequential"]
    section = result["sequential"]
    assert section["method"] == "group_sequential" and section["look"] == 2
    assert [lk["users"] for lk in section["looks"]][-1] == exp["user_id"].nunique()
    assert section["looks"][-1]["fraction"] == pytest.approx(exp["user_id"].nunique() / 20_000)
    ctr = result["comparisons"]["b"]["ctr"]["sequential"]
    assert ctr["method"] == "group_sequential" and ctr["look"] == 2
    assert ctr["crossed"] and ctr["significant"] and abs(ctr["z"]) >= ctr["boundary"]
    fractions = [lk["fraction"] for lk in section["looks"]]
    assert ctr["boundary"] == pytest.approx(gs.boundaries(fractions, 0.05 / 4)[-1])  # Holm: first
    # The default stays the confidence sequence.
    plain = analyse("exp", exp, out, AnalysisConfig())
    assert plain["sequential"]["method"] == "confidence_sequence"
    assert plain["comparisons"]["b"]["ctr"]["sequential"]["method"] == "confidence_sequence"
