"""Benchmark: graceful overload of the serving app (serving/overload.py).

First finds the highest rate the app sustains, on the same app: an open-loop ramp from
`--ramp-start` by `--ramp-factor` (`--ramp-step` s a step) up to the first rate at which
not every request answered 200 within SUSTAINED_P99_MS at p99, twice in a row (the bound
bench/serve_load.py uses). Then offers POST /recommend open loop (request i at t0 + i/rate,
latency from that scheduled time, so queueing shows) at `--rate`, by default twice that
sustained rate, for `--duration` s, then drops to `--normal-rate` for `--recovery` s
without a gap. Reported: the ramp; during overload, accepted (2xx) latency percentiles,
503 latency percentiles and Retry-After, counts by status, timeouts; the shed count from
/metrics; after the drop, the seconds until every request is a 2xx again within
`--normal-ms`.

Goals (issue 22): accepted p99 < 100 ms, 503 p99 < 50 ms, 0 responses 500, back to
normal within 5 s of the load dropping. The whole sequence runs `--repeat` times on the
same app (default 3, `--pause` s apart): the latency and recovery goals are judged on the
median over the runs (this machine's tail moves by tens of ms from run to run), the 500s
and timeouts on every run.

Without `--url` it starts the app itself (serving.server.start: Ray Serve behind HAProxy,
response cache off, models from `--models-dir`, which `make demo` builds); with `--world`
the app serves bench/served_world.py's world instead (its own data, model and Redis, no
demo needed); with `--url` it measures a running server (TAILWISE_API_KEY for a key). Results go to
bench/results/overload.{json,md} unless `--no-save`.

    .venv/bin/python bench/overload.py                      # make demo first
    .venv/bin/python bench/overload.py --duration 3 --recovery 3 --no-save   # smoke
    .venv/bin/python bench/overload.py --world     # without make demo
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shlex
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/overload.py --world` imports bench.served_world
RESULTS = ROOT / "bench" / "results"
from bench.serve_load import SUSTAINED_P99_MS  # noqa: E402 (after the sys.path line above)

GOALS = {"accepted_p99_ms": 100.0, "shed_p99_ms": 50.0, "errors_500": 0, "recovery_s": 5.0}


def step_sustained(records: list[dict]) -> tuple[bool, int, float | None]:
    """Whether one ramp step was sustained (every request answered 200, p99 from the
    scheduled send time within bench/serve_load.py's SUSTAINED_P99_MS), its 200s, their p99."""
    ok = [r["ms"] for r in records if r["status"] == 200]
    p99 = percentile(ok, 99)
    sustained = bool(records) and len(ok) == len(records) and (p99 or 1e9) <= SUSTAINED_P99_MS
    return sustained, len(ok), p99


def find_sustained(
    url: str, args: argparse.Namespace, run: Any
) -> tuple[float | None, list[dict[str, Any]]]:
    """Ramp the open-loop rate by `--ramp-factor` from `--ramp-start`, `--ramp-step` s a
    step: the highest rate sustained. A step that fails is tried once more (this machine
    stalls now and then); the ramp stops at the first rate that fails twice."""
    rate, best, steps = args.ramp_start, None, []
    while rate <= args.ramp_max:
        for attempt in (1, 2):
            records = run(offer(url, [(rate, args.ramp_step)], args.timeout))
            sustained, ok, p99 = step_sustained(records)
            steps.append(
                {
                    "offered_rps": round(rate, 1),
                    "attempt": attempt,
                    "sent": len(records),
                    "ok": ok,
                    "p99_ms": p99,
                    "sustained": sustained,
                }
            )
            print(
                f"ramp {rate:.0f} req/s (try {attempt}): {ok} of "
                f"{len(records)} answered 200, p99 {p99} ms -> "
                f"{'sustained' if sustained else 'not sustained'}",
                flush=True,
            )
            if sustained:
                break
            time.sleep(args.pause)
        if not sustained:
            break
        best = round(rate, 1)
        rate *= args.ramp_factor
        time.sleep(2)
    return best, steps


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 2)


def bodies(n: int) -> list[bytes]:
    """Distinct users (the per-user response cache cannot answer for the app)."""
    return [json.dumps({"user_id": f"u{i % 4000:07d}", "k": 10}).encode() for i in range(n)]


