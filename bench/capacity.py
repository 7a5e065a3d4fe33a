"""Benchmark: the measured unit costs a capacity plan needs, and the plan they give.

Measured here, on the served data (`make demo` or `dvc repro` + `tailwise features
materialize` first), with the serving app in this process (no Ray, no HTTP socket:
httpx's ASGI transport), its Redis the configured one:

  redis per /recommend   commands and round trips the app sends to Redis per request
                         (response cache off), counted on the client side (redis-py's
                         connections), so other clients of a shared Redis do not count
  redis per event        the same for POST /events (one event per request), written under
                         a throwaway Feast project whose keys are deleted at the end
  bytes per user / item  Redis MEMORY USAGE of each sampled user's keys (Feast's user
                         hash, history hash, recent list, seen and purchased sets) and of
                         each sampled item's Feast hash

Read from committed results (each figure names its file):

  CPU per request        bench/results/serve_load_2replicas.json: the replicas', HAProxy's
                         and redis-server's cores at the highest rate held (p99 <= 50 ms,
                         0 errors) divided by that rate
  feature build          bench/results/features_build.json: events per second of the
                         largest single-process build, per core
                         (bench/results/features_build_ray.json when present: events per
                         CPU second of the Ray build, the figure the plan uses)

The plan: cores, replicas and Redis shards for a target (default 50,000 req/s, 100M
users, 10M items, 10B events a month), with every assumption stated next to the figure it
drives. Writes bench/results/capacity.{json,md}.

    .venv/bin/python bench/capacity.py
    .venv/bin/python bench/capacity.py --rps 50000 --users 100000000 --items 10000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shlex
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SECONDS_PER_MONTH = 30 * 24 * 3600
GIB = 1024**3


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300, help="/recommend requests measured")
    ap.add_argument("--events", type=int, default=200, help="POST /events requests measured")
    ap.add_argument("--sample", type=int, default=500, help="users and items sized in Redis")
    ap.add_argument("--rps", type=float, default=50_000, help="target recommendations per second")
    ap.add_argument("--users", type=float, default=100e6, help="target users")
    ap.add_argument("--items", type=float, default=10e6, help="target items")
    ap.add_argument("--events-per-month", type=float, default=10e9, help="target events a month")
    ap.add_argument("--peak", type=float, default=3.0, help="peak over mean event rate")
    ap.add_argument(
        "--utilisation",
        type=float,
        default=0.5,
        help="share of a core planned busy (headroom for the p99; see the md)",
    )
    ap.add_argument("--shard-memory-gib", type=float, default=25.0, help="data per Redis master")
    ap.add_argument("--build-hours", type=float, default=1.0, help="daily feature build window")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


@contextmanager
def redis_copy(source_url: str) -> Iterator[str]:
    """A private redis-server (own port, nothing on disk) holding a copy of the source's
    data, made by replication and then detached: the measured requests and events touch
    only the copy, and its command statistics count nothing but them."""
    import shutil
    import subprocess
    import tempfile
    import time

    import redis

    from tailwise.ports import free_port

    src = redis.Redis.from_url(source_url)
    host = src.connection_pool.connection_kwargs.get("host", "127.0.0.1")
    source_port = src.connection_pool.connection_kwargs.get("port", 6379)
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="tailwise-capacity-"))
    binary = shutil.which("redis-server") or "redis-server"
    proc = subprocess.Popen(
        [
            *(binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--dir", str(folder)),
            *("--replicaof", str(host), str(source_port)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    copy: Any = redis.Redis(port=port)  # redis-py's sync replies are typed as maybe-awaitable
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if copy.info("replication").get("master_link_status") == "up":
                    break
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the copy on port {port} did not sync from {source_url}")
            time.sleep(0.2)
        copy.replicaof("NO", "ONE")
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def command_stats(client: Any) -> dict[str, int]:
    """Calls per command (INFO commandstats), INFO itself left out."""
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if not name.startswith("cmdstat_info")
    }


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}


def measure_app(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Commands per /recommend and per event against the copy, then bytes per user/item."""
    os.environ["REDIS_URL"] = url
    import httpx
    import redis

    from serving.auth import ApiKeys
    from serving.config import ServingConfig
    from serving.lifecycle import Lifecycle
    from serving.replica import Replica
    from serving.routes import build_api
    from tailwise.features.online import OnlineFeatures
    from tailwise.settings import Settings

    os.environ.setdefault("TAILWISE_API_KEYS", "capacity-" + uuid.uuid4().hex)
    config = ServingConfig(cache_ttl_seconds=0).resolved()
    replica = Replica(config, Settings().resolved())
    app = build_api(replica, Lifecycle(replica), ApiKeys.from_config(config))
    client: Any = redis.Redis.from_url(url)  # sync replies, typed as maybe-awaitable
    rng = random.Random(args.seed)
    users = pd.read_parquet(ROOT / "data" / "clean" / "users.parquet")["user_id"].astype(str)
    users = users.tolist()
    items = [str(i) for i in replica.graph.bundle.item_ids]
    headers = {"X-API-Key": os.environ["TAILWISE_API_KEYS"].split(",")[0]}

    def body(user: str) -> dict[str, Any]:
        return {"user_id": user, "k": 10, "context": {"device": "mobile", "country": "DE"}}

    async def run() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://capacity") as http:
            for _ in range(20):  # warm-up: first calls trace and fill lazy tables
                await http.post("/recommend", json=body(rng.choice(users)), headers=headers)
            before = command_stats(client)
            codes: dict[int, int] = {}
            for _ in range(args.requests):
                r = await http.post("/recommend", json=body(rng.choice(users)), headers=headers)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
            await asyncio.sleep(0.5)  # background tasks (served log) finish
            recommend = delta(command_stats(client), before)
            start = datetime.now(UTC) - timedelta(minutes=5)
            before = command_stats(client)
            event_codes: dict[int, int] = {}
            for i in range(args.events):
                event = {
                    "event_id": f"capacity-{uuid.uuid4().hex}",
                    "user_id": rng.choice(users),
                    "item_id": rng.choice(items),
                    "event_type": "product_view",
                    "timestamp": (start + timedelta(seconds=i)).isoformat(),
                }
                r = await http.post("/events", json=event, headers=headers)
                event_codes[r.status_code] = event_codes.get(r.status_code, 0) + 1
            await asyncio.sleep(0.5)
            events = delta(command_stats(client), before)
        return {
            "recommend": {"requests": args.requests, "status": codes, "commands": recommend},
            "events": {"requests": args.events, "status": event_codes, "commands": events},
        }

    found = asyncio.run(run())
    keys, project = replica.keys, replica.keys.project
    item_feast = OnlineFeatures(client, project, "item_id", [])
    sampled_users = rng.sample(users, min(args.sample, len(users)))
    per_user = []
    for user in sampled_users:
        names: list[bytes | str] = [
            replica.graph.reader.users.key(user),
            keys.history(user),
            keys.recent(user),
            keys.seen(user),
            keys.purchased(user),
        ]
        per_user.append([client.memory_usage(n) or 0 for n in names])
    per_item = [
        client.memory_usage(item_feast.key(i)) or 0
        for i in rng.sample(items, min(args.sample, len(items)))
    ]
    user_bytes = np.array(per_user, dtype=np.float64)
    found["bytes"] = {
        "users_sampled": len(sampled_users),
        "per_user_mean": float(user_bytes.sum(axis=1).mean()),
        "per_user_by_key": dict(
            zip(
                ["feast_user", "history", "recent", "seen", "purchased"],
                user_bytes.mean(axis=0).round(1).tolist(),
                strict=True,
            )
        ),
        "users_with_feast_hash": float((user_bytes[:, 0] > 0).mean()),
        "items_sampled": len(per_item),
        "per_item_mean": float(np.mean(per_item)) if per_item else 0.0,
        "items_with_feast_hash": float(np.mean([b > 0 for b in per_item])) if per_item else 0.0,
        "used_memory": int(client.info("memory")["used_memory"]),
        "keys": int(client.dbsize()),
    }
    return found


