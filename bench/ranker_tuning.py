"""Benchmark: union ranker settings compared on the VALIDATION window, with EASE beside them.

The union ranker's defaults (training.ranker.union in params.yaml) are candidates from
this table, which reads one dataset (--data); a candidate is adopted only when the
dataset matrix (bench/datasets.py) does not say otherwise on the other shapes. The test
window is never looked at here (bench/train_quality.py measures the choice there once).

    the history before the validation window
      --union_labelled_candidates (the most label windows any setting uses; the two-tower
        source left out, as training.ranker.two_tower_source: false)--> labelled lists,
        each window's sources fitted once at its cut
      --ranking_examples (Feast, once)--> examples; each setting trains on the lists of
        its `label_windows` latest windows (training.reranker.fit_examples: early stopping
        on held-out users, the candidates' order when the ranker loses to it)
    sources fitted on the same history at the validation window's start
      --Sources.rows for the window's users--> ranking_examples (once) --> each setting's
        top 10 --> the evaluation harness's NDCG@10 etc., next to EASE fitted on the same
        history and the union's own fused order

Writes bench/results/ranker_tuning.json and .md (with the command and time per stage).

    .venv/bin/python bench/ranker_tuning.py
    .venv/bin/python bench/ranker_tuning.py --max-train-users 500   # a smaller run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pandas as pd

from tailwise.candidates.features import NEW_USER, new_user_scores
from tailwise.features.store import apply, teardown
from tailwise.lineage import data_version
from tailwise.params import load_params
from tailwise.settings import Settings
from training.config import EvaluationParams
from training.evaluate import baselines, evaluate
from training.pipeline import TrainingParams, prepare_split
from training.ranker import RankerConfig, ranking_examples
from training.reranker import fit_examples
from training.union import (
    fit_sources,
    union_feature_columns,
    union_labelled_candidates,
    user_profiles,
)

RESULTS = Path(__file__).parent / "results"
K = 10
METRICS = ("ndcg", "precision", "recall", "map", "hit_rate", "coverage")
BOOTSTRAP = 2000
# XGBoost settings of the union ranker, each with how many label windows it learns from.
# The shared training.ranker settings (topk pairs, depth 4, min_child_weight 20) against
# mean pairs with shallow trees, and how fast and how patiently the boosting stops early.
SHALLOW = {"lambdarank_pair_method": "mean", "max_depth": 1, "min_child_weight": 0.1}
FASTER = {"learning_rate": 0.1, "early_stopping_rounds": 100}
SETTINGS: dict[str, dict[str, Any]] = {
    "shared, 3 windows": {"label_windows": 3},
    "mean depth 1, 1 window": {**SHALLOW, "label_windows": 1},
    "mean depth 1, 3 windows": {**SHALLOW, "label_windows": 3},
    "mean depth 2, 3 windows": {**SHALLOW, "max_depth": 2, "label_windows": 3},
    "mean depth 1, 6 windows": {**SHALLOW, "label_windows": 6},
    "mean depth 1, 3 windows, patience 200": {
        **SHALLOW,
        "label_windows": 3,
        "early_stopping_rounds": 200,
        "n_estimators": 1000,
    },
    "mean depth 1, 3 windows, lr 0.1, patience 100": {**SHALLOW, **FASTER, "label_windows": 3},
    "mean depth 1, 6 windows, lr 0.1, patience 100": {**SHALLOW, **FASTER, "label_windows": 6},
}
# The columns of the table, from each setting's RankerConfig.
SHOWN = (
    "label_windows",
    "lambdarank_pair_method",
    "max_depth",
    "min_child_weight",
    "learning_rate",
    "early_stopping_rounds",
)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data/clean"))
    ap.add_argument("--features", type=Path, default=Path("data/features"))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument(
        "--max-train-users",
        type=int,
        default=None,
        help="labelled users per label window (seeded sample; default: all)",
    )
    ap.add_argument(
        "--seeds",
        default="0,1,2",
        help="comma-separated ranker seeds; each setting is fitted once per seed (the seed "
        "also draws the held-out users that stop the boosting and check it)",
    )
    ap.add_argument("--out", default="ranker_tuning", help="results file stem in bench/results")
    return ap.parse_args()


def say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


PARAMS_NAME = "params.yaml training.ranker.union"


def configs(
    training: TrainingParams, max_train_users: int | None
) -> tuple[dict[str, RankerConfig], str]:
    """Each setting over the shared training.ranker settings, and the name of the one
    params.yaml's union settings equal (added as PARAMS_NAME when none does)."""
    shared = {k: v for k, v in training.ranker.items() if k != "union"}
    fixed = {"candidates": "union", "two_tower_source": False, "max_train_users": max_train_users}
    found = {
        name: RankerConfig(**{**shared, **fixed, **setting}) for name, setting in SETTINGS.items()
    }
    # The `union` overrides are applied already; without them it compares as a setting.
    current = (
        RankerConfig(**{**training.ranker, **fixed}).for_union().model_copy(update={"union": {}})
    )
    for name, cfg in found.items():
        if cfg == current:
            return found, name
    return {**found, PARAMS_NAME: current}, PARAMS_NAME


