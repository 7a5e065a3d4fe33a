"""The promotion decision (a pure function) and the registry it writes to."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailwise import registry
from training.challenge import (
    ChallengeError,
    PromotionPolicy,
    challenge,
    decide,
    pending_challenger,
)

POLICY = PromotionPolicy(margin=0.05, max_coverage_loss=0.1, max_latency_increase=0.5)
CHAMPION = {"ndcg@10": 0.100, "coverage@10": 0.40, "ms_per_user": 2.0}


def scores(**changes: float) -> dict[str, float]:
    return {**CHAMPION, **{k.replace("_at_", "@"): v for k, v in changes.items()}}


def test_a_clear_win_with_guards_held_is_promoted() -> None:
    ok, reasons = decide(CHAMPION, scores(ndcg_at_10=0.12, coverage_at_10=0.38), POLICY)
    assert ok
    assert (
        reasons[0].startswith("ndcg@10: 0.1200 vs champion 0.1000 (+20.0%") and "won" in reasons[0]
    )
    assert "held" in reasons[1] and "held" in reasons[2]


@pytest.mark.parametrize(
    ("challenger", "failing"),
    [
        (scores(ndcg_at_10=0.104), "ndcg@10"),  # better, but by less than the margin
        (scores(ndcg_at_10=0.100), "ndcg@10"),  # a tie never promotes
        (scores(ndcg_at_10=0.09), "ndcg@10"),
        (scores(ndcg_at_10=0.2, coverage_at_10=0.3), "coverage@10"),  # -25% coverage
        (scores(ndcg_at_10=0.2, ms_per_user=3.5), "ms_per_user"),  # +75% slower
    ],
)
def test_a_small_win_or_a_failed_guard_is_rejected(
    challenger: dict[str, float], failing: str
) -> None:
    ok, reasons = decide(CHAMPION, challenger, POLICY)
    assert not ok
    bad = [r for r in reasons if r.endswith(("lost", "failed"))]
    assert [r.split(":")[0] for r in bad] == [failing]


def test_a_challenger_below_the_best_baseline_is_refused_unless_forced() -> None:
    challenger = scores(ndcg_at_10=0.12)  # beats the champion by 20%
    ok, reasons = decide(CHAMPION, challenger, POLICY, ("ease", 0.13))
    assert not ok
    assert reasons[-1].startswith("best baseline ease: ndcg@10 0.1300, challenger 0.1200")
    assert reasons[-1].endswith("failed")
    forced, reasons = decide(CHAMPION, challenger, POLICY, ("ease", 0.13), force=True)
    assert forced and reasons[-1].endswith("failed, promoted anyway (--force)")
    # force lifts the baseline guard only: a loss to the champion still blocks
    assert not decide(CHAMPION, scores(ndcg_at_10=0.09), POLICY, ("ease", 0.13), force=True)[0]
    ok, reasons = decide(CHAMPION, challenger, POLICY, ("ease", 0.11))
    assert ok and reasons[-1].endswith("held")
    off = POLICY.model_copy(update={"beat_best_baseline": False})
    ok, reasons = decide(CHAMPION, challenger, off, ("ease", 0.13))
    assert ok and not any(r.startswith("best baseline") for r in reasons)


def test_a_missing_score_is_named() -> None:
    with pytest.raises(ChallengeError, match="challenger has no 'ms_per_user'"):
        decide(CHAMPION, {"ndcg@10": 0.2, "coverage@10": 0.5}, POLICY)


def test_bad_policy_values_name_the_field() -> None:
    with pytest.raises(ValueError, match="margin"):
        PromotionPolicy(margin=-0.1)
    with pytest.raises(ValueError, match="max_coverage_loss"):
        PromotionPolicy(max_coverage_loss=2)


def _published(models: Path, version: str, champion: str | None) -> None:
    registry.record(
        models,
        registry.Entry(at=registry.now(), action="published", version=version, champion=champion),
    )


def test_pending_challenger_is_the_newest_undecided_version(tmp_path: Path) -> None:
    registry.set_champion(tmp_path, "v1")
    _published(tmp_path, "v1", None)
    assert pending_challenger(tmp_path) is None
    _published(tmp_path, "v2", "v1")
    _published(tmp_path, "v3", "v1")
    assert pending_challenger(tmp_path) == "v3"
    registry.record(
        tmp_path,
        registry.Entry(at=registry.now(), action="rejected", version="v3", champion="v1"),
    )
    assert pending_challenger(tmp_path) == "v2"
    rows = {r["version"]: r for r in registry.versions(tmp_path)}
    assert rows["v1"]["serving"] and rows["v3"]["status"] == "rejected"


def test_challenge_needs_a_champion_and_another_version(tmp_path: Path) -> None:
    with pytest.raises(ChallengeError, match="no champion"):
        challenge(tmp_path, tmp_path, None, None, POLICY)  # type: ignore[arg-type]
    registry.set_champion(tmp_path, "v1")
    assert challenge(tmp_path, tmp_path, None, None, POLICY) is None  # type: ignore[arg-type]
    with pytest.raises(ChallengeError, match="champion already"):
        challenge(tmp_path, tmp_path, None, None, POLICY, challenger="v1")  # type: ignore[arg-type]


def test_a_broken_registry_line_is_named(tmp_path: Path) -> None:
    (tmp_path / registry.REGISTRY).write_text('{"not": "an entry"}\n')
    with pytest.raises(ValueError, match="line 1: not a registry entry"):
        registry.entries(tmp_path)


def test_a_champion_from_before_the_registry_is_listed(tmp_path: Path) -> None:
    registry.set_champion(tmp_path, "v0")
    _published(tmp_path, "v1", "v0")
    rows = {r["version"]: r for r in registry.versions(tmp_path)}
    assert rows["v0"]["serving"] and rows["v0"]["status"] == "champion"
    assert not rows["v1"]["serving"]
