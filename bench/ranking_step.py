"""Benchmark: the request path's stages in one process, the ranking step in detail.

Builds (or reuses, under bench/work/ranking_step/) a generated data set and a version
trained on it with params.yaml's ranker (the retriever trained for one epoch: its
quality does not matter here), registers the features under a throwaway Feast project
in a private redis-server (own port, nothing on disk; stopped at the end) and opens the
serving graph as `tailwise recommend` does. Each sampled user's state is read from
Redis once, before the clock starts; then, over `--calls` requests cycling through the
users, it times (perf_counter, in this process, no HTTP and no Redis):

  pipeline      RecommendPipeline.answer: features (on-demand context), retrieval,
                ranking, rules, and their sum as the pipeline measures them
  ranking_matrix  serving.ranking.ranking_matrix: the candidates' rows of the ranker's
                matrix (cross features included)
  rank          ModelBundle.rank: XGBoost's inplace_predict over that matrix

Medians and p99 in ms. `--label` names the entry in bench/results/ranking_step.json
(kept with the others, so a run of another checkout of the code, put first on
PYTHONPATH, lands next to it); bench/results/ranking_step.md shows every entry.

    .venv/bin/python bench/ranking_step.py --label after
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tailwise.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "work" / "ranking_step"
PARAMS = """
evaluation:
  split: {validation_days: 5, test_days: 5}
  ks: [5, 10]
training:
  retrieval: {epochs: 1, batch_size: 512, embedding_dim: 32, seed: 0}
"""
STAGES = ("features", "retrieval", "ranking", "rules")
TREES = 300


def prepare(work: Path, users: int, items: int, days: int) -> Path:
    """The generated clean data, features and a trained version under `work` (built once)."""
    from tailwise.ingest.pipeline import run_ingest
    from tailwise.params import IngestParams
    from tailwise.synthetic import GenerateConfig, generate

    raw, clean = work / "raw", work / "clean"
    if not (raw / "defects.json").exists():
        generate(GenerateConfig(users=users, items=items, days=days, seed=7), raw)
    if not (clean / "quality_report.json").exists():
        run_ingest(clean, IngestParams(), b"bench-key-" * 4, source=raw)
    if not (work / "models" / "LATEST").exists():
        (work / "params.yaml").write_text(PARAMS)
        args = ["--data", clean, "--features", work / "features", "--models", work / "models"]
        args += ["--work", work / "train", "--evaluation", work / "evaluation"]
        _cli(["train", *map(str, args), "--params", str(work / "params.yaml")], _env(work, ""))
    learned_ranker(work)
    return clean


def learned_ranker(work: Path) -> None:
    """Put a learned ranker into the version: params.yaml's, with `TREES` trees (no early
    stopping). On data this small training may keep the candidates' own order, or stop
    after a few trees; this benchmark measures what a ranker costs, not what it is worth."""
    import pandas as pd
    import yaml

    folder = work / "models" / (work / "models" / "LATEST").read_text().strip()
    meta = json.loads((folder / "ranker" / "ranker.json").read_text())
    if meta["metrics"].get("bench") == "ranking_step":
        return
    env = _env(work, "")
    _cli(["features", "apply"], env)
    for key in ("TAILWISE_FEATURE_REPO", "TAILWISE_FEATURES_DIR", "TAILWISE_FEAST_PROJECT"):
        os.environ[key] = env[key]
    os.environ["TAILWISE_FEAST_REGISTRY"] = env["TAILWISE_FEAST_REGISTRY"]
    from tailwise.features.store import open_store
    from tailwise.settings import Settings
    from training.ranker import RankerConfig, ranking_examples, save, train_ranker

    params = yaml.safe_load((ROOT / "params.yaml").read_text())["training"]["ranker"]
    cfg = RankerConfig.model_validate({**params, "n_estimators": TREES})
    candidates = pd.read_parquet(work / "train" / "retrieval" / "candidates.parquet")
    examples = ranking_examples(open_store(Settings()), candidates)
    result = train_ranker(cfg, examples)
    result.metrics["bench"] = "ranking_step"
    save(result, folder / "ranker", data_version=meta.get("data_version"))


def _env(work: Path, redis_url: str, project: str = "bench_rankstep") -> dict[str, str]:
    env = {
        **os.environ,
        "TF_USE_LEGACY_KERAS": "1",
        "TAILWISE_FEATURE_REPO": str(ROOT / "feature_repo"),
        "TAILWISE_FEATURES_DIR": str(work / "features"),
        "TAILWISE_FEAST_PROJECT": project,
        "TAILWISE_FEAST_REGISTRY": str(work / "registry.db"),
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def _cli(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tailwise.cli", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"tailwise {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


@contextmanager
def private_redis(directory: Path) -> Iterator[str]:
    """A redis-server of this run's own on a free port, nothing written to disk."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    no_disk = ["--save", "", "--appendonly", "no", "--dir", str(directory)]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", *no_disk],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}"
    try:
        client, deadline = redis.Redis.from_url(url), time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def open_pipeline(work: Path, clean: Path, redis_url: str) -> Any:
    """The serving graph over the trained version, its features materialised in Redis."""
    env = _env(work, redis_url, f"bench_rankstep_{uuid.uuid4().hex[:8]}")
    (work / "registry.db").unlink(missing_ok=True)
    _cli(["features", "apply"], env)
    _cli(["features", "materialize"], env)
    for key in ("TAILWISE_FEATURE_REPO", "TAILWISE_FEATURES_DIR", "REDIS_URL"):
        os.environ[key] = env[key]
    os.environ["TAILWISE_FEAST_PROJECT"] = env["TAILWISE_FEAST_PROJECT"]
    os.environ["TAILWISE_FEAST_REGISTRY"] = env["TAILWISE_FEAST_REGISTRY"]
    from serving.batch import open_graph
    from serving.config import ServingConfig
    from tailwise.settings import Settings

    config = ServingConfig(models_dir=work / "models", clean_dir=clean)
    return open_graph(config, Settings())


