"""Benchmark: model quality of `tailwise train` over seeds, against the baselines and goals.

The platform is trained with training.ranker.candidates from --candidates (default
`union`: the ranker over every candidate source, training.union). Per seed it also
records candidate recall at N = 50/100/200 of each source the version saved and of
their union, NDCG@10 of each source's own top 10 (the ranker's lift over the best one),
the time of each training stage, and a seeded paired bootstrap over the test users of
the platform's NDCG@10 minus EASE's (and of their ratio).

For each seed, runs the training stages in this process exactly as `tailwise train` does
(retriever and its ranker lists, ranker, evaluation of the saved version on the test
window next to the baselines and the oracle), with the seed given to both model configs.
Records per model NDCG / Precision / Recall / MAP / hit rate @10 and coverage@10, the
ranker's lift over the retriever's own order of the same candidates, the retriever's
candidate recall (share of the test window's relevant pairs inside its top-N, the most
a reranker can find), and the training time. Writes bench/results/train_quality.json and
.md: mean ± sample std over seeds, and each goal met or not with the measured reasons.

    .venv/bin/python bench/train_quality.py            # seeds 0,1,2 on data/ (dvc repro first)
    .venv/bin/python bench/train_quality.py --seeds 0 --params params.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np

from tailwise.features.store import apply, teardown
from tailwise.settings import Settings
from training import pipeline
from training.batch import load_recommender
from training.config import EvaluationParams
from training.pipeline import TrainingParams

RESULTS = Path(__file__).parent / "results"
WORK = Path(__file__).parent / "work" / "train_quality"
BASELINES = ["most_popular", "recently_popular", "item_cooccurrence", "ease"]
NS = (50, 100, 200)
BOOTSTRAP = 2000
METRICS = ["ndcg", "precision", "recall", "map", "hit_rate", "coverage"]
K = 10


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    ap.add_argument("--data", type=Path, default=Path("data/clean"))
    ap.add_argument("--features", type=Path, default=Path("data/features"))
    ap.add_argument("--ground-truth", type=Path, default=Path("data/raw/ground_truth"))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--candidates", choices=["two_tower", "union"], default="union")
    ap.add_argument(
        "--part",
        default=None,
        help="write only bench/work/train_quality/<part>.json (one process per seed)",
    )
    ap.add_argument("--combine", default=None, help="comma-separated part names: merge their runs")
    ap.add_argument(
        "--render", action="store_true", help="only rewrite the .md from the committed .json"
    )
    return ap.parse_args()


def section(path: Path, name: str) -> dict[str, Any]:
    from tailwise.params import load_params

    return dict((load_params(path).model_extra or {}).get(name) or {})


def seeded(training: TrainingParams, seed: int, candidates: str) -> TrainingParams:
    return training.model_copy(
        update={
            "retrieval": {**training.retrieval, "seed": seed},
            "ranker": {**training.ranker, "seed": seed, "candidates": candidates},
        }
    )


def candidate_recall(folder: Path, store: Any, split: Any, n: int) -> float:
    """Share of the test window's relevant (user, item) pairs in the retriever's top-n."""
    truth = split.truth("test")
    model = load_recommender(folder, store, split.history("test")).candidate_model
    recs = model.recommend(truth.users["user_id"], n)
    found = recs.merge(truth.relevant, on=["user_id", "item_id"])
    return len(found) / len(truth.relevant)


def source_figures(folder: Path, store: Any, split: Any) -> dict[str, Any]:
    """Recall@N of each saved source (the two-tower included) and of their union on the
    test window, and NDCG@10 of each source's own top 10 there."""
    from tailwise.candidates import candidate_recall as recall_table
    from training.evaluate import evaluate
    from training.union import TWO_TOWER

    truth, history = split.truth("test"), split.history("test")
    platform = load_recommender(folder, store, history)
    sources = platform.sources
    users = truth.users["user_id"].astype(str).tolist()
    exclude = not split.allow_repeats
    context = sources.profiles  # the profile source's input (None without one)
    frames = {
        s.name: s.candidates(history, max(NS), users, sources.cut, exclude, context)
        for s in sources.sources
    }
    if sources.two_tower is not None:  # training.ranker.two_tower_source
        recs = sources.two_tower.recommend(users, max(NS), exclude_seen=exclude)
        frames[TWO_TOWER] = recs.assign(
            user_id=recs["user_id"].astype(str), item_id=recs["item_id"].astype(str)
        ).assign(source=TWO_TOWER)
    table = recall_table(frames, truth.relevant, truth.users, NS)
    recall = {
        f"{r.source}@{r.n}": round(float(r.recall), 6)
        for r in table[table["slice"] == "all"].itertuples()
    }
    union_size = {
        f"union@{r.n}": round(float(r.candidates), 1)
        for r in table[(table["slice"] == "all") & (table["source"] == "union")].itertuples()
    }
    own = {name: _Fixed(frame) for name, frame in frames.items()}
    result = evaluate(own, split, [K], None, window="test", fit=False)
    ndcg = {name: result.value(name, "ndcg", K) for name in own}
    return {"recall": recall, "union_size": union_size, "source_ndcg": ndcg}


