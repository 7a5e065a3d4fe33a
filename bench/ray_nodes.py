"""Benchmark: the serving app on a 3-node Ray cluster, a worker node lost under load.

    bench/ray_cluster.py: `ray start --head` + 2 worker nodes on this host (1 CPU each)
    -> serving.server.start(ServingConfig(ray_address=<head>, num_replicas=2,
       max_replicas_per_node=1, proxy_location=HeadOnly)): the app deployed through a
       driver that joins the cluster
    -> replicas' node ids from Ray's actor table (serving.server.replica_processes)
    -> POST /recommend at a fixed rate (open loop); after `--before` s every process of a
       worker node hosting a replica gets SIGKILL (the machine is lost) -> Ray marks the
       node dead, Serve starts a replacement replica on the node left -> `--after` s more
       load once it is up (or `--recover-timeout` s after the loss at most)

Reported: distinct node ids of the replicas before and after, errors after the loss (by
status) and outside it, seconds until the node was marked dead, until the replacement
replica was up and until the last failed request, p50/p99 latency before the loss and after
the replacement. Goals: replicas on >= 2 nodes; the lost node hosted one; the last
`--final` s of load all answered 200; a replacement replica on a live node. The error
count is reported, not a goal: requests in flight on a lost machine fail.

Without `--models` it serves the reliability benchmarks' world (bench/served_world.py);
with `--models/--clean/--features` it serves those folders, with REDIS_URL and the Feast
variables taken from the environment (tests/serving/test_ray_nodes.py does this). Results:
bench/results/ray_nodes.{json,md} unless `--no-save`; `--out` writes the JSON elsewhere.

    .venv/bin/python bench/ray_nodes.py          # make bench-ray-nodes
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/ray_nodes.py` imports bench.*
RESULTS = ROOT / "bench" / "results"


@dataclass
class Call:
    sent: float  # seconds since the load started
    ms: float
    status: int | str  # HTTP status, "timeout" or "connection"


@dataclass
class Marks:
    """When things happened, in seconds since the load started (None: not in time)."""

    lost: float
    dead: float | None = None  # Ray marked the node dead
    replaced: float | None = None  # the replicas were back to their count, on live nodes


def recommend(url: str, user: str, timeout: float) -> Call:
    from bench.served_world import post

    t0 = time.perf_counter()
    status = post(f"{url}/recommend", {"user_id": user, "k": 10}, None, timeout)
    return Call(0.0, (time.perf_counter() - t0) * 1000, status)


class OpenLoad:
    """POST /recommend every 1/rate s from a pool of threads, whatever the answers take."""

    def __init__(self, url: str, users: list[str], rate: float, timeout: float) -> None:
        self.url, self.users, self.rate, self.timeout = url, users, rate, timeout
        self.calls: list[Call] = []
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max(8, int(rate * timeout) + 1))
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> OpenLoad:
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def _one(self, n: int, sent: float) -> None:
        call = recommend(self.url, self.users[(n * 7919) % len(self.users)], self.timeout)
        call.sent = sent
        self.calls.append(call)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            due = self.t0 + n / self.rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._pool.submit(self._one, n, due - self.t0)
            n += 1

    def stop(self) -> list[Call]:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        return sorted(self.calls, key=lambda c: c.sent)


def wait_replicas(count: int, timeout: float, live: set[str] | None = None) -> list[Any]:
    """The app's replicas once `count` are alive (on nodes in `live`, when given)."""
    from serving.server import ServeError, replica_processes

    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in replica_processes() if live is None or r.node_id in live]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise ServeError(f"{len(found)} of {count} replicas alive after {timeout:.0f}s")
        time.sleep(0.5)


def live_nodes() -> set[str]:
    import ray

    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def lose_node_under_load(cluster: Any, url: str, users: list[str], args: Any) -> dict[str, Any]:
    """Load, SIGKILL a worker node hosting a replica, wait for the replacement, load on."""
    import ray

    from serving.server import replica_processes

    before = wait_replicas(args.replicas, args.start_timeout)
    head = ray.get_runtime_context().get_node_id()  # the driver joins through the head
    victim = next((r for r in before if r.node_id != head), None)
    if victim is None:
        raise RuntimeError(f"every replica runs on the head node: {before}")
    node = cluster.node_by_id(victim.node_id)
    names = {n: cluster.node_by_id(n).name for n in {r.node_id for r in before}}
    load = OpenLoad(url, users, args.rate, args.timeout).start()
    try:
        time.sleep(args.before)
        marks = Marks(lost=load.now())
        node.kill()
        deadline = time.monotonic() + args.recover_timeout
        while marks.replaced is None and time.monotonic() < deadline:
            live = live_nodes()
            if marks.dead is None and victim.node_id not in live:
                marks.dead = load.now()
            up = [r for r in replica_processes() if r.node_id in live]
            if marks.dead is not None and len(up) >= args.replicas:
                marks.replaced = load.now()
            time.sleep(0.25)
        if marks.replaced is not None:  # else the load ran until the deadline
            time.sleep(args.after)
    finally:
        calls = load.stop()
    after = [r for r in replica_processes() if r.node_id in live_nodes()]
    names.update({n: cluster.node_by_id(n).name for n in {r.node_id for r in after}})
    return {
        "calls": calls,
        "marks": marks,
        "lost_node": node.name,
        "replicas_before": [names[r.node_id] for r in before],
        "replicas_after": [names[r.node_id] for r in after],
        "head": names.get(head, "head"),
    }