class Ranked:
    """A frame of ranked rows behind the harness interface (its top k per user)."""

    def __init__(self, rows: pd.DataFrame, scores: np.ndarray) -> None:
        scored = rows[["user_id", "item_id", "retrieval_rank"]].assign(score=scores)
        scored = scored.sort_values(
            ["user_id", "score", "retrieval_rank"], ascending=[True, False, True], kind="stable"
        )
        scored["rank"] = scored.groupby("user_id", sort=False).cumcount() + 1
        self.frame = scored[["user_id", "item_id", "rank", "score"]]

    def fit(self, train_events: pd.DataFrame, items: pd.DataFrame | None) -> Ranked:
        return self  # ranked already: the harness is only asked for each user's top k

    def recommend(self, user_ids: Any, k: int, exclude_seen: bool = True) -> pd.DataFrame:
        wanted = {str(u) for u in user_ids}
        top = self.frame[self.frame["user_id"].isin(wanted) & (self.frame["rank"] <= k)]
        return top.reset_index(drop=True)


def bootstrap(per_user: pd.DataFrame, model: str, base: str = "ease") -> dict[str, float]:
    """Paired bootstrap over the window's users (seeded) of the NDCG@10 ratio model / base."""
    wide = per_user[per_user["k"] == K].pivot_table(index="user_id", columns="model", values="ndcg")
    a, b = wide[model].to_numpy(float), wide[base].to_numpy(float)
    picks = np.random.default_rng(0).integers(0, len(a), size=(BOOTSTRAP, len(a)))
    ratio = a[picks].mean(axis=1) / b[picks].mean(axis=1)
    return {
        "ratio": float(a.mean() / b.mean()),
        "ratio_low": float(np.percentile(ratio, 2.5)),
        "ratio_high": float(np.percentile(ratio, 97.5)),
    }


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sys.exit(f"--seeds must be comma-separated integers, got {text!r}")
    if not seeds:
        sys.exit("--seeds needs at least one seed")
    return seeds


def seeded_figures(
    measured: Any, per_user: pd.DataFrame, name: str, members: list[str]
) -> dict[str, Any]:
    """A setting's figures over its seeds: each metric's mean and the spread of NDCG@10;
    the ratio to EASE from the per-user NDCG@10 averaged over the seeds."""
    figures: dict[str, Any] = {
        f"{m}@{K}": float(np.mean([measured.value(r, m, K) for r in members])) for m in METRICS
    }
    figures[f"ndcg@{K}_std"] = float(np.std([measured.value(r, "ndcg", K) for r in members]))
    at_k = per_user[(per_user["k"] == K) & per_user["model"].isin(members)]
    averaged = at_k.groupby("user_id", as_index=False)["ndcg"].mean().assign(model=name, k=K)
    ease = per_user[(per_user["model"] == "ease") & (per_user["k"] == K)]
    return figures | bootstrap(pd.concat([ease, averaged], ignore_index=True), name)


