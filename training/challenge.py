"""Champion against challenger on the newest holdout window, and whether to promote.

    clean data --recorded_split (the challenger's windows and repeat decision)--> test window
      (the newest days: served traffic after a retrain)
    champion, challenger folders --load_recommender (today's features and histories, as
      serving would run them) --evaluate(fit=False), same users and window-->
      Scores per version: ndcg/precision/recall/coverage@K and ms per user
      the baselines (training.evaluate.baselines), fitted on what precedes the window and
      scored on the same users: the best one's figure
    --decide(PromotionPolicy)--> promote?, reasons (a challenger that loses to the best
      baseline is refused unless forced: a simple method would serve people better)
    --challenge--> registry entry (promoted / rejected, with the numbers), LATEST moved

Neither version may have trained on the window: each one's `trained_before` must be at or
before the window's start, else the comparison is refused with both dates named.
`decide` is pure, so the policy is unit-tested with hand-made scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tailwise import registry, versions
from training.config import EvaluationParams
from training.evaluate import baselines, best_baseline, evaluate

LATENCY = "ms_per_user"


class ChallengeError(ValueError):
    """The versions cannot be compared as asked; the message says why."""


class PromotionPolicy(BaseModel):
    """params.yaml `promotion:`: win by a margin, lose nothing that matters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field("ndcg@10", description="The metric the challenger must win on.")
    margin: float = Field(0.02, ge=0, description="Relative win needed (0.02: 2% better).")
    coverage: str = Field("coverage@10", description="Guard: catalogue coverage.")
    max_coverage_loss: float = Field(0.25, ge=0, le=1, description="Relative loss allowed.")
    max_latency_increase: float = Field(
        0.50, ge=0, description="Guard: relative rise of scoring time per user allowed."
    )
    beat_best_baseline: bool = Field(
        True,
        description="Guard: the challenger must reach the best baseline on the metric "
        "(`tailwise models challenge --force` promotes anyway, and says so).",
    )


@dataclass(frozen=True)
class Comparison:
    scores: dict[str, dict[str, float]]  # champion / challenger -> metric -> value
    window: dict[str, str]
    users: int
    baseline: tuple[str, float] | None = None  # the best baseline and its metric value


def decide(
    champion: dict[str, float],
    challenger: dict[str, float],
    policy: PromotionPolicy,
    baseline: tuple[str, float] | None = None,
    force: bool = False,
) -> tuple[bool, list[str]]:
    """Promote when the challenger wins on the metric by the margin and no guard fails;
    with `force`, the baseline guard is reported but does not block."""
    for name in (policy.metric, policy.coverage, LATENCY):
        for side, scores in (("champion", champion), ("challenger", challenger)):
            if name not in scores:
                raise ChallengeError(f"{side} has no {name!r} score (has {sorted(scores)})")
    reasons, ok = [], True
    base, new = champion[policy.metric], challenger[policy.metric]
    needed = base * (1 + policy.margin)
    won = new >= needed and new > base
    ok &= won
    reasons.append(
        f"{policy.metric}: {new:.4f} vs champion {base:.4f} ({_rel(new, base)}; needs "
        f">= {needed:.4f}, +{policy.margin:.0%}): {'won' if won else 'lost'}"
    )
    cov_base, cov_new = champion[policy.coverage], challenger[policy.coverage]
    floor = cov_base * (1 - policy.max_coverage_loss)
    held = cov_new >= floor
    ok &= held
    reasons.append(
        f"{policy.coverage}: {cov_new:.4f} vs {cov_base:.4f} ({_rel(cov_new, cov_base)}; "
        f"guard >= {floor:.4f}): {'held' if held else 'failed'}"
    )
    lat_base, lat_new = champion[LATENCY], challenger[LATENCY]
    ceiling = lat_base * (1 + policy.max_latency_increase)
    fast = lat_new <= ceiling
    ok &= fast
    reasons.append(
        f"{LATENCY}: {lat_new:.2f} vs {lat_base:.2f} ({_rel(lat_new, lat_base)}; guard "
        f"<= {ceiling:.2f}): {'held' if fast else 'failed'}"
    )
    if policy.beat_best_baseline and baseline is not None:
        name, value = baseline
        beats = new >= value
        verdict = "held" if beats else ("failed, promoted anyway (--force)" if force else "failed")
        ok &= beats or force
        reasons.append(
            f"best baseline {name}: {policy.metric} {value:.4f}, challenger {new:.4f} "
            f"({_rel(new, value)}; guard >= baseline): {verdict}"
        )
    return ok, reasons


