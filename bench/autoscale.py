"""Benchmark: replica autoscaling on ongoing requests, under load and after it.

    the app with autoscaling {min_replicas 1, max_replicas M, target_ongoing_requests T}
      -> `--clients` closed-loop clients POST /recommend (each sends the next request
         when its answer comes, so about `--clients` requests are always ongoing)
      -> Ray Serve's autoscaler adds replicas until M are RUNNING (serve.status())
      -> `--after` s more load on M replicas, then the load stops
      -> the autoscaler removes replicas until min_replicas remain

Reported: seconds from the load's start to M running replicas, seconds from the load's
end back to min_replicas, requests and their statuses, latency percentiles and
throughput with one replica and with M. Goals: M replicas under load, back to
min_replicas after it, every answer a 200 (no 503, no timeout).

Serves bench/served_world.py's world by default, or the given --models/--clean/--features
(with REDIS_URL and TAILWISE_FEAST_* in the environment, as the test does). Results go to
bench/results/autoscale.{json,md} unless `--no-save`.

    .venv/bin/python bench/autoscale.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/autoscale.py` imports bench.served_world
RESULTS = ROOT / "bench" / "results"


@dataclass
class Call:
    sent: float  # seconds since the load started
    ms: float
    status: int | str
    replicas: int  # RUNNING replicas when it was sent


def running_replicas() -> int:
    from ray import serve

    from serving.server import APP_NAME

    app = serve.status().applications.get(APP_NAME)
    if app is None or "Ingress" not in app.deployments:
        return 0
    states = app.deployments["Ingress"].replica_states  # ReplicaState (a str enum) -> count
    return sum(n for state, n in states.items() if getattr(state, "value", state) == "RUNNING")


class Watch:
    """RUNNING replicas, polled every 0.5 s in a thread; `count` is the latest."""

    def __init__(self) -> None:
        self.count = running_replicas()
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.count = running_replicas()
            except Exception:  # a status call that fails under load: keep the last count
                continue
            self.samples.append((time.monotonic(), self.count))

    def first(self, since: float, test: Any) -> float | None:
        """Seconds after `since` of the first sample for which test(count) holds."""
        return next((round(t - since, 1) for t, n in self.samples if t >= since and test(n)), None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def closed_loop(url: str, users: list[str], clients: int, watch: Watch, until: Any) -> list[Call]:
    """`clients` threads, each POSTing /recommend again when its answer comes, until
    until() is true."""
    from bench.served_world import post

    calls: list[Call] = []
    t0 = time.monotonic()

    def client(worker: int) -> None:
        n = 0
        while not until():
            n += 1
            user = users[(worker * 7919 + n * 31) % len(users)]
            replicas, sent = watch.count, time.monotonic()
            status = post(f"{url}/recommend", {"user_id": user, "k": 10}, None, 10.0)
            ms = (time.monotonic() - sent) * 1000
            calls.append(Call(round(sent - t0, 3), ms, status, replicas))

    threads = [threading.Thread(target=client, args=(w,), daemon=True) for w in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(calls, key=lambda c: c.sent)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 2)


def phase(calls: list[Call]) -> dict[str, Any]:
    """Latency and throughput of the 200s among `calls`."""
    ok = [c for c in calls if c.status == 200]
    span = (calls[-1].sent - calls[0].sent) if len(calls) > 1 else 0.0
    return {
        "requests": len(calls),
        "p50_ms": percentile([c.ms for c in ok], 50),
        "p99_ms": percentile([c.ms for c in ok], 99),
        "req_per_s": round(len(ok) / span, 1) if span > 0 else None,
    }


def run(url: str, users: list[str], args: argparse.Namespace) -> dict[str, Any]:
    watch = Watch()
    try:
        start = time.monotonic()
        scaled: list[float] = []

        def until() -> bool:
            now = time.monotonic()
            if not scaled and watch.count >= args.max_replicas:
                scaled.append(now)
            if scaled:
                return now - scaled[0] >= args.after
            return now - start >= args.up_timeout

        calls = closed_loop(url, users, args.clients, watch, until)
        ended = time.monotonic()
        deadline = ended + args.down_timeout
        while watch.count > args.min_replicas and time.monotonic() < deadline:
            time.sleep(0.5)
        up = watch.first(start, lambda n: n >= args.max_replicas)
        down = watch.first(ended, lambda n: n <= args.min_replicas) if up is not None else None
    finally:
        watch.stop()
    statuses = Counter(str(c.status) for c in calls)
    return {
        "sent": len(calls),
        "statuses": dict(statuses),
        "errors": sum(v for k, v in statuses.items() if k != "200"),
        "scale_up_s": up,
        "scale_down_s": down,
        "one_replica": phase([c for c in calls if c.replicas <= 1]),
        "max_replicas": phase([c for c in calls if c.replicas >= args.max_replicas]),
        "replica_samples": len(watch.samples),
    }


def goals(f: dict[str, Any], args: argparse.Namespace) -> dict[str, bool]:
    return {
        f"{args.max_replicas} replicas running under load within {args.up_timeout:.0f} s": f[
            "scale_up_s"
        ]
        is not None,
        f"back to {args.min_replicas} replica(s) within {args.down_timeout:.0f} s of the load's"
        " end": f["scale_down_s"] is not None,
        "every answer a 200": f["errors"] == 0 and f["sent"] > 0,
    }


def save(result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "autoscale.json").write_text(json.dumps(result, indent=2) + "\n")
    f, a = result["figures"], result["autoscaling"]
    one, most = f["one_replica"], f["max_replicas"]
    lines = [
        "# Replica autoscaling on ongoing requests",
        "",
        f"{result['machine']}; {result['when']}; `{result['command']}`",
        "",
        f"autoscaling {json.dumps(a)}; {result['clients']} closed-loop clients on POST "
        f"/recommend (response cache off) until {a['max_replicas']} replicas run, then "
        f"{result['after_s']} s more; then no load until {a['min_replicas']} remain.",
        "",
        "| sent | statuses | to max replicas s | back to min s | 1 replica p50 / p99 ms, req/s"
        " | max replicas p50 / p99 ms, req/s |",
        "|---|---|---|---|---|---|",
        f"| {f['sent']} | {f['statuses']} | {f['scale_up_s']} | {f['scale_down_s']} |"
        f" {one['p50_ms']} / {one['p99_ms']}, {one['req_per_s']} |"
        f" {most['p50_ms']} / {most['p99_ms']}, {most['req_per_s']} |",
        "",
        "The replicas share this machine's cores, so more replicas add no throughput here;"
        " the run shows the autoscaler acting on the app's ongoing requests.",
        "",
        "Goals:",
        "",
        *[f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in result["goals"].items()],
    ]
    (RESULTS / "autoscale.md").write_text("\n".join(lines) + "\n")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", type=Path, help="bench world folder (default bench/work/...)")
    parser.add_argument("--models", type=Path, help="model versions (with --clean, --features)")
    parser.add_argument("--clean", type=Path, help="clean data folder")
    parser.add_argument("--features", type=Path, help="features folder (the users to ask for)")
    parser.add_argument("--clients", type=int, default=6, help="closed-loop clients")
    parser.add_argument("--min-replicas", type=int, default=1)
    parser.add_argument("--max-replicas", type=int, default=2)
    parser.add_argument("--target", type=float, default=2.0, help="target_ongoing_requests")
    parser.add_argument("--upscale-delay", type=float, default=3.0, help="s")
    parser.add_argument("--downscale-delay", type=float, default=10.0, help="s")
    parser.add_argument("--after", type=float, default=10.0, help="load s at max replicas")
    parser.add_argument("--up-timeout", type=float, default=240.0)
    parser.add_argument("--down-timeout", type=float, default=120.0)
    parser.add_argument("--out", type=Path, help="also write the result JSON here")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    from bench.served_world import require_positive

    require_positive(
        parser,
        args,
        ("clients", "min_replicas", "max_replicas", "target", "after", "up_timeout",
         "down_timeout"),
    )  # fmt: skip
    if args.max_replicas <= args.min_replicas:
        parser.error("--max-replicas must exceed --min-replicas")
    given = [args.models, args.clean, args.features]
    if any(given) and not all(given):
        parser.error("--models, --clean and --features go together")
    return args


def main() -> None:
    args = parse_args()
    import pandas as pd

    from serving import server

    autoscaling = {
        "min_replicas": args.min_replicas,
        "max_replicas": args.max_replicas,
        "target_ongoing_requests": args.target,
        "upscale_delay_s": args.upscale_delay,
        "downscale_delay_s": args.downscale_delay,
    }
    world = None
    try:
        if args.models is None:
            from bench.served_world import DEFAULT_ROOT, open_world, serve

            world = open_world(args.world or DEFAULT_ROOT)
            features = world.root / "features"
            url = serve(world, "bench-autoscale", cache_ttl_seconds=0, autoscaling=autoscaling)
        else:
            from serving.config import ServingConfig
            from tailwise.ports import free_port
            from tailwise.settings import Settings

            features = args.features
            spill = Path(tempfile.mkdtemp(prefix="autoscale-spill-"))
            config = ServingConfig(
                port=free_port(),
                models_dir=args.models,
                clean_dir=args.clean,
                spill_dir=spill,
                cache_ttl_seconds=0,
                autoscaling=autoscaling,
                api_keys=["bench-autoscale"],
                admin_keys=["bench-autoscale-admin"],
            )
            url = server.start(config, Settings(), ready_timeout=600)
        users = sorted(
            pd.read_parquet(features / "user_profile.parquet")["user_id"].astype(str).unique()
        )
        try:
            figures = run(url.rstrip("/"), users, args)
        finally:
            server.stop()
    finally:
        if world is not None:
            world.stop()
    result = {
        "figures": figures,
        "goals": goals(figures, args),
        "autoscaling": autoscaling,
        "clients": args.clients,
        "after_s": args.after,
        "machine": f"{os.cpu_count()} cores (shared by the replicas and the clients); Python "
        f"{platform.python_version()}",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([".venv/bin/python", "bench/autoscale.py", *sys.argv[1:]]),
    }
    print(json.dumps(figures, indent=2))
    for name, ok in result["goals"].items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_save:
        save(result)
    sys.exit(0 if all(result["goals"].values()) else 1)


if __name__ == "__main__":
    main()
