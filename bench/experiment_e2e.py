"""End to end: champion vs challenger vs popularity, simulated shoppers against the running API.

generate (seeded, with ground truth) -> tailwise ingest -> tailwise train twice: the
    champion (bench/scenario.py's tiny parameters) and the challenger (larger) ->
    features apply + materialize; all in a workspace of its own (bench/workspace.py:
    own Feast project, registry and feature tables) on a private redis-server
    (tailwise.redis_server.ensure_redis on a free port)
experiments/e2e.yaml: champion, challenger (each its model version) and popularity (a
    holdout: the popular list), equal weights, Thompson sampling on clicks after a burn-in
tailwise serve --background; then per simulated day: the shoppers' visits
    (tailwise.experiments.simulation, true utilities of the generator's world, events
    with the request id), `tailwise events consume --once` (exposures and events to
    Parquet, posteriors and the bandit's allocation to Redis), and the replicas read the
    new allocation (experiments.allocation_refresh_seconds)
tailwise experiments report e2e; then goals, each PASS or FAIL:
  - the report's highest CTR per exposure is the variant the simulator knows is best
    (highest mean true utility of what it showed), above every other variant with
    significance (delta method, Holm across the metrics, alpha 0.05; the analysis run
    with each other variant as the control)
  - the bandit gives that variant >= 70% of the last simulated day's traffic
  - the fixed-weight days' split of users matches the weights (SRM p >= 0.001)
  - no visit failed

    .venv/bin/python bench/experiment_e2e.py    (make bench-experiment-e2e; ~15 min on an
                                                 idle 2-core machine)
    ... --reuse-world   keeps the generated data and both trained versions of an earlier run
                        of the same world (same day); the features are materialised again
                        into a new private Redis and everything after that runs anew
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd
import redis
import yaml

from bench.scenario import TINY_PARAMS, clear_outputs, write_key
from bench.workspace import deep_merge, workspace_env
from monitoring.loop import LoopConfig, LoopError, tailwise_command
from serving.keys import Keys
from tailwise.experiments.analysis import AnalysisConfig, analyse
from tailwise.experiments.attribution import attribute_served
from tailwise.experiments.posteriors import PosteriorStore
from tailwise.experiments.simulation import ChoiceModel, Shoppers, SimulationConfig, simulate
from tailwise.ports import free_port
from tailwise.privacy import pseudonymise
from tailwise.redis_server import ensure_redis
from tailwise.synthetic import GenerateConfig, generate
from tailwise.synthetic.config import DefectRates

NAME = "e2e"
SHARE_GOAL = 0.70
CHALLENGER: dict[str, Any] = {  # over the tiny parameters: a larger, longer-trained model
    "training": {
        "retrieval": {"epochs": 6, "embedding_dim": 32, "history_items": 10},
        "ranker": {"n_estimators": 200, "n_candidates": 100, "min_child_weight": 5},
    }
}


def experiment(champion: str, challenger: str, burn_in: int, start: datetime) -> dict[str, Any]:
    third = round(1 / 3, 6)
    return {
        "name": NAME,
        "description": "Champion vs challenger vs the popular list, on simulated shoppers.",
        "salt": f"e2e-{secrets.token_hex(4)}",
        "start": start.isoformat(),
        "bandit": {"metric": "click", "burn_in": burn_in, "floor": 0.05},
        "variants": [
            {"name": "champion", "weight": round(1 - 2 * third, 6), "model_version": champion},
            {"name": "challenger", "weight": third, "model_version": challenger},
            {"name": "popularity", "type": "holdout", "weight": third},
        ],
    }


def build_world(args: argparse.Namespace, root: Path, cmd: LoopConfig, step: Any) -> list[str]:
    """data/raw (with ground_truth/), data/clean, two versions in data/models, features
    in Redis; returns [champion, challenger] version names."""
    step("generate")
    end = (datetime.now(UTC) - timedelta(days=args.sim_days + 1)).date()
    gen = GenerateConfig(
        users=args.users, items=args.items, days=args.days, seed=args.seed,
        end_date=end, defects=DefectRates.off(),
    )  # fmt: skip
    generate(gen, root / "data/raw")
    step("ingest")
    tailwise_command(cmd, "ingest", "--out", "data/clean", "--source", "data/raw", "--no-show")
    versions = []
    for name, extra in (("champion", {}), ("challenger", CHALLENGER)):
        step(f"train the {name}")
        params = deep_merge(yaml.safe_load((root / "params.yaml").read_text()), extra)
        (root / f"params_{name}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        before = _versions(root)
        tailwise_command(
            cmd, "train", "--params", f"params_{name}.yaml", "--work", f"data/work/{name}",
            "--evaluation", f"data/evaluation/{name}",
        )  # fmt: skip
        # LATEST names the serving version, not the newest: the new folder is this one.
        [made] = _versions(root) - before
        versions.append(made)
    materialize(cmd, step)
    return versions


def _versions(root: Path) -> set[str]:
    return {p.parent.name for p in (root / "data/models").glob("*/manifest.json")}


def materialize(cmd: LoopConfig, step: Any) -> None:
    step("features apply + materialize")
    tailwise_command(cmd, "features", "apply")
    tailwise_command(cmd, "features", "materialize")


def world_key(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("users", "items", "days", "seed", "sim_days")
    return {k: getattr(args, k) for k in keys} | {"date": datetime.now(UTC).date().isoformat()}


# What a run writes besides the world (data, models) that --reuse-world keeps.
RUN_OUTPUTS = ("data/served", "data/feast", "monitoring", ".tailwise", "experiments", "redis")


def clear(root: Path, reuse: bool) -> None:
    if not reuse:
        clear_outputs(root)
    for name in RUN_OUTPUTS:
        if (root / name).is_dir():
            shutil.rmtree(root / name)


def start_serving(cmd: LoopConfig, port: int, attempts: int, step: Any) -> None:
    """`tailwise serve --background`, tried again when it does not come up: on a loaded
    machine Ray's node can miss its fixed 30 s start-up deadline."""
    for attempt in range(1, attempts + 1):
        try:
            tailwise_command(
                cmd, "serve", "--background", "--port", str(port), "--set", "cache_ttl_seconds=0"
            )
            return
        except LoopError as exc:
            tailwise_command(cmd, "serve", "--stop")
            if attempt == attempts:
                raise
            step(f"serving did not start (attempt {attempt}/{attempts}): {str(exc)[-160:]}")