class _Fixed:
    """A source's candidates behind the harness interface (its own top k)."""

    def __init__(self, frame: Any) -> None:
        self.frame = frame

    def recommend(self, user_ids: Any, k: int, exclude_seen: bool = True) -> Any:
        wanted = {str(u) for u in user_ids}
        top = self.frame[self.frame["user_id"].isin(wanted) & (self.frame["rank"] <= k)]
        return top[["user_id", "item_id", "rank", "score"]]


def bootstrap(result: Any, model: str, base: str = "ease", seed: int = 0) -> dict[str, float]:
    """Paired bootstrap over the test users (seeded numpy) of NDCG@10: the mean
    difference model - base and the ratio of means, with 95% percentile intervals."""
    per_user = result.per_user[result.per_user["k"] == K]
    wide = per_user.pivot_table(index="user_id", columns="model", values="ndcg")
    a, b = wide[model].to_numpy(float), wide[base].to_numpy(float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(a), size=(BOOTSTRAP, len(a)))
    diff = a[picks].mean(axis=1) - b[picks].mean(axis=1)
    ratio = a[picks].mean(axis=1) / b[picks].mean(axis=1)
    return {
        "users": len(a),
        "diff": float(a.mean() - b.mean()),
        "diff_low": float(np.percentile(diff, 2.5)),
        "diff_high": float(np.percentile(diff, 97.5)),
        "ratio": float(a.mean() / b.mean()),
        "ratio_low": float(np.percentile(ratio, 2.5)),
        "ratio_high": float(np.percentile(ratio, 97.5)),
    }


def run_seed(
    seed: int, args: argparse.Namespace, store: Any, settings: Settings, root: Path
) -> dict:
    evaluation = EvaluationParams.model_validate(section(args.params, "evaluation"))
    training = TrainingParams.model_validate(section(args.params, "training"))
    training = seeded(training, seed, args.candidates)
    work = root / f"seed{seed}"
    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    outcome = pipeline.train(
        args.data,
        store,
        evaluation,
        training,
        root / "models",
        args.ground_truth,
        args.features,
        work=work,
        settings=settings,
        tune=False,
    )
    total = time.perf_counter() - started
    manifest = json.loads((outcome.folder / "manifest.json").read_text())
    result = outcome.result
    split = pipeline.recorded_split(args.data, evaluation, manifest)
    n = int(manifest["params"]["training"]["ranker"].get("n_candidates", 200))
    model, candidates = pipeline.platform_names(manifest)
    row: dict[str, Any] = {
        "seed": seed,
        "version": outcome.version,
        "platform": model,
        "training_s": manifest["training_seconds"],
        "stage_s": manifest.get("stage_seconds", {}),
        "train_and_evaluate_s": round(total, 1),
        "ranker_lift": pipeline.ranker_lift(result),
        f"candidate_recall@{n}": candidate_recall(outcome.folder, store, split, n),
        "models": {
            m: {f"{metric}@{K}": result.value(m, metric, K) for metric in METRICS}
            for m in [*BASELINES, candidates, model, "oracle"]
        },
        "slices": {
            s: {m: result.value(m, "ndcg", K, slice=s) for m in (model, "ease", "oracle")}
            for s in ("new", "returning")
        },
        "bootstrap_vs_ease": bootstrap(result, model, seed=seed),
        "users": {
            s: int(result.table.loc[result.table["slice"] == s, "users"].iloc[0])
            for s in ("new", "returning")
        },
    }
    if args.candidates == "union":
        row["sources"] = source_figures(outcome.folder, store, split)
        best = max(row["sources"]["source_ndcg"].items(), key=lambda kv: kv[1])
        platform = row["models"][model][f"ndcg@{K}"]
        row["best_source"] = {"name": best[0], f"ndcg@{K}": best[1]}
        row["lift_over_best_source"] = platform / best[1] - 1 if best[1] > 0 else None
    print(json.dumps(row, indent=1, default=str), flush=True)
    return row