async def offer(url: str, phases: list[tuple[float, float]], timeout: float) -> list[dict]:
    """Open loop over consecutive (rate, seconds) phases; one record per request."""
    import aiohttp

    headers = {"Content-Type": "application/json"}
    if key := os.environ.get("TAILWISE_API_KEY"):
        headers["X-API-Key"] = key
    schedule: list[float] = []
    start = 0.0
    for rate, seconds in phases:
        schedule += [start + i / rate for i in range(int(rate * seconds))]
        start += seconds
    payloads, records = bodies(len(schedule)), []
    connector = aiohttp.TCPConnector(limit=1024, keepalive_timeout=30)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def one(i: int, due: float) -> None:
            sent = time.perf_counter()
            record: dict[str, Any] = {"at": due - t0, "status": None, "retry_after": None}
            try:
                async with session.post(url, data=payloads[i], headers=headers) as response:
                    await response.read()
                    record["status"] = response.status
                    record["retry_after"] = response.headers.get("Retry-After")
            except TimeoutError:
                record["status"] = "timeout"
            except (aiohttp.ClientError, OSError):
                record["status"] = "connection"
            record["ms"] = (time.perf_counter() - min(due, sent)) * 1000
            records.append(record)

        tasks = []
        t0 = time.perf_counter() + 0.05
        for i, offset in enumerate(schedule):
            due = t0 + offset
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.wait(tasks, timeout=timeout + 5)
    return records


def metric(base: str, name: str) -> float:
    """The sum of `name`'s samples over every label set."""
    from bench.served_world import metric_samples

    return sum(s.value for s in metric_samples(base) if s.name == name)


def recovery_seconds(records: list[dict], drop_at: float, normal_ms: float) -> float | None:
    """Seconds after the drop from which every request is a 2xx within normal_ms."""
    after = sorted((r for r in records if r["at"] >= drop_at), key=lambda r: r["at"])
    bad = [r["at"] for r in after if r["status"] != 200 or r["ms"] > normal_ms]
    if not after:
        return None
    if not bad:
        return 0.0
    if bad[-1] == after[-1]["at"]:
        return None  # never recovered within the window
    return round(bad[-1] - drop_at, 2)


def after_drop(records: list[dict], drop_at: float, normal_ms: float) -> dict[str, Any]:
    """What the requests after the drop got: counts by status, how many 2xx were slower
    than normal_ms, and when (seconds after the drop) the bad ones were sent."""
    after = [r for r in records if r["at"] >= drop_at]
    bad = sorted(r["at"] - drop_at for r in after if r["status"] != 200 or r["ms"] > normal_ms)
    return {
        "sent": len(after),
        "statuses": dict(Counter(str(r["status"]) for r in after)),
        "slow": sum(r["status"] == 200 and r["ms"] > normal_ms for r in after),
        "bad_at_s": [round(t, 2) for t in bad[:20]]
        + ([round(bad[-1], 2)] if len(bad) > 20 else []),
    }


def summarise(records: list[dict], args: argparse.Namespace, shed: float) -> dict[str, Any]:
    during = [r for r in records if r["at"] < args.duration]
    ok = [r["ms"] for r in during if r["status"] == 200]
    refused = [r for r in during if r["status"] == 503]
    statuses = Counter(str(r["status"]) for r in records)
    figures = {
        "offered_rps": args.rate,
        "sent": len(during),
        "accepted": len(ok),
        "accepted_p50_ms": percentile(ok, 50),
        "accepted_p99_ms": percentile(ok, 99),
        "shed": len(refused),
        "shed_p50_ms": percentile([r["ms"] for r in refused], 50),
        "shed_p99_ms": percentile([r["ms"] for r in refused], 99),
        "shed_max_ms": percentile([r["ms"] for r in refused], 100),
        "retry_after": sorted({str(r["retry_after"]) for r in refused}),
        "statuses": dict(statuses),
        "errors_500": sum(v for k, v in statuses.items() if k.startswith("5") and k != "503"),
        "shed_in_metrics": shed,
        "recovery_s": recovery_seconds(records, args.duration, args.normal_ms),
        "after_drop": after_drop(records, args.duration, args.normal_ms),
    }
    return {"figures": figures, "goals": judge(figures, statuses)}


