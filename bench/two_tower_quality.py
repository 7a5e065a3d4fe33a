"""Benchmark: the two-tower retriever alone, its candidate recall and NDCG@10 (test window).

On one clean dataset with its built features (by default the default generated data in
bench/work/two_tower: `tailwise generate`, `tailwise ingest`, `tailwise features build`
with params.yaml), splits the events as `tailwise train` does (training.pipeline
.prepare_split), fits TwoTowerRecommender on the history before the test window with
training.retrieval of params.yaml (plus `--set` overrides) for each seed, and records:

    recall@50/100/200  share of the test window's relevant (user, item) pairs among the
                       retriever's top N (tailwise.candidates.candidate_recall)
    ndcg@10, recall@10 training.evaluate on the test window (most_popular beside it)
    fit seconds        noisy: the machine's 2 cores are shared

Runs are kept in bench/results/two_tower_quality.json under `--label` (e.g. `before`,
run with the main branch's code on PYTHONPATH, and `after`), and the .md shows them
side by side. Settings are chosen on the validation window (training.tune or the
retriever's own validation slice), never here.

    .venv/bin/python bench/two_tower_quality.py --label after --seeds 0
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
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "work" / "two_tower"
NS = (50, 100, 200)
K = 10


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", required=True, help="name of this run, e.g. before / after")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds")
    ap.add_argument("--data", type=Path, default=WORK / "clean")
    ap.add_argument("--features", type=Path, default=WORK / "features")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--set", action="append", default=[], help="retrieval override name=yaml-value")
    ap.add_argument(
        "--window",
        default="test",
        choices=["test", "validation"],
        help="validation: fit before the validation window and score it (to choose settings)",
    )
    ap.add_argument(
        "--append", action="store_true", help="add these seeds' rows to an existing --label run"
    )
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from the .json")
    return ap.parse_args()


def section(path: Path, name: str) -> dict[str, Any]:
    from tailwise.params import load_params

    return dict((load_params(path).model_extra or {}).get(name) or {})


def overrides(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set {pair!r}: expected name=value")
        out[name] = yaml.safe_load(value)
    return out


def run_seed(
    seed: int, retrieval: dict[str, Any], split: Any, store: Any, window: str
) -> dict[str, Any]:
    from tailwise.candidates import candidate_recall
    from training.evaluate import evaluate
    from training.retrieval import RetrievalConfig, TwoTowerRecommender

    cfg = RetrievalConfig(**{**retrieval, "seed": seed})
    model = TwoTowerRecommender(store, cfg, as_of=split.start(window))
    started = time.perf_counter()
    model.fit(split.history(window), split.candidate_items(window))
    fit_s = time.perf_counter() - started
    result = evaluate({"two_tower": model}, split, ks=(K,), window=window)
    truth = split.truth(window)
    recs = model.recommend(truth.users["user_id"], max(NS), exclude_seen=not split.allow_repeats)
    frames = {"two_tower": recs.assign(source="two_tower")}
    table = candidate_recall(frames, truth.relevant, truth.users, NS)
    table = table[(table["source"] == "two_tower") & (table["slice"] == "all")]
    info = model.result.info
    row = {
        "seed": seed,
        "config": cfg.model_dump(mode="json"),
        "fit_s": round(fit_s, 1),
        f"ndcg@{K}": result.value("two_tower", "ndcg", K),
        f"recall@{K}": result.value("two_tower", "recall", K),
        **{f"recall@{n}": float(table.set_index("n").loc[n, "recall"]) for n in NS},
        "epochs_run": len(info.get("loss", [])),
        "best_epoch": info.get("best_epoch"),
        "validation": info.get("validation"),
    }
    print(json.dumps(row, indent=1, default=str), flush=True)
    return row


def popular_ndcg(split: Any, window: str) -> float:
    from training.baselines import MostPopular
    from training.evaluate import evaluate

    model = {"most_popular": MostPopular()}
    result = evaluate(model, split, ks=(K,), window=window, fit=True)
    return result.value("most_popular", "ndcg", K)


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    keys = [f"ndcg@{K}", f"recall@{K}", *(f"recall@{n}" for n in NS), "fit_s"]
    out = {}
    for key in keys:
        values = np.array([r[key] for r in rows], dtype=float)
        out[key] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        }
    return out


def markdown(body: dict[str, Any]) -> str:
    lines = [
        "# Two-tower retriever alone: candidate recall and NDCG@10",
        "",
        "Default generated data (`tailwise generate`, `ingest`, `features build` with "
        "params.yaml into bench/work/two_tower); split as `tailwise train` does. A `test` "
        "run fits the retriever on the history before the test window and scores that "
        "window; a `validation` run fits on the history before the validation window and "
        "scores it: settings were chosen on those, never on the test window. recall@N: "
        "share of the window's relevant (user, item) pairs among the retriever's top N, "
        "seen items excluded. Mean ± sample std over seeds; fit seconds are noisy (2 "
        "shared cores, other work running).",
        "",
        f"| run | window | seeds | NDCG@{K} | recall@{K} | "
        + " | ".join(f"recall@{n}" for n in NS)
        + " | fit s | most popular NDCG@10 |",
        "|---|---|---|---|---|" + "---|" * len(NS) + "---|---|",
    ]
    for label, run in body["runs"].items():
        s = run["summary"]
        cells = [f"{s[f'ndcg@{K}']['mean']:.4f} ± {s[f'ndcg@{K}']['std']:.4f}"]
        cells += [f"{s[f'recall@{K}']['mean']:.1%}"]
        cells += [f"{s[f'recall@{n}']['mean']:.1%} ± {s[f'recall@{n}']['std']:.1%}" for n in NS]
        cells += [f"{s['fit_s']['mean']:.0f}", f"{run['most_popular_ndcg']:.4f}"]
        seeds = ",".join(str(r["seed"]) for r in run["rows"])
        window = run.get("window", "test")
        lines.append(f"| {label} | {window} | {seeds} | " + " | ".join(cells) + " |")
    runs = body["runs"]
    if "before" in runs and "after" in runs:
        a, b = runs["after"]["summary"], runs["before"]["summary"]
        ndcg = f"ndcg@{K}"
        lines += [
            "",
            f"After vs before on the test window: NDCG@{K} "
            f"{a[ndcg]['mean']:.4f} vs {b[ndcg]['mean']:.4f} "
            f"({a[ndcg]['mean'] / b[ndcg]['mean'] - 1:+.1%}); "
            + ", ".join(
                f"recall@{n} {a[f'recall@{n}']['mean']:.1%} vs {b[f'recall@{n}']['mean']:.1%}"
                for n in NS
            )
            + ".",
        ]
    lines += ["", "Commands and settings:", ""]
    for label, run in body["runs"].items():
        config = {k: v for k, v in run["rows"][0]["config"].items() if k != "seed"}
        lines.append(f"- {label}: `{run['command']}` ({run['date']}, code {run['code']})")
        lines.append(f"  - config: `{json.dumps(config)}`")
        epochs = [r.get("epochs_run") for r in run["rows"]]
        best = [r.get("best_epoch") for r in run["rows"]]
        lines.append(f"  - epochs run {epochs}, best epoch (validation) {best}")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    out_json = RESULTS / "two_tower_quality.json"
    if not args.render:
        run = measure(args)
        RESULTS.mkdir(exist_ok=True)
        body = json.loads(out_json.read_text()) if out_json.exists() else {"runs": {}}
        before = body["runs"].get(args.label)
        if args.append and before:  # more seeds of the same settings
            same = [r["config"] | {"seed": 0} for r in (*before["rows"], *run["rows"])]
            if any(c != same[0] for c in same):
                raise SystemExit(f"--append: {args.label!r} was run with other settings")
            run["rows"] = sorted([*before["rows"], *run["rows"]], key=lambda r: r["seed"])
            run["summary"] = summary(run["rows"])
            run["command"] = f"{before['command']}; {run['command']}"
        body["runs"][args.label] = run  # read just before: other runs may have written
        out_json.write_text(json.dumps(body, indent=2, default=str) + "\n")
    body = json.loads(out_json.read_text())
    text = markdown(body)
    (RESULTS / "two_tower_quality.md").write_text(text)
    print(text)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import subprocess

    from tailwise.features.store import apply, teardown
    from tailwise.repeats import RecommendParams
    from tailwise.settings import Settings
    from training.config import EvaluationParams
    from training.pipeline import prepare_split
    from training.ranker import RankerConfig

    evaluation = EvaluationParams.model_validate(section(args.params, "evaluation"))
    recommend = RecommendParams.model_validate(section(args.params, "recommend"))
    training = section(args.params, "training")
    ranker = RankerConfig(**(training.get("ranker") or {}))
    retrieval = {**(training.get("retrieval") or {}), **overrides(args.set)}
    split = prepare_split(args.data, evaluation, ranker, recommend).split
    # A private Feast project over the built tables, removed afterwards.
    WORK.mkdir(parents=True, exist_ok=True)
    settings = Settings().model_copy(
        update={
            "features_dir": args.features.resolve(),
            "feast_project": f"tw_bench_tower_{uuid.uuid4().hex[:8]}",
            "feast_registry": (WORK / f"registry-{uuid.uuid4().hex[:6]}.db").resolve(),
        }
    )
    store, _ = apply(settings)
    try:
        rows = [
            run_seed(int(s), retrieval, split, store, args.window) for s in args.seeds.split(",")
        ]
    finally:
        teardown(settings, store)
    import training.retrieval

    code = subprocess.run(
        [
            "git",
            "-C",
            str(Path(training.retrieval.__file__).parent),
            "rev-parse",
            "--short",
            "HEAD",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "command": shlex.join([".venv/bin/python", *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": code or "unknown",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "window": args.window,
        "most_popular_ndcg": popular_ndcg(split, args.window),
        "rows": rows,
        "summary": summary(rows),
    }


if __name__ == "__main__":
    main()