def summarise(rows: list[dict]) -> dict:
    def stats(values: list[float]) -> dict[str, float]:
        a = np.asarray(values, dtype=float)
        return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0}

    models = {
        m: {k: stats([r["models"][m][k] for r in rows]) for k in rows[0]["models"][m]}
        for m in rows[0]["models"]
    }
    recall_key = next(k for k in rows[0] if k.startswith("candidate_recall@"))
    slices = {
        s: {m: stats([r["slices"][s][m] for r in rows]) for m in rows[0]["slices"][s]}
        for s in rows[0]["slices"]
    }
    out: dict[str, Any] = {
        "platform": rows[0]["platform"],
        "models": models,
        "slices": slices,
        "users": rows[0]["users"],
        "ranker_lift": stats([r["ranker_lift"] for r in rows]),
        recall_key: stats([r[recall_key] for r in rows]),
        "training_s": stats([r["training_s"] for r in rows]),
        "stage_s": {
            k: stats([r["stage_s"].get(k, np.nan) for r in rows]) for k in rows[0]["stage_s"]
        },
        "bootstrap_vs_ease": {
            k: stats([r["bootstrap_vs_ease"][k] for r in rows])
            for k in ("diff", "diff_low", "diff_high", "ratio", "ratio_low", "ratio_high")
        },
    }
    if "sources" in rows[0]:
        out["recall"] = {
            k: stats([r["sources"]["recall"][k] for r in rows])
            for k in rows[0]["sources"]["recall"]
        }
        out["union_size"] = {
            k: stats([r["sources"]["union_size"][k] for r in rows])
            for k in rows[0]["sources"]["union_size"]
        }
        out["source_ndcg"] = {
            k: stats([r["sources"]["source_ndcg"][k] for r in rows])
            for k in rows[0]["sources"]["source_ndcg"]
        }
        out["lift_over_best_source"] = stats([r["lift_over_best_source"] for r in rows])
    return out


def goals(summary: dict) -> list[dict]:
    m = summary["models"]
    ndcg = {name: m[name][f"ndcg@{K}"]["mean"] for name in m}
    model_name = summary["platform"]
    candidates_name = dict(pipeline.PLATFORM.values())[model_name]
    ours, pop, oracle, ease = ndcg[model_name], ndcg["most_popular"], ndcg["oracle"], ndcg["ease"]
    oracle_hits = m["oracle"][f"hit_rate@{K}"]["mean"]
    new = {name: v["mean"] for name, v in summary["slices"]["new"].items()}
    returning = {name: v["mean"] for name, v in summary["slices"]["returning"].items()}
    users = summary["users"]
    lift = summary["ranker_lift"]["mean"]
    recall_key = next(k for k in summary if k.startswith("candidate_recall@"))
    best_classic = max(ndcg["ease"], ndcg["item_cooccurrence"])
    boot = summary["bootstrap_vs_ease"]
    found = [
        {
            "goal": f"NDCG@{K} >= 1.10x EASE",
            "target": 1.10 * ease,
            "measured": ours,
            "met": ours >= 1.10 * ease,
            "why": (
                f"ours {ours:.4f} is {ours / ease:.3f}x EASE {ease:.4f} (paired bootstrap over "
                f"users, 95% interval of the ratio per seed, mean over seeds: "
                f"{boot['ratio_low']['mean']:.3f} .. {boot['ratio_high']['mean']:.3f})."
            ),
        },
        {
            "goal": f"NDCG@{K} >= 2x most popular",
            "target": 2 * pop,
            "measured": ours,
            "met": ours >= 2 * pop,
            "why": (
                f"The oracle, which ranks by the generator's true utility, reaches "
                f"{oracle / pop:.2f}x most popular ({oracle:.4f} vs {pop:.4f}), so 2x popular "
                f"needs {2 * pop / oracle:.0%} of the ceiling. EASE, a strong classical "
                f"method, reaches {ease / pop:.2f}x ({ease:.4f}); the best classical "
                f"baseline is at {best_classic / oracle:.0%} of the oracle and ours at "
                f"{ours / oracle:.0%} ({'above' if ours > ease else 'not above'} EASE: "
                f"{ours:.4f} vs {ease:.4f}). The generator "
                "draws every choice as a deterministic score plus random noise: even the "
                f"oracle's top {K} holds none of what a person did next for "
                f"{1 - oracle_hits:.0%} of the people measured."
            ),
        },
        {
            "goal": f"NDCG@{K} >= 80% of the oracle",
            "target": 0.8 * oracle,
            "measured": ours,
            "met": ours >= 0.8 * oracle,
            "why": (
                f"ours is {ours / oracle:.0%} of the oracle, EASE {ease / oracle:.0%}. The "
                f"retriever's top-N holds {summary[recall_key]['mean']:.0%} of the relevant "
                "pairs, so the ranker reorders a list that misses the rest. The oracle "
                "also knows the true taste of people without history: on the "
                f"{users['new']:,} new users it scores {new['oracle']:.4f} against ours "
                f"{new[model_name]:.4f} (EASE {new['ease']:.4f}); on the {users['returning']:,} "
                f"returning ones {returning['oracle']:.4f} against "
                f"{returning[model_name]:.4f} ({returning[model_name] / returning['oracle']:.0%})."
            ),
        },
        {
            "goal": f"ranker lifts NDCG@{K} >= 5% over its candidates' own order",
            "target": 0.05,
            "measured": lift,
            "met": lift >= 0.05,
            "why": (
                f"the candidates' own order scores {m[candidates_name][f'ndcg@{K}']['mean']:.4f}, "
                f"the reranked list {ours:.4f}."
            ),
        },
    ]
    for goal in found:
        if goal["met"]:
            goal["why"] = ""
    return found