def per_request(commands: dict[str, int], n: int) -> float:
    return sum(commands.values()) / max(n, 1)


def committed_costs() -> dict[str, Any]:
    """CPU per request from the two-replica serve-load run, build throughput per core."""
    serve = json.loads((RESULTS / "serve_load_2replicas.json").read_text())
    rates = serve["apps"]["full"]["rates"]
    held = [
        r
        for r in rates
        if r["errors"] == 0 and r["p99_ms"] <= 50 and r["achieved_rps"] >= 0.98 * r["offered_rps"]
    ]
    top = max(held, key=lambda r: r["achieved_rps"])
    cores = top["cpu"]["top_processes_cores"]
    rps = top["achieved_rps"]

    def ms(prefix: str) -> float:
        return 1000 * sum(v for k, v in cores.items() if k.startswith(prefix)) / rps

    costs: dict[str, Any] = {
        "serve_load": {
            "file": "bench/results/serve_load_2replicas.json",
            "rate_held": rps,
            "p99_ms": top["p99_ms"],
            "replica_cpu_ms_per_request": round(ms("ray::ServeReplica"), 3),
            "haproxy_cpu_ms_per_request": round(ms("haproxy"), 3),
            "redis_cpu_ms_per_request": round(ms("redis-server"), 3),
            "bench_cores": top["cpu"]["bench_cores"],
            "machine_busy_share": round(top["cpu"]["machine_busy_cores"] / 2, 2),
        }
    }
    builds = json.loads((RESULTS / "features_build.json").read_text())
    largest = max(builds, key=lambda b: _events_in(b["rows_in"]))
    events = _events_in(largest["rows_in"])
    costs["feature_build"] = {
        "file": "bench/results/features_build.json",
        "events": events,
        "seconds": largest["seconds"],
        "cores": 2,
        "events_per_second_per_core": round(events / largest["seconds"] / 2),
    }
    ray_build = RESULTS / "features_build_ray.json"
    if ray_build.exists():  # the distributed build: events per CPU second of its processes
        latest = json.loads(ray_build.read_text())[-1]
        ray_runs = [r for r in latest["runs"] if r["engine"] == "ray"]
        widest = max(ray_runs, key=lambda r: r["workers"])
        costs["feature_build_ray"] = {
            "file": "bench/results/features_build_ray.json",
            "events": latest["events_in"],
            "workers": widest["workers"],
            "events_per_cpu_second": widest["events_per_cpu_s"],
        }
    return costs