def percentiles(calls: list[Call]) -> dict[str, float | None]:
    ok = [c.ms for c in calls if c.status == 200]
    if not ok:
        return {"n": 0, "p50_ms": None, "p99_ms": None}
    return {
        "n": len(ok),
        "p50_ms": round(float(np.percentile(ok, 50)), 1),
        "p99_ms": round(float(np.percentile(ok, 99)), 1),
    }


def figures(run: dict[str, Any], final: float) -> dict[str, Any]:
    calls: list[Call] = run["calls"]
    marks: Marks = run["marks"]
    bad = [c for c in calls if c.status != 200]
    after_loss = [c for c in bad if c.sent + c.ms / 1000 >= marks.lost]
    end = max((c.sent for c in calls), default=0.0)
    last_bad = max((c.sent + c.ms / 1000 for c in after_loss), default=None)
    tail = [c for c in calls if c.sent >= end - final]
    since = marks.replaced if marks.replaced is not None else end
    return {
        "sent": len(calls),
        "statuses": dict(Counter(str(c.status) for c in calls)),
        "errors_after_loss": len(after_loss),
        "errors_after_loss_by_status": dict(Counter(str(c.status) for c in after_loss)),
        "errors_before_loss": len(bad) - len(after_loss),
        "distinct_nodes_before": len(set(run["replicas_before"])),
        "distinct_nodes_after": len(set(run["replicas_after"])),
        "replicas_before": run["replicas_before"],
        "replicas_after": run["replicas_after"],
        "lost_node": run["lost_node"],
        "node_dead_s": None if marks.dead is None else round(marks.dead - marks.lost, 2),
        "replaced_s": None if marks.replaced is None else round(marks.replaced - marks.lost, 2),
        "last_error_s": None if last_bad is None else round(last_bad - marks.lost, 2),
        "final_window_s": final,
        "final_window_sent": len(tail),
        "final_window_errors": sum(c.status != 200 for c in tail),
        "latency_before_loss": percentiles([c for c in calls if c.sent < marks.lost]),
        "latency_after_replacement": percentiles([c for c in calls if c.sent >= since]),
    }


def goals(f: dict[str, Any]) -> dict[str, bool]:
    return {
        "replicas on at least 2 distinct nodes": f["distinct_nodes_before"] >= 2,
        "the lost node hosted a replica": f["lost_node"] in f["replicas_before"],
        "a replacement replica on a live node": f["replaced_s"] is not None,
        f"the last {f['final_window_s']:g} s of load all 200": f["final_window_sent"] > 0
        and f["final_window_errors"] == 0,
    }