def run(args: argparse.Namespace, store: Any) -> dict[str, Any]:
    extra_params = load_params(args.params).model_extra or {}
    evaluation = EvaluationParams.model_validate(extra_params.get("evaluation") or {})
    training = TrainingParams.model_validate(extra_params.get("training") or {})
    cfgs, in_params = configs(training, args.max_train_users)
    widest = max(cfgs.values(), key=lambda c: c.label_windows)
    stages: dict[str, float] = {}
    started = time.perf_counter()
    prepared = prepare_split(args.data, evaluation, widest)
    split = prepared.split
    history, items = split.history("validation"), split.candidate_items("validation")
    say(prepared.plan.describe())
    say(
        f"validation window from {split.start('validation')}; {len(history):,} events before "
        f"it; label windows of {widest.cut_days:g} days: {widest.label_windows}"
    )
    profiles = user_profiles(store)  # the profile source's input, as training reads it
    lists = union_labelled_candidates(
        None, history, items, widest, split.params, split.allow_repeats, stages, say, profiles
    )
    stages["examples_train"] = -time.perf_counter()
    examples = ranking_examples(store, lists, extra=union_feature_columns(lists))
    stages["examples_train"] += time.perf_counter()
    say(f"training examples: {len(examples.y):,} rows in {stages['examples_train']:.0f} s")
    window_of = examples.keys["query"].str.split("|", n=1).str[0].astype(int).to_numpy()

    stages["validation_rows"] = -time.perf_counter()
    sources = fit_sources(
        history, split.start("validation"), items, split.allow_repeats, profiles=profiles
    )
    truth = split.truth("validation")
    rows = sources.rows(history, truth.users["user_id"].astype(str), widest)
    stages["validation_rows"] += time.perf_counter()
    stages["examples_validation"] = -time.perf_counter()
    target = ranking_examples(store, rows, extra=union_feature_columns(rows))
    stages["examples_validation"] += time.perf_counter()
    say(f"validation examples: {len(target.y):,} rows in {stages['examples_validation']:.0f} s")

    stages["ease"] = -time.perf_counter()
    reference = evaluate(
        {"ease": baselines(evaluation, split.allow_repeats)["ease"]},
        split,
        [K],
        window="validation",
        fit=True,
    )
    stages["ease"] += time.perf_counter()
    seeds = parse_seeds(args.seeds)
    ranked: dict[str, Ranked] = {
        "union (fused order)": Ranked(target.keys, -target.keys["retrieval_rank"].to_numpy(float))
    }
    fits: dict[str, dict[str, Any]] = {}
    runs: dict[str, list[str]] = {"union (fused order)": ["union (fused order)"]}
    for name, cfg in cfgs.items():
        runs[name] = []
        for seed in seeds:
            began = time.perf_counter()
            seeded = cfg.model_copy(update={"seed": seed})
            result = fit_examples(examples.where(window_of < cfg.label_windows), seeded)
            scores = result.predict(target.X)
            order = result.new_user_order  # people without history: the order the check chose
            if order is not None:
                scores = new_user_scores(scores, target.X[NEW_USER], target.X[order])
            run_name = f"{name} | seed {seed}"
            ranked[run_name] = Ranked(target.keys, scores)
            runs[name].append(run_name)
            seconds = time.perf_counter() - began
            stages[f"fit: {run_name}"] = seconds
            fits.setdefault(name, {"config": {k: getattr(cfg, k) for k in SHOWN}, "seeds": []})
            fits[name]["seeds"].append(
                {
                    "seed": seed,
                    "scored_by": result.metrics.get("scored_by"),
                    "train_rows": result.metrics.get("train_rows"),
                    "best_iteration": result.metrics.get("best_iteration"),
                    "guard_ndcg@10": result.metrics.get("guard_ndcg@10"),
                    "new_user_order": order,
                    "fit_s": round(seconds, 1),
                }
            )
            alone = evaluate(
                {run_name: ranked[run_name]}, split, [K], window="validation", fit=False
            )
            ndcg, ease_ndcg = alone.value(run_name, "ndcg", K), reference.value("ease", "ndcg", K)
            say(
                f"{run_name}: fitted in {seconds:.0f} s ({result.metrics.get('scored_by')}, "
                f"round {result.metrics.get('best_iteration')}); NDCG@{K} {ndcg:.4f}, "
                f"{ndcg / ease_ndcg:.3f}x EASE {ease_ndcg:.4f}"
            )
    measured = evaluate(ranked, split, [K], window="validation", fit=False)
    per_user = pd.concat([reference.per_user, measured.per_user], ignore_index=True)
    ease = {f"{m}@{K}": reference.value("ease", m, K) for m in METRICS}
    models = {
        name: seeded_figures(measured, per_user, name, members) | fits.get(name, {})
        for name, members in runs.items()
    }
    best = max(fits, key=lambda n: models[n][f"ndcg@{K}"])
    stages["total"] = time.perf_counter() - started
    say(f"best on the validation window: {best} ({models[best][f'ndcg@{K}']:.4f} NDCG@{K})")
    return {
        "window": {
            "name": "validation",
            "start": str(split.start("validation")),
            "users": len(truth.users),
            "relevant_pairs": len(truth.relevant),
            "allow_repeats": bool(split.allow_repeats),
        },
        "ease": ease,
        "models": models,
        "best": best,
        "params": in_params,
        "stage_s": {k: round(v, 1) for k, v in stages.items()},
    }