def _events_in(rows_in: Any) -> int:
    """The events read by a build (`rows_in` holds every input table's rows)."""
    return int(rows_in["events"] if isinstance(rows_in, dict) else rows_in)


def plan(measured: dict[str, Any], costs: dict[str, Any], args: argparse.Namespace) -> dict:
    """Cores, replicas, Redis shards and build workers for the target."""
    rec = measured["recommend"]
    ev = measured["events"]
    cmds_request = per_request(rec["commands"], rec["requests"])
    cmds_event = per_request(ev["commands"], ev["requests"])
    serve = costs["serve_load"]
    events_per_s = args.events_per_month / SECONDS_PER_MONTH
    peak_events = events_per_s * args.peak
    replica_cores = args.rps * serve["replica_cpu_ms_per_request"] / 1000 / args.utilisation
    proxy_cores = args.rps * serve["haproxy_cpu_ms_per_request"] / 1000 / args.utilisation
    redis_core_s = (args.rps * serve["redis_cpu_ms_per_request"] / 1000) * (
        1 + peak_events * cmds_event / max(args.rps * cmds_request, 1)
    )
    redis_masters_cpu = redis_core_s / args.utilisation
    b = measured["bytes"]
    memory = args.users * b["per_user_mean"] + args.items * b["per_item_mean"]
    masters_memory = memory / (args.shard_memory_gib * GIB)
    masters = int(np.ceil(max(redis_masters_cpu, masters_memory)))
    events_per_day = args.events_per_month / 30
    per_core = (
        costs["feature_build_ray"]["events_per_cpu_second"]
        if "feature_build_ray" in costs
        else costs["feature_build"]["events_per_second_per_core"]
    )
    build_cores = events_per_day / (per_core * 3600 * args.build_hours)
    return {
        "target": {
            "rps": args.rps,
            "users": args.users,
            "items": args.items,
            "events_per_month": args.events_per_month,
        },
        "assumptions": {
            "utilisation": args.utilisation,
            "event_peak_over_mean": args.peak,
            "shard_memory_gib": args.shard_memory_gib,
            "build_hours": args.build_hours,
        },
        "redis_commands_per_recommend": round(cmds_request, 2),
        "redis_commands_per_event": round(cmds_event, 2),
        "redis_ops_per_second": round(args.rps * cmds_request + peak_events * cmds_event),
        "events_per_second_mean": round(events_per_s),
        "replica_cores": int(np.ceil(replica_cores)),
        "proxy_cores": int(np.ceil(proxy_cores)),
        "redis_memory_gib": round(memory / GIB, 1),
        "redis_masters_for_cpu": round(redis_masters_cpu, 1),
        "redis_masters_for_memory": round(masters_memory, 1),
        "redis_masters": masters,
        "redis_nodes_with_one_replica_each": 2 * masters,
        "feature_build_cores": int(np.ceil(build_cores)),
    }