def read_states(graph: Any, users: list[str]) -> list[tuple[Any, Any]]:
    """(request, user state) per user, read from Redis before anything is timed."""
    from serving.pipeline import Request

    devices, countries = ["mobile", "desktop", "tablet"], ["DE", "FR", "GB", "NL", "US"]

    async def read_all() -> list[tuple[Any, Any]]:
        out = []
        for n, user in enumerate(users):
            req = Request(user, 10, devices[n % 3], countries[n % 5], request_id=str(n))
            out.append((req, await graph._read(req)))  # the graph's one round trip
        return out

    return asyncio.run(read_all())


def percentiles(samples: list[float]) -> dict[str, float]:
    q = np.percentile(np.array(samples) * 1000, [50, 99])
    return {"median_ms": round(float(q[0]), 4), "p99_ms": round(float(q[1]), 4), "n": len(samples)}


def time_calls(calls: int, step: Callable[[int], dict[str, float]]) -> dict[str, list[float]]:
    """`step(i)` for i in range(calls), after `calls // 10` untimed ones: its timings."""
    for i in range(max(calls // 10, 1)):
        step(i)
    out: dict[str, list[float]] = {}
    for i in range(calls):
        for name, seconds in step(i).items():
            out.setdefault(name, []).append(seconds)
    return out


def measure(graph: Any, states: list[tuple[Any, Any]], calls: int) -> dict[str, Any]:
    """Per-call figures in this thread's CPU time (time.thread_time: on a loaded machine
    wall time mostly measures the wait for a core), and the pipeline's wall time."""
    from types import SimpleNamespace

    import serving.pipeline
    from serving.ranking import ranking_matrix
    from serving.retrieval import retrieve

    # The pipeline times its stages with time.perf_counter: give it the CPU clock.
    serving.pipeline.time = SimpleNamespace(perf_counter=time.thread_time)  # type: ignore[attr-defined]
    clock = time.thread_time

    pipeline, bundle, reader = graph.pipeline, graph.bundle, graph.reader
    known = [(r, s) for r, s in states if any(v is not None for v in s.features.values())]
    ts = int(datetime.now(UTC).timestamp())

    def answer(i: int) -> dict[str, float]:
        req, state = known[i % len(known)]
        t, wall = clock(), time.perf_counter()
        got = pipeline.answer(req, state)
        total, wall = clock() - t, time.perf_counter() - wall
        if got.cold_start:
            raise SystemExit(f"user {req.user_id} got the cold-start list: not a ranking call")
        return {**{k: got.stages[k] for k in STAGES}, "pipeline": total, "pipeline_wall": wall}

    prepared = []
    for req, state in known:
        row = reader.with_context(state.features, req.device, req.country, ts)
        row["user_id"] = req.user_id
        exclude = set(req.exclude) | state.purchased | state.seen
        prepared.append((row, retrieve(bundle, row, graph.config.n_candidates, exclude)))
    block = pipeline.popular.block()
    on_demand = block.on_demand(reader.catalogue_on_demand(ts))

    def ranking(i: int) -> dict[str, float]:
        row, candidates = prepared[i % len(prepared)]
        t0 = clock()
        X = ranking_matrix(bundle, block, row, on_demand, candidates)
        t1 = clock()
        bundle.rank(X)
        return {"ranking_matrix": t1 - t0, "rank": clock() - t1}

    timings = time_calls(calls, answer) | time_calls(calls, ranking)
    return {
        "stages": {k: percentiles(v) for k, v in timings.items()},
        "users": len(known),
        "candidates": graph.config.n_candidates,
        "ranker_features": len(bundle.ranker_features),
        "catalogue": len(bundle.item_ids),
        "trees": int(bundle.iterations[1] or bundle.ranker.num_boosted_rounds()),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def record(path: Path, label: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Every labelled run in `path` with `entry` put under `label`, written back."""
    results = json.loads(path.read_text()) if path.exists() else {}
    results[label] = entry
    path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def stage_table(results: dict[str, Any], order: list[str]) -> list[str]:
    """Markdown rows: a stage per row, median and p99 per labelled run."""
    labels = list(results)
    lines = [
        "| stage | " + " | ".join(f"{lb} median | {lb} p99" for lb in labels) + " |",
        "|---|" + "---|---|" * len(labels),
    ]
    for stage in order:
        cells = []
        for lb in labels:
            got = results[lb]["stages"].get(stage)
            cells += [str(got["median_ms"]), str(got["p99_ms"])] if got else ["", ""]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return lines


def save(label: str, entry: dict[str, Any]) -> None:
    results = record(RESULTS / "ranking_step.json", label, entry)
    order = ["pipeline", *STAGES, "ranking_matrix", "rank", "pipeline_wall"]
    labels = list(results)
    lines = [
        "# The request path's stages in one process (ranking in detail)",
        "",
        "Per-request CPU time of the serving thread (time.thread_time) inside one process "
        "(no HTTP, no Redis: each user's state is read before the clock starts), medians "
        "and p99 in ms; pipeline_wall is the same calls' wall time. Taken on a 2-core "
        "machine shared with other work (load average in the table): wall times there "
        "mostly measure the wait for a core, CPU times less so but still noisy (caches, "
        "frequency); compare the medians.",
        "",
        *stage_table(results, order),
    ]
    lines += ["", "| run | when | calls | load average (1, 5, 15 min) | code | command |"]
    lines.append("|---|---|---|---|---|---|")
    for lb in labels:
        e = results[lb]
        lines.append(
            f"| {lb} | {e['when']} | {e['calls']} | {e['load_average']} | {e['code']} | "
            f"`{e['command']}` |"
        )
    e = results[labels[-1]]
    lines += [
        "",
        f"Data: generated, {e['data']}; {e['catalogue']} items in the version, "
        f"{e['candidates']} candidates per request, {e['ranker_features']} ranker features, "
        f"{e['trees']} trees; {e['users']} users cycled through. pipeline = "
        "RecommendPipeline.answer; ranking = building the ranker's matrix, scoring, and the "
        "history features; ranking_matrix and rank time those two alone on the same users. "
        f"The ranker: params.yaml's with {TREES} trees, trained by this benchmark on the "
        "generated data (what it costs, not what it is worth).",
    ]
    (RESULTS / "ranking_step.md").write_text("\n".join(lines) + "\n")


def command() -> str:
    """This run's command line; with the checkout of the code it measured when that is not
    the one this script is in (a `before` run of another revision)."""
    import serving

    checkout = Path(serving.__file__).resolve().parents[1]
    prefix = [] if checkout == ROOT else [f"PYTHONPATH={checkout}"]
    return shlex.join([*prefix, "python", "bench/ranking_step.py", *sys.argv[1:]])


def code_revision() -> str:
    import serving

    checkout = Path(serving.__file__).resolve().parents[1]
    done = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(checkout), "status", "--porcelain", "--", "serving", "tailwise"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return done.stdout.strip() + (" + uncommitted changes" if dirty else "")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--label", default="after", help="name of this run in the results")
    parser.add_argument("--calls", type=int, default=2000, help="timed requests per measure")
    parser.add_argument("--users", type=int, default=2000, help="generated users")
    parser.add_argument("--items", type=int, default=1000, help="generated items")
    parser.add_argument("--days", type=int, default=35, help="generated days")
    parser.add_argument("--sample", type=int, default=200, help="users whose requests run")
    parser.add_argument("--work", type=Path, default=WORK, help="where the data and model live")
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args()
    if args.calls < 10:
        parser.error("--calls must be at least 10")
    return args


def main() -> None:
    args = parse_args()
    work = args.work.resolve()
    clean = prepare(work, args.users, args.items, args.days)
    with private_redis(work / "redis") as url:
        graph = open_pipeline(work, clean, url)
        import pandas as pd

        profiles = pd.read_parquet(work / "features" / "user_profile.parquet", columns=["user_id"])
        users = sorted(profiles["user_id"].astype(str).unique())
        rng = np.random.default_rng(0)
        sample = rng.choice(users, size=min(args.sample, len(users)), replace=False).tolist()
        states = read_states(graph, sample)
        before = load_average()
        figures = measure(graph, states, args.calls)
    entry = {
        **figures,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "calls": args.calls,
        "load_average": [before, load_average()][1],
        "code": code_revision(),
        "data": f"{args.users} users, {args.items} items, {args.days} days, seed 7",
        "machine": f"{os.cpu_count()} cores; Python {platform.python_version()}",
        "command": command(),
    }
    print(json.dumps(entry, indent=2))
    if not args.no_save:
        save(args.label, entry)


if __name__ == "__main__":
    main()