def markdown(body: dict[str, Any]) -> str:
    meta, found = body["meta"], body["result"]
    ease = found["ease"][f"ndcg@{K}"]
    window = found["window"]
    lines = [
        "# Union ranker settings on the validation window",
        "",
        f"Command: `{meta['command']}`  ",
        f"Data: {meta['data']} (data version {meta['data_version'][:12]}); {meta['machine']}, "
        f"shared with other work; {meta['date']}. Window: validation from {window['start']} "
        f"({window['users']:,} users, {window['relevant_pairs']:,} relevant pairs). "
        "Every model learns only from events before that window; the test window is not used. "
        "The union leaves out the two-tower source (training.ranker.two_tower_source: false); "
        f"labelled users per label window: {meta['max_train_users'] or 'all'}.",
        "",
        f"| model | label windows | pairs | depth | min child weight | learning rate | "
        f"patience | NDCG@{K} (mean ± std) | vs EASE (95% CI) | recall@{K} | coverage@{K} | "
        "scored by | rounds | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| EASE | | | | | | | {ease:.4f} | 1.000 | {found['ease'][f'recall@{K}']:.4f} | "
        f"{found['ease'][f'coverage@{K}']:.4f} | | | |",
    ]
    for name, m in found["models"].items():
        c, runs = m.get("config", {}), m.get("seeds", [])
        cells = [c.get(k, "") for k in SHOWN]
        scored = ", ".join(sorted({str(r["scored_by"]) for r in runs}))
        rounds = " / ".join(str(r["best_iteration"]) for r in runs)
        fit_s = f"{np.mean([r['fit_s'] for r in runs]):.1f}" if runs else ""
        lines.append(
            f"| {name}{' **(best)**' if name == found['best'] else ''}"
            f"{' (params.yaml)' if name == found.get('params') else ''} | "
            + " | ".join(str(v) for v in cells)
            + f" | {m[f'ndcg@{K}']:.4f} ± {m[f'ndcg@{K}_std']:.4f} | {m['ratio']:.3f} "
            f"({m['ratio_low']:.3f} .. {m['ratio_high']:.3f}) | {m[f'recall@{K}']:.4f} | "
            f"{m[f'coverage@{K}']:.4f} | {scored} | {rounds} | {fit_s} |"
        )
    lines += [
        "",
        "Time per stage, s: "
        + ", ".join(f"{k} {v:.0f}" for k, v in found["stage_s"].items() if not k.startswith("fit")),
        "",
        f"Each setting is fitted once per seed ({', '.join(map(str, meta['seeds']))}); the "
        "seed also draws the held-out users that stop the boosting and check it. Metrics are "
        "means over the seeds; rounds: where early stopping ended, per seed. The vs-EASE "
        "interval is a paired bootstrap over the window's users of their NDCG@10 averaged "
        f"over the seeds ({BOOTSTRAP} resamples, seeded).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    if args.max_train_users is not None and args.max_train_users < 1:
        sys.exit(f"--max-train-users must be >= 1, got {args.max_train_users}")
    work = Path(__file__).parent / "work" / "ranker_tuning"
    work.mkdir(parents=True, exist_ok=True)
    # A private Feast project over the same tables (as bench/train_quality.py).
    settings = Settings().model_copy(
        update={
            "features_dir": args.features,
            "feast_project": f"tw_bench_tuning_{uuid.uuid4().hex[:8]}",
            "feast_registry": (work / "registry.db").resolve(),
        }
    )
    store, _ = apply(settings)
    try:
        result = run(args, store)
    finally:
        teardown(settings, store)
    body = {
        "meta": {
            "command": shlex.join([".venv/bin/python", *sys.argv]),
            "data": str(args.data),
            "data_version": data_version(args.data),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "max_train_users": args.max_train_users,
            "seeds": parse_seeds(args.seeds),
            "settings": SETTINGS,
        },
        "result": result,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(body, indent=2, default=str) + "\n")
    text = markdown(body)
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