def markdown(result: dict[str, Any]) -> str:
    m, c, p = result["measured"], result["committed"], result["plan"]
    s, fb = c["serve_load"], c["feature_build"]
    rec = m["recommend"]
    ev = m["events"]
    b = m["bytes"]

    def top(commands: dict[str, int], n: int) -> str:
        ranked = sorted(commands.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{k} {v / n:.2f}" for k, v in ranked)

    t = p["target"]
    lines = [
        "# Capacity: measured unit costs and the plan they give",
        "",
        f"`{result['command']}` ({result['date']}, {result['machine']})",
        "",
        "## Unit costs",
        "",
        "| figure | value | how |",
        "|---|---:|---|",
        f"| Redis commands per /recommend (cache off) | {p['redis_commands_per_recommend']} | "
        f"server-side counts over {rec['requests']} requests on a private copy: "
        f"{top(rec['commands'], rec['requests'])} |",
        f"| Redis commands per event (POST /events, 1 event) | {p['redis_commands_per_event']} | "
        f"{ev['requests']} requests: {top(ev['commands'], ev['requests'])} |",
        f"| Redis bytes per user | {b['per_user_mean']:,.0f} | MEMORY USAGE, {b['users_sampled']} "
        f"users: {', '.join(f'{k} {v:,.0f}' for k, v in b['per_user_by_key'].items())} |",
        f"| Redis bytes per item | {b['per_item_mean']:,.0f} | MEMORY USAGE of the Feast item "
        f"hash, {b['items_sampled']} items |",
        f"| replica CPU per /recommend | {s['replica_cpu_ms_per_request']} ms | {s['file']}: "
        f"{s['rate_held']:.0f} req/s held (p99 {s['p99_ms']} ms) |",
        f"| HAProxy CPU per /recommend | {s['haproxy_cpu_ms_per_request']} ms | same run |",
        f"| redis-server CPU per /recommend | {s['redis_cpu_ms_per_request']} ms | same run |",
        f"| feature build, events per second per core | {fb['events_per_second_per_core']:,} | "
        f"{fb['file']}: {fb['events']:,} events in {fb['seconds']} s on {fb['cores']} cores |",
        *_ray_row(c),
        "",
        f"## Plan for {t['rps']:,.0f} req/s, {t['users']:,.0f} users, {t['items']:,.0f} items, "
        f"{t['events_per_month']:,.0f} events a month",
        "",
        f"Cores are planned {p['assumptions']['utilisation']:.0%} busy: the two-replica run held "
        f"its p99 under 50 ms at {s['rate_held']:.0f} req/s with the machine "
        f"{s['machine_busy_share']:.0%} busy and lost it at the next rate, so tails grow fast "
        "past about half. Event peaks are planned at "
        f"{p['assumptions']['event_peak_over_mean']}x the monthly mean.",
        "",
        "| what | figure |",
        "|---|---:|",
        f"| replica cores (Ray Serve replicas, one core each) | {p['replica_cores']:,} |",
        f"| proxy cores (HAProxy) | {p['proxy_cores']:,} |",
        f"| Redis operations per second (recommend + peak events) | {p['redis_ops_per_second']:,} |",
        f"| Redis memory (one copy) | {p['redis_memory_gib']:,} GiB |",
        f"| Redis masters for CPU / for memory ({p['assumptions']['shard_memory_gib']:.0f} GiB "
        f"each) | {p['redis_masters_for_cpu']} / {p['redis_masters_for_memory']} |",
        f"| Redis Cluster: masters, nodes with one replica each | {p['redis_masters']}, "
        f"{p['redis_nodes_with_one_replica_each']} |",
        f"| feature build cores for a day of events in {p['assumptions']['build_hours']:.0f} h "
        f"| {p['feature_build_cores']:,} |",
        "",
        "Every figure scales linearly from the unit costs above; the unit costs come from "
        "a 2-core machine shared with the load generator, so they are upper bounds for "
        "dedicated cores.",
    ]
    return "\n".join(lines) + "\n"


def _ray_row(committed: dict[str, Any]) -> list[str]:
    ray = committed.get("feature_build_ray")
    if ray is None:
        return []
    return [
        f"| feature build on Ray, events per CPU second (the plan's build figure) | "
        f"{ray['events_per_cpu_second']:,} | {ray['file']}: {ray['events']:,} events, "
        f"{ray['workers']} workers, CPU seconds of every process of the build |"
    ]


def main() -> int:
    args = parse_args()
    from tailwise.settings import Settings

    with redis_copy(Settings().redis_url) as url:
        measured = measure_app(url, args)
    costs = committed_costs()
    result = {
        "command": shlex.join([".venv/bin/python", "bench/capacity.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "measured": measured,
        "committed": costs,
        "plan": plan(measured, costs, args),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "capacity.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (RESULTS / "capacity.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