MEDIAN_FIGURES = (
    "accepted_p50_ms",
    "accepted_p99_ms",
    "shed_p50_ms",
    "shed_p99_ms",
    "shed_max_ms",
    "recovery_s",
)


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs' figures as one: counts summed, MEDIAN_FIGURES the median over the
    runs (a run that never recovered counts as the longest), the goals judged on that."""
    import statistics

    figures: dict[str, Any] = {"offered_rps": runs[0]["offered_rps"], "runs": len(runs)}
    for name in ("sent", "accepted", "shed", "errors_500", "shed_in_metrics"):
        figures[name] = sum(r[name] for r in runs)
    statuses: Counter[str] = Counter()
    for r in runs:
        statuses.update(r["statuses"])
    figures["statuses"] = dict(statuses)
    figures["retry_after"] = sorted({v for r in runs for v in r["retry_after"]})
    for name in MEDIAN_FIGURES:
        values = [r[name] for r in runs]
        if name == "recovery_s":
            values = [math.inf if v is None else v for v in values]
        known = [v for v in values if v is not None]
        middle = statistics.median(known) if known else None
        figures[name] = None if middle is None or math.isinf(middle) else round(middle, 2)
    return {"figures": figures, "goals": judge(figures, statuses)}


def judge(figures: dict[str, Any], statuses: Counter[str]) -> dict[str, bool]:
    return {
        "accepted_p99_ms": (figures["accepted_p99_ms"] or 1e9) < GOALS["accepted_p99_ms"],
        "shed_p99_ms": figures["shed_p99_ms"] is None
        or figures["shed_p99_ms"] < GOALS["shed_p99_ms"],
        "errors_500": figures["errors_500"] == 0
        and statuses.get("timeout", 0) == statuses.get("connection", 0) == 0,
        "recovery_s": figures["recovery_s"] is not None
        and figures["recovery_s"] <= GOALS["recovery_s"],
    }


def start_app(args: argparse.Namespace, world: Any = None) -> str:
    from serving import server
    from serving.config import ServingConfig
    from tailwise.ports import free_port
    from tailwise.settings import Settings

    key = os.environ.setdefault("TAILWISE_API_KEY", f"bench-{os.getpid()}")
    fields: dict[str, Any] = {"cache_ttl_seconds": 0}
    for item in args.config:
        name, _, value = item.partition("=")
        fields[name] = json.loads(value) if value[:1] in "0123456789-[{tf" else value
    if world is not None:
        from bench.served_world import serve

        return serve(world, key, **fields)
    fields.update(port=free_port(), models_dir=args.models_dir, api_keys=[key])
    return server.start(ServingConfig.model_validate(fields), Settings())


def save(result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "overload.json").write_text(json.dumps(result, indent=2) + "\n")
    f, goals = result["figures"], result["goals"]
    lines = [
        "# Overload: POST /recommend at twice the sustained rate, then back to normal",
        "",
        f"{result['machine']}; {result['when']}; `{result['command']}`",
        "",
        *_ramp_lines(result),
        f"Open loop: {f['offered_rps']} req/s for {result['duration_s']} s, then "
        f"{result['normal_rps']} req/s for {result['recovery_window_s']} s; latency from the "
        f"scheduled send time. {f['runs']} runs on the same app, {result['pause_s']} s "
        "apart; the last row is the runs' counts summed and their latency and recovery "
        "figures' median (a run that never recovered counts as the longest).",
        "",
        "| run | sent | accepted | p50 ms | p99 ms | 503 | 503 p50 ms | 503 p99 ms |"
        " 503 max ms | statuses | shed (/metrics) | back to normal s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *(_row(str(n), run) for n, run in enumerate(result["each_run"], start=1)),
        _row("all (median)", f),
        "",
        "Goals (latency and recovery on the median, 500s and timeouts on every run):",
        "",
        *(
            f"- {'PASS' if ok else 'FAIL'}: {name} (goal {GOALS[name]})"
            for name, ok in goals.items()
        ),
        "",
    ]
    (RESULTS / "overload.md").write_text("\n".join(lines))


def _ramp_lines(result: dict[str, Any]) -> list[str]:
    """The ramp that found the sustained rate, as a table (nothing when --rate was given)."""
    if not result["ramp"]:
        return [f"Rate given with --rate (no ramp): {result['figures']['offered_rps']} req/s.", ""]
    return [
        f"Ramp on the same app (sustained: every request 200, p99 <= {SUSTAINED_P99_MS:g} ms "
        "from the scheduled send time; a failed step is tried once more):",
        "",
        "| req/s | try | sent | 200 | p99 ms | sustained |",
        "|---|---|---|---|---|---|",
        *(
            f"| {s['offered_rps']} | {s['attempt']} | {s['sent']} | {s['ok']} | {s['p99_ms']} |"
            f" {'yes' if s['sustained'] else 'no'} |"
            for s in result["ramp"]
        ),
        "",
        f"Highest rate sustained: {result['sustained_rps']} req/s; overload at twice that.",
        "",
    ]


def _row(name: str, f: dict[str, Any]) -> str:
    back = "not within the window" if f["recovery_s"] is None else f["recovery_s"]
    return (
        f"| {name} | {f['sent']} | {f['accepted']} | {f['accepted_p50_ms']} |"
        f" {f['accepted_p99_ms']} | {f['shed']} | {f['shed_p50_ms']} | {f['shed_p99_ms']} |"
        f" {f['shed_max_ms']} | {f['statuses']} | {f['shed_in_metrics']} | {back} |"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server (default: start the app)")
    parser.add_argument(
        "--rate", type=float, help="overload rate (default: 2x the rate the ramp finds sustained)"
    )
    parser.add_argument("--ramp-start", type=float, default=50.0, help="first ramp rate")
    parser.add_argument("--ramp-factor", type=float, default=1.25, help="ramp step factor")
    parser.add_argument("--ramp-step", type=float, default=15.0, help="seconds per ramp step")
    parser.add_argument("--ramp-max", type=float, default=2000.0, help="highest ramp rate")
    parser.add_argument("--duration", type=float, default=30.0, help="overload seconds")
    parser.add_argument("--normal-rate", type=float, default=50.0)
    parser.add_argument("--recovery", type=float, default=10.0, help="seconds after the drop")
    parser.add_argument("--normal-ms", type=float, default=50.0, help="a normal answer's bound")
    parser.add_argument("--timeout", type=float, default=5.0, help="per request")
    parser.add_argument("--models-dir", default=str(ROOT / "data" / "models"))
    parser.add_argument(
        "--world",
        nargs="?",
        const="bench/work/served-world",
        type=Path,
        help="serve bench/served_world.py's world (folder; default bench/work/served-world)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs; goals on the median")
    parser.add_argument("--pause", type=float, default=10.0, help="seconds between runs")
    parser.add_argument("--config", action="append", default=[], help="ServingConfig k=v")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    from bench.served_world import require_positive

    require_positive(
        parser,
        args,
        ("duration", "normal_rate", "recovery", "timeout", "repeat", "ramp_start", "ramp_step"),
    )
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be positive")
    if args.ramp_factor <= 1:
        parser.error("--ramp-factor must be above 1")
    if args.ramp_max < args.ramp_start:
        parser.error("--ramp-max must be at least --ramp-start")
    return args


def main() -> None:
    args = parse_args()
    own = args.url is None
    world = None
    if own and args.world is not None:
        from bench.served_world import open_world

        world = open_world(ROOT / args.world)
    try:
        base = (args.url or start_app(args, world)).rstrip("/")
    except BaseException:
        if world is not None:
            world.stop()
        raise
    runs: list[dict[str, Any]] = []
    ramp: list[dict[str, Any]] = []
    sustained = None
    try:
        import uvloop

        loop_run: Any = uvloop.run
    except ImportError:
        loop_run = asyncio.run
    try:
        if args.rate is None:
            sustained, ramp = find_sustained(f"{base}/recommend", args, loop_run)
            if sustained is None:
                raise SystemExit(f"the app sustained not even --ramp-start {args.ramp_start}")
            args.rate = 2 * sustained
            print(f"highest rate sustained: {sustained} req/s; overload at {args.rate} req/s")
            time.sleep(args.pause)
        phases = [(args.rate, args.duration), (args.normal_rate, args.recovery)]
        for run in range(args.repeat):
            if run:
                time.sleep(args.pause)
            before = metric(base, "tailwise_shed_requests_total")
            records = loop_run(offer(f"{base}/recommend", phases, args.timeout))
            shed = metric(base, "tailwise_shed_requests_total") - before
            runs.append(summarise(records, args, shed))
            f = runs[-1]["figures"]
            print(
                f"run {run + 1} of {args.repeat}: accepted p99 {f['accepted_p99_ms']} ms, "
                f"503 p99 {f['shed_p99_ms']} ms, {f['shed']} 503s, 500s {f['errors_500']}, "
                f"back to normal {f['recovery_s']} s",
                flush=True,
            )
    finally:
        if own:
            from serving import server

            server.stop()
        if world is not None:
            world.stop()
    result = {
        **combine([r["figures"] for r in runs]),
        "each_run": [{**r["figures"], "goals": r["goals"]} for r in runs],
        "sustained_rps": sustained,
        "ramp": ramp,
        "duration_s": args.duration,
        "normal_rps": args.normal_rate,
        "recovery_window_s": args.recovery,
        "pause_s": args.pause,
        "machine": f"{os.cpu_count()} cores; Python {platform.python_version()}",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([".venv/bin/python", "bench/overload.py", *sys.argv[1:]]),
    }
    print(json.dumps(result["figures"], indent=2))
    for name, ok in result["goals"].items():
        print(f"{'PASS' if ok else 'FAIL'}: {name} (goal {GOALS[name]})")
    if not args.no_save:
        save(result)
    sys.exit(0 if all(result["goals"].values()) else 1)


if __name__ == "__main__":
    main()