def run_days(
    args: argparse.Namespace, root: Path, cmd: LoopConfig, store: PosteriorStore, url: str,
    key: str | None, hmac_key: str, weights: dict[str, float], step: Any,
) -> tuple[list[dict[str, Any]], Any]:  # fmt: skip
    """Each simulated day: visits, consume, the allocation replicas use the next day."""
    import httpx

    shoppers = Shoppers(root / "data/raw", ChoiceModel(), seed=args.seed)
    pseudonyms = pseudonymise(pd.Series(shoppers.user_ids), hmac_key.encode())
    ids = dict(zip(shoppers.user_ids, pseudonyms, strict=True))
    headers = {"X-API-Key": key} if key else {}
    first = datetime.now(UTC) - timedelta(days=args.sim_days)
    days, results = [], []
    for d in range(args.sim_days):
        used = store.read_allocations([NAME]).get(NAME) or weights
        cfg = SimulationConfig(
            days=1, users_per_day=args.visits_per_day, seed=args.seed + 100 * d,
            concurrency=args.concurrency, max_requests=args.visits_per_day,
            time_limit_s=args.time_limit, end=first + timedelta(days=d + 1), raw_ids=False,
        )  # fmt: skip

        async def go(cfg: SimulationConfig = cfg) -> Any:
            async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30.0)) as client:
                return await simulate(client, shoppers, cfg, ids.__getitem__, headers)

        started = time.perf_counter()
        result = asyncio.run(go())
        results.append(result)
        tailwise_command(cmd, "events", "consume", "--once")
        time.sleep(args.refresh_seconds * 2 + 1)  # replicas read the new allocation
        shares = pd.Series([e["variant"] for e in result.exposures]).value_counts(normalize=True)
        day = {
            "day": d + 1,
            "start": (first + timedelta(days=d)).isoformat(timespec="seconds"),
            "visits": result.requests,
            "failed": result.failed,
            "errors": result.errors,
            "allocation_used": used,
            "fixed_weights": _same(used, weights),
            "traffic_share": {str(v): round(float(s), 4) for v, s in shares.items()},
            "allocation_after": store.read_allocations([NAME]).get(NAME),
            "seconds": round(time.perf_counter() - started, 1),
        }
        days.append(day)
        step(
            f"day {d + 1}/{args.sim_days}: {result.requests} visits ({result.failed} failed), "
            "shares "
            + ", ".join(f"{v} {s:.2f}" for v, s in day["traffic_share"].items())
            + " -> allocation "
            + ", ".join(f"{v} {w:.2f}" for v, w in (day["allocation_after"] or {}).items())
        )
    return days, results


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return set(a) == set(b) and all(abs(a[k] - b[k]) < 1e-6 for k in a)