def markdown(rows: list[dict], summary: dict, goal_rows: list[dict], meta: dict) -> str:
    pm = "±"
    lines = [
        "# Training quality over seeds (test window)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Data: {meta['data']} (data version {meta['data_version']}, features built "
        f"{meta.get('features_built_at', '?')}); seeds "
        f"{meta['seeds']} (given to the retriever and the ranker); {meta['machine']}. "
        "Baselines and the oracle do not depend on the seed (std 0). Timings are noisy: "
        "the machine's 2 cores were shared with other work.",
        *_settings_lines(meta),
        "",
        f"| model | NDCG@{K} | Precision@{K} | Recall@{K} | MAP@{K} | hit rate@{K} | "
        f"coverage@{K} |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, values in summary["models"].items():
        cells = [
            f"{values[f'{m}@{K}']['mean']:.4f} {pm} {values[f'{m}@{K}']['std']:.4f}"
            for m in METRICS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    recall_key = next(k for k in summary if k.startswith("candidate_recall@"))
    lift, recall = summary["ranker_lift"], summary[recall_key]
    lines += [
        "",
        f"- Ranker lift over the retriever's own order of the same candidates (NDCG@{K}): "
        f"{lift['mean']:+.1%} {pm} {lift['std']:.1%}",
        f"- Retriever candidate {recall_key.removeprefix('candidate_')}: "
        f"{recall['mean']:.1%} {pm} {recall['std']:.1%} of the relevant test pairs",
        *_union_lines(summary, pm),
        f"- NDCG@{K} by user slice (mean over seeds): "
        + "; ".join(
            f"{name} ({summary['users'][name]:,} users): "
            + ", ".join(f"{m} {v['mean']:.4f}" for m, v in part.items())
            for name, part in summary["slices"].items()
        ),
        "- Training time per seed (retriever stage + ranker stage), s: "
        + ", ".join(f"seed {r['seed']}: {r['training_s']:.0f}" for r in rows)
        + "; with evaluation: "
        + ", ".join(f"{r['train_and_evaluate_s']:.0f}" for r in rows),
        "- Time per training stage (mean over seeds), s: "
        + ", ".join(f"{k} {v['mean']:.0f}" for k, v in summary.get("stage_s", {}).items()),
        "",
        "## Goals",
        "",
        "| goal | target | measured (mean) | met |",
        "|---|---|---|---|",
    ]
    for g in goal_rows:
        fmt = "{:+.1%}" if "lift" in g["goal"] else "{:.4f}"
        lines.append(
            f"| {g['goal']} | {fmt.format(g['target'])} | {fmt.format(g['measured'])} | "
            f"{'met' if g['met'] else 'not met'} |"
        )
    unmet = [g for g in goal_rows if not g["met"]]
    if unmet:
        lines += ["", "Why the unmet goals are not met (measured above):", ""]
        lines += [f"- **{g['goal']}**: {g['why']}" for g in unmet]
    return "\n".join(lines) + "\n"


def _settings_lines(meta: dict) -> list[str]:
    """The union ranker's own settings (training.ranker.union) the runs used, when any."""
    union = (meta.get("params", {}).get("ranker") or {}).get("union") or {}
    if not union:
        return []
    shown = ", ".join(f"{k}: {v}" for k, v in union.items())
    return ["", f"Union ranker settings (training.ranker.union): {shown}."]


def _union_lines(summary: dict, pm: str) -> list[str]:
    """The union's figures: bootstrap vs EASE, lift over the best source, recall per source."""
    model_name = summary["platform"]
    boot = summary["bootstrap_vs_ease"]
    lines = [
        f"- {model_name} vs EASE, paired bootstrap over the test users ({BOOTSTRAP} resamples, "
        f"seeded), mean over seeds: NDCG@{K} difference {boot['diff']['mean']:+.4f} "
        f"(95% CI {boot['diff_low']['mean']:+.4f} .. {boot['diff_high']['mean']:+.4f}); "
        f"ratio {boot['ratio']['mean']:.3f} {pm} {boot['ratio']['std']:.3f} over seeds "
        f"(95% CI {boot['ratio_low']['mean']:.3f} .. {boot['ratio_high']['mean']:.3f})",
    ]
    if "source_ndcg" not in summary:
        return lines
    best = max(summary["source_ndcg"].items(), key=lambda kv: kv[1]["mean"])
    lift = summary["lift_over_best_source"]
    lines.append(
        f"- Ranker lift over the union's best single source ({best[0]}'s own top {K}, "
        f"NDCG@{K} {best[1]['mean']:.4f}): {lift['mean']:+.1%} {pm} {lift['std']:.1%}"
    )
    names = [*sorted({k.split("@")[0] for k in summary["recall"]} - {"union"}), "union"]
    lines += [
        "",
        f"| candidate source | recall@{NS[0]} | recall@{NS[1]} | recall@{NS[2]} | own NDCG@{K} |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        cells = [f"{summary['recall'][f'{name}@{n}']['mean']:.1%}" for n in NS]
        if name == "union":
            cells = [
                f"{c} (size {summary['union_size'][f'union@{n}']['mean']:.0f})"
                for c, n in zip(cells, NS, strict=True)
            ]
        own = summary["source_ndcg"].get(name, {}).get("mean")
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {'' if own is None else f'{own:.4f}'} |"
        )
    return [*lines, ""]


def main() -> None:
    args = parse_args()
    if args.render:
        body = json.loads((RESULTS / "train_quality.json").read_text())
        text = markdown(body["runs"], body["summary"], goals(body["summary"]), body["meta"])
        (RESULTS / "train_quality.md").write_text(text)
        print(text)
        return
    if args.combine:
        parts = [json.loads((WORK / f"{p}.json").read_text()) for p in args.combine.split(",")]
        rows = [row for part in parts for row in part["runs"]]
        meta = {**parts[0]["meta"], "seeds": [r["seed"] for r in rows]}
        meta["command"] = (
            " && ".join(p["meta"]["command"] for p in parts)
            + " && "
            + shlex.join([".venv/bin/python", *sys.argv])
        )
        write(rows, meta)
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    work = WORK / (args.part or "run")
    # A private Feast project and registry over the same tables: a materialisation of the
    # shared demo project (which marks its views busy) cannot interrupt the runs.
    work.mkdir(parents=True, exist_ok=True)
    settings = Settings().model_copy(
        update={
            "features_dir": args.features,
            "feast_project": f"tw_bench_train_{uuid.uuid4().hex[:8]}",
            "feast_registry": (work / "registry.db").resolve(),
        }
    )
    store, _ = apply(settings)
    try:
        rows = [run_seed(seed, args, store, settings, work) for seed in seeds]
    finally:
        teardown(settings, store)
    from tailwise.lineage import data_version

    meta = {
        "command": shlex.join([".venv/bin/python", *sys.argv]),
        "data": str(args.data),
        "data_version": data_version(args.data),
        "features_built_at": json.loads((args.features / "features_manifest.json").read_text())[
            "built_at"
        ],
        "seeds": seeds,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": section(args.params, "training"),
    }
    if args.part:
        body = {"meta": meta, "runs": rows}
        (WORK / f"{args.part}.json").write_text(json.dumps(body, indent=2, default=str) + "\n")
        shutil.rmtree(work, ignore_errors=True)
        return
    write(rows, meta)
    shutil.rmtree(work, ignore_errors=True)


def write(rows: list[dict], meta: dict) -> None:
    summary = summarise(rows)
    goal_rows = goals(summary)
    RESULTS.mkdir(exist_ok=True)
    body = {"meta": meta, "runs": rows, "summary": summary, "goals": goal_rows}
    (RESULTS / "train_quality.json").write_text(json.dumps(body, indent=2, default=str) + "\n")
    (RESULTS / "train_quality.md").write_text(markdown(rows, summary, goal_rows, meta))
    print((RESULTS / "train_quality.md").read_text())


if __name__ == "__main__":
    main()
