"""Benchmark: candidate recall of each source in tailwise.candidates and of their union.

For each dataset (`default`: `tailwise generate` with params.yaml's generate section, as
bench/train_quality.py uses through `dvc repro`; or a `tailwise generate --profile` shape),
in bench/work/candidate_recall/<name>: generate, ingest (each as its own process, profiles
with ingest.consent_default: true as in bench/datasets.py), then the split evaluation and
`tailwise train` use (training.pipeline.prepare_split: windows fitted to the data, repeats
decided on the history). Every source of `default_sources` is fitted on the events before
the test window and asked for candidates for the test window's evaluated users from that
same history. Records recall@N of each source and of the union of their top N (with the
union's size), new vs returning users, and each source's fit and candidate times.

    .venv/bin/python bench/candidate_recall.py
    .venv/bin/python bench/candidate_recall.py --datasets default,grocery-rebuy,sparse-tail

Writes bench/results/candidate_recall.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TAILWISE = str(Path(sys.executable).parent / "tailwise")
NS = (50, 100, 200)
GOAL = 0.9  # share of relevant test pairs the union should hold


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="default", help="default and/or profile names")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "candidate_recall")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from the .json")
    return ap.parse_args()


def prepare_data(name: str, folder: Path, params: Path) -> Path:
    """Generate and ingest `name` into `folder`; the clean data's directory."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = yaml.safe_load(params.read_text())
    if name != "default":  # profiles without consent columns: consent by other means
        config["ingest"]["consent_default"] = True
    own = folder / "params.yaml"
    own.write_text(yaml.safe_dump(config, sort_keys=False))
    env = dict(os.environ)
    env.pop("TAILWISE_DEMO", None)
    env.setdefault("TAILWISE_HMAC_KEY", uuid.uuid4().hex * 2)
    profile = [] if name == "default" else ["--profile", name]
    raw, clean = str(folder / "raw"), str(folder / "clean")
    commands = [
        [TAILWISE, "generate", "--out", raw, "--params", str(own), *profile],
        [TAILWISE, "ingest", "--source", raw, "--out", clean, "--params", str(own), "--no-show"],
    ]
    for command in commands:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{shlex.join(command)} failed: {done.stderr[-800:]}")
    return folder / "clean"


def measure(name: str, clean: Path, params: Path) -> dict[str, Any]:
    """Fit every source before the test window and measure its candidates' recall."""
    from tailwise.candidates import candidate_recall, default_sources
    from tailwise.params import load_params
    from tailwise.repeats import RecommendParams
    from training.config import EvaluationParams
    from training.pipeline import prepare_split
    from training.ranker import RankerConfig

    loaded = load_params(params).model_extra or {}
    evaluation = EvaluationParams.model_validate(loaded.get("evaluation") or {})
    recommend = RecommendParams.model_validate(loaded.get("recommend") or {})
    ranker = RankerConfig(**((loaded.get("training") or {}).get("ranker") or {}))
    prepared = prepare_split(clean, evaluation, ranker, recommend)
    split = prepared.split
    history, truth = split.history("test"), split.truth("test")
    items = split.candidate_items("test") if split.items is not None else None
    frames, timings, failed = {}, {}, {}
    for source in default_sources(split.allow_repeats, items=items):
        started = time.perf_counter()
        try:
            source.fit(history, split.test_start)
        except ValueError as exc:  # e.g. EASE refusing a catalogue above ease max_items
            failed[source.name] = str(exc)
            continue
        fitted = time.perf_counter()
        frames[source.name] = source.candidates(
            history, max(NS), truth.users["user_id"], exclude_seen=not split.allow_repeats
        )
        timings[source.name] = {
            "fit_s": round(fitted - started, 2),
            "candidates_s": round(time.perf_counter() - fitted, 2),
        }
    table = candidate_recall(frames, truth.relevant, truth.users, NS)
    without = {
        name: _union_recall({k: v for k, v in frames.items() if k != name}, truth.relevant)
        for name in frames
    }
    return {
        "dataset": name,
        "events_before_test": len(history),
        "items_before_test": int(history["item_id"].nunique()),
        "test_start": str(split.test_start),
        "windows": prepared.plan.describe(),
        "repeats": prepared.repeats.describe(),
        "users": truth.users["status"].value_counts().to_dict(),
        "relevant_pairs": len(truth.relevant),
        "timings": timings,
        "failed": failed,
        "recall": table.to_dict(orient="records"),
        "union_without": without,
    }