def _rel(new: float, base: float) -> str:
    return f"{new / base - 1:+.1%}" if base else "n/a"


def compare(
    clean: Path,
    store: Any,
    evaluation: EvaluationParams,
    champion: Path,
    challenger: Path,
    metric: str = "ndcg@10",
) -> Comparison:
    """Both versions on the newest test window of `clean`, as serving would run them, and
    the best baseline on `metric` ('<name>@<k>') over the same users."""
    from training.batch import load_recommender
    from training.pipeline import recorded_split

    # The challenger's windows and repeat decision (as its training recorded them).
    split = recorded_split(clean, evaluation, versions.read_manifest(challenger))
    for side, folder in (("champion", champion), ("challenger", challenger)):
        trained_before = pd.Timestamp(versions.read_manifest(folder)["trained_before"])
        if trained_before > split.test_start:
            raise ChallengeError(
                f"{side} {folder.name} trained on events up to {trained_before}, after the "
                f"holdout window's start {split.test_start}: it would be scored on what it saw"
            )
    history = split.history("test")
    models = {
        "champion": load_recommender(champion, store, history),
        "challenger": load_recommender(challenger, store, history),
    }
    items = split.candidate_items("test") if split.items is not None else None
    simple = baselines(evaluation, split.allow_repeats)
    for model in simple.values():
        model.fit(history, items)
    result = evaluate({**models, **simple}, split, evaluation.ks, window="test", fit=False)
    scores = result.model_metrics()
    users = int(result.table["users"].max())
    for side in models:
        scores[side][LATENCY] = round(1000 * result.timings[side]["recommend_s"] / max(users, 1), 4)
    name, _, k = metric.partition("@")
    best = best_baseline(result, int(k), name) if k.isdigit() else None
    window = {"start": split.test_start.isoformat(), "end": split.end.isoformat()}
    kept = {side: scores[side] for side in models}
    return Comparison(scores=kept, window=window, users=users, baseline=best)


def pending_challenger(models_dir: Path) -> str | None:
    """The newest published version that is neither the champion nor decided yet."""
    current, decided, published = registry.champion(models_dir), set(), []
    for e in registry.entries(models_dir):
        if e.action == "published":
            published.append(e.version)
        else:
            decided.add(e.version)
    for version in reversed(published):
        if version != current and version not in decided:
            return version
    return None


def challenge(
    models_dir: Path,
    clean: Path,
    store: Any,
    evaluation: EvaluationParams,
    policy: PromotionPolicy,
    challenger: str | None = None,
    force: bool = False,
) -> registry.Entry | None:
    """Compare, decide, record, and move LATEST on a win; None when nothing waits."""
    current = registry.champion(models_dir)
    if current is None:
        raise ChallengeError(f"no champion in {models_dir}: publish a first version")
    name = challenger or pending_challenger(models_dir)
    if name is None:
        return None
    if name == current:
        raise ChallengeError(f"{name} is the champion already")
    comparison = compare(
        clean,
        store,
        evaluation,
        versions.version_folder(models_dir, current),
        versions.version_folder(models_dir, name),
        policy.metric,
    )
    promote, reasons = decide(
        comparison.scores["champion"],
        comparison.scores["challenger"],
        policy,
        comparison.baseline,
        force,
    )
    reasons.append(f"{comparison.users:,} users of the holdout window")
    entry = registry.Entry(
        at=registry.now(),
        action="promoted" if promote else "rejected",
        version=name,
        champion=current,
        reasons=reasons,
        scores=comparison.scores
        | (
            {f"best_baseline:{comparison.baseline[0]}": {policy.metric: comparison.baseline[1]}}
            if comparison.baseline
            else {}
        ),
        window=comparison.window,
    )
    registry.record(models_dir, entry)
    if promote:
        registry.set_champion(models_dir, name)
    return entry