def truth(results: list[Any]) -> dict[str, dict[str, float]]:
    """Per variant over the run: visits, clicks per visit, mean true utility shown."""
    frame = pd.DataFrame([e for r in results for e in r.exposures])
    clicks = pd.DataFrame(
        [o for r in results for o in r.outcomes], columns=["variant", "event_type"]
    )
    out = {}
    for variant, g in frame.groupby("variant"):
        n = int((clicks["variant"] == variant).mul(clicks["event_type"] == "product_view").sum())
        out[str(variant)] = {
            "visits": len(g),
            "true_utility": round(float(g["true_utility"].mean()), 4),
            "clicks_per_visit": round(n / len(g), 4),
        }
    return out


def judge(
    root: Path, days: list[dict[str, Any]], known: dict[str, dict[str, float]],
    weights: dict[str, float], hours: float,
) -> tuple[list[tuple[bool, str]], dict[str, Any]]:  # fmt: skip
    """The goals, from the consumer's tables through the report's analysis."""
    exposures = pd.read_parquet(root / "data/served/exposures")
    outcomes = attribute_served(root / "data/served", pd.Timedelta(hours=hours))
    best = max(known, key=lambda v: known[v]["true_utility"])
    report = json.loads((root / f"monitoring/reports/experiments/{NAME}/report.json").read_text())
    ctr = {v: m["ctr"] for v, m in report["variants"].items()}
    found = max(ctr, key=lambda v: ctr[v])
    pairs = {}
    for other in (v for v in weights if v != best):
        result = analyse(NAME, exposures, outcomes, AnalysisConfig(control=other))
        test = result["comparisons"][best]["ctr"]
        pairs[other] = {k: test[k] for k in ("difference", "ci_low", "ci_high", "p_holm")}
        pairs[other]["significant"] = bool(test["significant"] and test["difference"] > 0)
    fixed = [d for d in days if d["fixed_weights"]]
    stamp = pd.to_datetime(exposures["timestamp"], utc=True)
    if fixed:
        lo = pd.Timestamp(fixed[0]["start"])
        hi = pd.Timestamp(fixed[-1]["start"]) + pd.Timedelta(days=1)
        phase = exposures.loc[(stamp >= lo) & (stamp < hi)]
        cfg = AnalysisConfig(control="champion", weights=weights)
        srm = analyse(NAME, phase, outcomes, cfg)["srm"]
    else:
        srm = None
    last = days[-1]["traffic_share"].get(best, 0.0)
    final = (days[-1]["allocation_after"] or {}).get(best, 0.0)
    failed = sum(d["failed"] for d in days)
    checks = [
        (
            found == best and all(p["significant"] for p in pairs.values()),
            f"the report's best CTR is the true best ({found} vs {best}), significantly above "
            + ", ".join(f"{o} (p_holm {p['p_holm']:.2g})" for o, p in pairs.items()),
        ),
        (
            last >= SHARE_GOAL,
            f"the bandit gives {best} >= {SHARE_GOAL:.0%} of the last day's traffic "
            f"({last:.1%}; allocation after it {final:.1%})",
        ),
        (
            srm is not None and not srm["flagged"],
            f"the fixed-weight days' split matches the weights ({len(fixed)} day(s); "
            + (f"SRM p = {srm['p_value']:.3g}" if srm else "no fixed-weight day")
            + ")",
        ),
        (failed == 0, f"no visit failed ({failed} failed)"),
    ]
    detail = {
        "best_by_truth": best,
        "best_by_report_ctr": found,
        "report_ctr": ctr,
        "pairwise_ctr": pairs,
        "fixed_phase_srm": srm,
        "report_srm": report["srm"],
        "report_notes": report["notes"],
    }
    return checks, detail