def _union_recall(frames: dict[str, pd.DataFrame], relevant: pd.DataFrame) -> dict[str, float]:
    """Recall of the union of `frames` at every N (what the union holds without a source)."""
    out = {}
    for n in NS:
        pairs = pd.concat(
            [f.loc[f["rank"] <= n, ["user_id", "item_id"]] for f in frames.values()]
        ).drop_duplicates()
        out[str(n)] = len(relevant.merge(pairs, on=["user_id", "item_id"])) / len(relevant)
    return out


def markdown(runs: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Candidate recall per source and for the union (test window)",
        "",
        f"Command: `{meta['command']}`  ",
        f"{meta['machine']}; {meta['date']}. Sources fitted on the events before the test "
        "window, candidates from the same history; recall = share of the test window's "
        "relevant (user, item) pairs among a source's top N (the union: every source's "
        "top N together; `size` is its mean candidates per user).",
    ]
    for run in runs:
        lines += _run_lines(run)
    return "\n".join(lines) + "\n"


def _run_lines(run: dict[str, Any]) -> list[str]:
    table = pd.DataFrame(run["recall"])
    every = table[table["slice"] == "all"]
    header = " | ".join(f"recall@{n}" for n in NS)
    lines = [
        "",
        f"## {run['dataset']}",
        "",
        f"{run['events_before_test']:,} events and {run['items_before_test']:,} items "
        f"before the test window ({run['test_start']}); {run['relevant_pairs']:,} relevant "
        f"test pairs of {sum(run['users'].values()):,} users "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(run['users'].items()))}); "
        f"{run['windows']}; {run['repeats']}.",
        "",
        f"| source | {header} | union@{max(NS)} without it | fit s | candidates s |",
        "|---|" + "---|" * (len(NS) + 3),
    ]
    for source, rows in every.groupby("source", sort=False):
        recall = rows.set_index("n")
        cells = [f"{recall.loc[n, 'recall']:.1%}" for n in NS]
        if source == "union":
            cells = [
                f"{c} (size {recall.loc[n, 'candidates']:.0f})"
                for c, n in zip(cells, NS, strict=True)
            ]
            cost = ["", "", ""]
        else:
            t = run["timings"][source]
            loss = run["union_without"][source][str(max(NS))]
            cost = [f"{loss:.1%}", f"{t['fit_s']:.2f}", f"{t['candidates_s']:.2f}"]
        lines.append(f"| {source} | " + " | ".join(cells + cost) + " |")
    for source, message in run.get("failed", {}).items():
        lines.append(f"| {source} | not fitted: {message} |" + " |" * (len(NS) + 2))
    at_most = every[every["n"] == max(NS)].set_index("source")["recall"]
    union, best = at_most["union"], at_most.drop("union").idxmax()
    lines += [
        "",
        f"Goal: the union holds >= {GOAL:.0%} of the relevant test pairs. Union@{max(NS)}: "
        f"{union:.1%}, {'met' if union >= GOAL else 'not met'}; the best single source "
        f"there is {best} ({at_most[best]:.1%}).",
    ]
    lines += ["", "Union recall by user slice:", ""]
    union = table[(table["source"] == "union") & (table["slice"] != "all")]
    for status, rows in union.groupby("slice"):
        recall = rows.set_index("n")
        lines.append(
            f"- {status} ({recall['relevant'].iloc[0]:,} relevant pairs): "
            + ", ".join(
                f"@{n} {recall.loc[n, 'recall']:.1%} (size {recall.loc[n, 'candidates']:.0f})"
                for n in NS
            )
        )
    lines += ["", "Recall@200 of each source by user slice:", ""]
    at = table[(table["n"] == max(NS)) & (table["source"] != "union")]
    pivot = at.pivot(index="source", columns="slice", values="recall")
    for source, row in pivot.iterrows():
        lines.append(f"- {source}: " + ", ".join(f"{s} {v:.1%}" for s, v in row.items()))
    return lines


def main() -> None:
    args = parse_args()
    out_json = RESULTS / "candidate_recall.json"
    if args.render:
        body = json.loads(out_json.read_text())
        (RESULTS / "candidate_recall.md").write_text(markdown(body["runs"], body["meta"]))
        return
    runs = []
    for name in [n.strip() for n in args.datasets.split(",") if n.strip()]:
        clean = prepare_data(name, args.work / name, args.params)
        run = measure(name, clean, args.work / name / "params.yaml")
        print(json.dumps({k: v for k, v in run.items() if k != "recall"}, indent=1), flush=True)
        runs.append(run)
    meta = {
        "command": shlex.join([".venv/bin/python", *sys.argv]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "ns": list(NS),
    }
    RESULTS.mkdir(exist_ok=True)
    out_json.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2, default=str) + "\n")
    text = markdown(runs, meta)
    (RESULTS / "candidate_recall.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