def save(result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ray_nodes.json").write_text(json.dumps(result, indent=2) + "\n")
    f = result["figures"]
    before, after = f["latency_before_loss"], f["latency_after_replacement"]
    lines = [
        "# A worker node of a 3-node Ray cluster lost under load",
        "",
        f"{result['machine']}; {result['when']}; `{result['command']}`",
        "",
        "The 3 Ray nodes (a head and 2 workers, `ray start`, 1 CPU each) share one 2-core "
        "host with the load generator, the Redis server and other work, so the figures "
        "are about behaviour (where replicas run, what a node loss costs, how long until "
        "traffic is whole again), not a multi-machine capacity.",
        "",
        f"{result['replicas']} replicas, at most 1 per node, behind Serve's proxy on the "
        f"head; POST /recommend at {result['rate']:g}/s (open loop, {result['timeout_s']:g} s "
        f"timeout); after {result['before_s']:g} s every process of worker node "
        f"`{f['lost_node']}` got SIGKILL; load went on {result['after_s']:g} s after the "
        "replacement replica was up.",
        "",
        "| replicas before | after | sent | statuses | errors after the loss | node dead s |"
        " replaced s | last error s | last "
        f"{f['final_window_s']:g} s errors |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {', '.join(f['replicas_before'])} | {', '.join(f['replicas_after'])} | {f['sent']}"
        f" | {f['statuses']} | {f['errors_after_loss']} {f['errors_after_loss_by_status']} |"
        f" {f['node_dead_s']} | {f['replaced_s']} | {f['last_error_s']} |"
        f" {f['final_window_errors']} of {f['final_window_sent']} |",
        "",
        "| latency of 200s | n | p50 ms | p99 ms |",
        "|---|---|---|---|",
        f"| before the loss | {before['n']} | {before['p50_ms']} | {before['p99_ms']} |",
        f"| after the replacement | {after['n']} | {after['p50_ms']} | {after['p99_ms']} |",
        "",
        "Seconds are counted from the SIGKILL. Ray marks a node dead after missed health "
        "checks; until then Serve's router still picks the lost replica, and a request it "
        "had not yet accepted is routed again to another replica (ray/serve/_private/"
        "router.py); requests already running there are lost with it, and at this rate "
        "and latency few are running at any instant, so a run may count none. Goals:",
        "",
        *(f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in result["goals"].items()),
        "",
    ]
    (RESULTS / "ray_nodes.md").write_text("\n".join(lines))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, help="bench world folder (default bench/work/...)")
    parser.add_argument("--models", type=Path, help="model versions (with --clean, --features)")
    parser.add_argument("--clean", type=Path, help="clean data folder")
    parser.add_argument("--features", type=Path, help="features folder (the users to ask for)")
    parser.add_argument("--workers", type=int, default=2, help="worker nodes besides the head")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--before", type=float, default=30.0, help="load seconds before loss")
    parser.add_argument("--after", type=float, default=60.0, help="load s after replacement")
    parser.add_argument("--final", type=float, default=5.0, help="last seconds that must be 200")
    parser.add_argument("--recover-timeout", type=float, default=180.0)
    parser.add_argument("--start-timeout", type=float, default=600.0)
    parser.add_argument("--timeout", type=float, default=5.0, help="per request")
    parser.add_argument("--out", type=Path, help="also write the result JSON here")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    from bench.served_world import require_positive

    require_positive(
        parser,
        args,
        ("workers", "replicas", "rate", "before", "after", "final", "recover_timeout",
         "start_timeout", "timeout"),
    )  # fmt: skip
    given = [args.models, args.clean, args.features]
    if any(given) and not all(given):
        parser.error("--models, --clean and --features go together")
    if args.replicas > args.workers + 1:
        parser.error(f"--replicas ({args.replicas}) must not exceed the nodes ({args.workers + 1})")
    return args


def serve_on_cluster(args: argparse.Namespace, env: dict[str, str], spill: Path) -> dict[str, Any]:
    import pandas as pd

    from bench.ray_cluster import ONE_HOST, LocalCluster
    from bench.served_world import SLOW_START
    from serving import server
    from serving.config import ServingConfig
    from tailwise.ports import free_port
    from tailwise.settings import Settings

    os.environ.update({**env, **ONE_HOST})  # the driver: Settings() and Ray's auth mode
    users = sorted(
        pd.read_parquet(args.features / "user_profile.parquet")["user_id"].astype(str).unique()
    )
    cluster = LocalCluster({**env, **SLOW_START}).start(workers=args.workers)
    try:
        config = ServingConfig(
            ray_address=cluster.address,
            proxy_location="HeadOnly",
            port=free_port(),
            models_dir=args.models,
            clean_dir=args.clean,
            spill_dir=spill,
            num_replicas=args.replicas,
            max_replicas_per_node=1,
            api_keys=["bench-ray-nodes"],
            admin_keys=["bench-ray-nodes-admin"],
        )
        url = server.start(config, Settings(), ready_timeout=args.start_timeout)
        return lose_node_under_load(cluster, url, users, args)
    finally:
        import ray

        ray.shutdown()  # the cluster goes next: deleting the app first would only wait
        cluster.stop()


def main() -> None:
    args = parse_args()
    world = None
    if args.models is None:
        from bench.served_world import DEFAULT_ROOT, open_world

        world = open_world(args.world or DEFAULT_ROOT)
        args.models, args.clean = world.models, world.clean
        args.features = world.root / "features"
        env = world.env()
    else:
        names = ("REDIS_URL", "TAILWISE_FEATURE_REPO", "TAILWISE_FEATURES_DIR")
        env = {k: v for k, v in os.environ.items() if k in names or k.startswith("TAILWISE_FEAST")}
    try:
        with tempfile.TemporaryDirectory() as spill:
            run = serve_on_cluster(args, env, Path(spill))
    finally:
        if world is not None:
            world.stop()
    f = figures(run, args.final)
    result = {
        "figures": f,
        "goals": goals(f),
        "replicas": args.replicas,
        "nodes": args.workers + 1,
        "rate": args.rate,
        "before_s": args.before,
        "after_s": args.after,
        "timeout_s": args.timeout,
        "machine": f"{os.cpu_count()} cores (shared by all nodes); Python "
        f"{platform.python_version()}",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([".venv/bin/python", "bench/ray_nodes.py", *sys.argv[1:]]),
    }
    print(json.dumps(f, indent=2))
    for name, ok in result["goals"].items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_save:
        save(result)
    sys.exit(0 if all(result["goals"].values()) else 1)


if __name__ == "__main__":
    main()