def markdown(out: dict[str, Any]) -> str:
    lines = [
        "# End to end: champion vs challenger vs popularity on simulated shoppers",
        "",
        f"{out['cores']} cores; Python {out['python']}; {out['at']}; `{out['command']}`",
        "",
        f"World: {out['world']}. Versions: champion {out['versions'][0]}, challenger "
        f"{out['versions'][1]}. Bandit: Thompson sampling on clicks, burn-in "
        f"{out['burn_in']} exposures per variant, floor 0.05.",
        "",
        "| variant | visits | true utility (mean shown) | clicks per visit (simulator) | "
        "report CTR |",
        "|---|---|---|---|---|",
    ]
    for v, t in out["truth"].items():
        ctr = out["detail"]["report_ctr"].get(v)
        lines.append(
            f"| {v} | {t['visits']:,} | {t['true_utility']:.4f} | {t['clicks_per_visit']:.4f} | "
            f"{'-' if ctr is None else f'{ctr:.4f}'} |"
        )
    lines += ["", "| day | visits | allocation used | traffic share | fixed weights |",
              "|---|---|---|---|---|"]  # fmt: skip
    for d in out["days"]:
        used = ", ".join(f"{v} {w:.2f}" for v, w in d["allocation_used"].items())
        share = ", ".join(f"{v} {s:.2f}" for v, s in d["traffic_share"].items())
        lines.append(f"| {d['day']} | {d['visits']} | {used} | {share} | {d['fixed_weights']} |")
    lines += ["", f"Best CTR against each other variant ({out['detail']['best_by_truth']}):", ""]
    for other, p in out["detail"]["pairwise_ctr"].items():
        lines.append(
            f"- vs {other}: difference {p['difference']:+.4f} "
            f"[{p['ci_low']:+.4f}, {p['ci_high']:+.4f}], p_holm {p['p_holm']:.3g}"
        )
    lines += ["", "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in out["seconds"].items())]
    lines += ["", "Goals:", ""]
    lines += [f"- {'PASS' if g['pass'] else 'FAIL'}: {g['goal']}" for g in out["goals"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--days", type=int, default=40, help="Generated history, in days.")
    parser.add_argument("--sim-days", type=int, default=8)
    parser.add_argument("--visits-per-day", type=int, default=900)
    parser.add_argument("--burn-in", type=int, default=500, help="Exposures per variant.")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--refresh-seconds", type=float, default=1.0)
    parser.add_argument("--time-limit", type=float, default=240.0, help="Per simulated day.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--root", type=Path, default=Path("data/experiment_e2e"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/experiment_e2e"))
    parser.add_argument("--reuse-world", action="store_true", help="Keep an earlier run's world.")
    parser.add_argument("--serve-attempts", type=int, default=3)
    args = parser.parse_args()
    root = args.root.resolve()
    step = _printer()
    seconds: dict[str, float] = {}
    made = root / "world.json"
    reuse = (
        args.reuse_world
        and made.exists()
        and json.loads(made.read_text())["world"] == world_key(args)
    )
    clear(root, reuse)
    root.mkdir(parents=True, exist_ok=True)
    redis_url = f"redis://127.0.0.1:{free_port()}"
    step(ensure_redis(redis_url, root / "redis"))
    project = "tw_experiment_e2e"
    hmac_key = secrets.token_hex(32)
    env = workspace_env(root, project, redis_url)
    env.update(
        TAILWISE_HMAC_KEY=hmac_key,
        RAY_SERVE_HAPROXY_METRICS_PORT=str(free_port()),
        RAY_SERVE_HAPROXY_STATS_PORT=str(free_port()),
    )
    env.pop("TAILWISE_API_KEYS", None)
    cmd = LoopConfig(root=root, env=env)
    params = deep_merge(
        yaml.safe_load((Path(__file__).resolve().parent.parent / "params.yaml").read_text()),
        {**TINY_PARAMS, "experiments": {"dir": "experiments",
                                        "allocation_refresh_seconds": args.refresh_seconds}},
    )  # fmt: skip
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    client = redis.Redis.from_url(redis_url)
    port = free_port()
    try:
        started = time.perf_counter()
        if reuse:
            versions = json.loads(made.read_text())["versions"]
            step(f"reusing the world of {made}: versions {versions}")
            materialize(cmd, step)
        else:
            versions = build_world(args, root, cmd, step)
            made.write_text(json.dumps({"world": world_key(args), "versions": versions}) + "\n")
        seconds["features (world reused)" if reuse else "world and training"] = (
            time.perf_counter() - started
        )
        start = datetime.now(UTC) - timedelta(days=args.sim_days + 1)
        definition = experiment(versions[0], versions[1], args.burn_in, start)
        (root / "experiments").mkdir(exist_ok=True)
        (root / "experiments/e2e.yaml").write_text(yaml.safe_dump(definition, sort_keys=False))
        weights = {v["name"]: v["weight"] for v in definition["variants"]}
        tailwise_command(cmd, "experiments", "validate")
        step(f"serve on port {port}")
        started = time.perf_counter()
        start_serving(cmd, port, args.serve_attempts, step)
        seconds["start serving"] = time.perf_counter() - started
        try:
            started = time.perf_counter()
            store = PosteriorStore(client, Keys(project).prefix)
            url, key = f"http://127.0.0.1:{port}", write_key(root, env)
            days, results = run_days(args, root, cmd, store, url, key, hmac_key, weights, step)
            seconds["simulated days"] = time.perf_counter() - started
        finally:
            tailwise_command(cmd, "serve", "--stop")
        step("report")
        tailwise_command(cmd, "experiments", "report", NAME, "--control", "champion")
        hours = float(params["experiments"].get("attribution_hours", 24.0))
        known = truth(results)
        checks, detail = judge(root, days, known, weights, hours)
    except LoopError as exc:  # a step failed: recorded, every goal FAILs
        return failed(args, seconds, str(exc))
    finally:
        with contextlib.suppress(redis.RedisError):  # shutdown drops its own connection
            client.shutdown(nosave=True)
    command = " ".join(["python bench/experiment_e2e.py", *sys.argv[1:]])
    out = {
        "command": command,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "world": f"{args.users:,} people, {args.items:,} items, {args.days} days (seed "
        f"{args.seed}); {args.sim_days} simulated days of {args.visits_per_day} visits",
        "versions": versions,
        "burn_in": args.burn_in,
        "experiment": definition,
        "truth": known,
        "days": days,
        "detail": detail,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "goals": [{"pass": ok, "goal": text} for ok, text in checks],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    text = markdown(out)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    print(f"report: {root / 'monitoring/reports/experiments' / NAME / 'report.html'}")
    return 0 if all(ok for ok, _ in checks) else 1


def failed(args: argparse.Namespace, seconds: dict[str, float], error: str) -> int:
    """The record of a run that stopped at a step: the error, the machine's load, FAIL."""
    command = " ".join(["python bench/experiment_e2e.py", *sys.argv[1:]])
    out = {
        "command": command,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "error": error[-1500:],
        "goals": [{"pass": False, "goal": "not measured: the run stopped at a step (error)"}],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    text = (
        "# End to end: champion vs challenger vs popularity on simulated shoppers\n\n"
        f"{out['cores']} cores; {out['at']}; load average {out['load_average']}; "
        f"`{command}`\n\nFAIL: not measured, the run stopped at a step:\n\n"
        + "\n".join(f"    {line}" for line in error[-1500:].splitlines())
        + "\n"
    )
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 1


def _printer() -> Any:
    began = time.perf_counter()

    def step(text: str) -> None:
        print(f"[{time.perf_counter() - began:6.0f} s] {text}", flush=True)

    return step


if __name__ == "__main__":
    sys.exit(main())
