"""Benchmark: the serving app under open-loop load, with Feast's feature server for scale.

Start Ray once, serve the app (`--apps full`; add `noop` for a no-op app of the same
topology under /noop, the framework's floor) on 127.0.0.1:PORT behind HAProxy (Ray
Serve's fast path) or the default Python proxy (`--no-haproxy`), wait for GET /healthz
(and GET /readyz for the full app), then offer POST /recommend at fixed arrival rates
(`--rates`, `--duration` s per app each after `--warmup` s not counted). With both apps,
each rate runs in `--rounds` pairs of windows that alternate the apps (the same request
bodies for both in a round), so drift on this shared machine falls on both alike. The
highest offered rate held with p99 <= 50 ms, no error and the rate achieved is reported.
After Ray stops, `feast serve` answers the same ranking feature read that one /recommend
does (bench/feast_server.py), one request at a time, for scale. Open loop:
request i is sent at t0 + i/rate whatever happened to earlier ones, and its latency runs
from that scheduled time (or from the actual send if the timer fired early), so queueing
shows up instead of being hidden by a slower sender (no coordinated omission). Every
request has a `--timeout`; each rate ends at most `--drain` s after its last send.
Latency percentiles are over 2xx responses; non-2xx, timeouts and connection errors are
counted separately. For the full app, `--freshness` trials time an event's 2xx to the
first /recommend that reflects it (the purchased item is gone from the list).

The load generator is aiohttp on uvloop in its own process (keep-alive pool, bodies
serialised before the clock starts), so its CPU shows up as its own figure and a
`--client-check` run against a raw in-process HTTP server gives the apparatus floor.
Results: bench/results/serve_load.{json,md} (written by default only when the full app ran).

    .venv/bin/python bench/serve_load.py --config cache_ttl_seconds=0   # make bench-serve
    .venv/bin/python bench/serve_load.py --apps noop,full --duration 10 --rates 25,100,200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tailwise.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
USERS = ROOT / "data" / "features" / "user_profile.parquet"
DEVICES = ["mobile", "desktop", "tablet"]
COUNTRIES = ["DE", "FR", "GB", "NL", "US", "ES"]
UNKNOWN_SHARE = 0.10
K = 10

# --------------------------------------------------------------------------- workload


def known_users() -> list[str]:
    """User ids the app knows (the feature table), or synthetic ones when it is absent."""
    if USERS.exists():
        import pandas as pd

        ids = pd.read_parquet(USERS, columns=["user_id"])["user_id"].astype(str).unique()
        return sorted(ids)
    return [f"u{n:07d}" for n in range(1000)]


def recommend_bodies(users: list[str], n: int, seed: int) -> list[bytes]:
    """n serialised RecommendRequest bodies: ~10% unknown users, k=10, sampled context."""
    import numpy as np
    import orjson

    rng = np.random.default_rng(seed)
    pick = rng.integers(len(users), size=n)
    unknown = rng.random(n) < UNKNOWN_SHARE
    dev, cty = rng.integers(len(DEVICES), size=n), rng.integers(len(COUNTRIES), size=n)
    return [
        orjson.dumps(
            {
                "user_id": f"bench-unknown-{seed}-{i}" if unknown[i] else users[pick[i]],
                "k": K,
                "context": {"device": DEVICES[dev[i]], "country": COUNTRIES[cty[i]]},
            }
        )
        for i in range(n)
    ]


def content_bodies(users: list[str], n: int, seed: int, slot: str) -> list[bytes]:
    """n serialised ContentRequest bodies for `slot`: the users and contexts /recommend's
    bodies have (the slot sets how many items)."""
    import orjson

    out = []
    for body in recommend_bodies(users, n, seed):
        fields = orjson.loads(body)
        del fields["k"]
        out.append(orjson.dumps({**fields, "slot": slot}))
    return out


def request_bodies(args: argparse.Namespace, users: list[str], n: int, seed: int) -> list[bytes]:
    """The bodies of the route under test (`--path`)."""
    if args.path == "content":
        return content_bodies(users, n, seed, args.slot)
    return recommend_bodies(users, n, seed)


# ------------------------------------------------ load generator (runs in its own process)


def client_headers() -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if key := os.environ.get("TAILWISE_API_KEY"):
        headers["X-API-Key"] = key
    return headers


async def open_loop(
    session: Any,
    url: str,
    bodies: list[bytes],
    rate: float,
    duration: float,
    drain: float,
    report: Callable[[int, int, int], None] | None = None,
) -> dict[str, Any]:
    """Send len(bodies) POSTs at t0 + i/rate; latency from the scheduled time."""
    import aiohttp

    n, headers = int(rate * duration), client_headers()
    ok_ms: list[float] = []
    lag_ms: list[float] = []
    errors: Counter[str] = Counter()
    statuses: Counter[int] = Counter()

    async def one(i: int, sched: float) -> None:
        sent = time.perf_counter()
        lag_ms.append((sent - sched) * 1000)
        try:
            async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as r:
                await r.read()
                status = r.status
        except TimeoutError:
            errors["timeout"] += 1
            return
        except (aiohttp.ClientConnectionError, OSError):
            errors["connection"] += 1
            return
        except aiohttp.ClientError:
            errors["other"] += 1
            return
        done = time.perf_counter()
        if 200 <= status < 300:
            ok_ms.append((done - min(sched, sent)) * 1000)
        else:
            errors["status"] += 1
            statuses[status] += 1

    tasks: set[asyncio.Task[None]] = set()
    cpu0, t0 = time.process_time(), time.perf_counter() + 0.02
    next_report = t0
    for i in range(n):
        sched = t0 + i / rate
        if (delay := sched - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i, sched))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if report and sched >= next_report:
            report(i + 1, i + 1 - len(tasks), sum(errors.values()))
            next_report = sched + 0.25
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=drain)
        for task in pending:
            task.cancel()
        if pending:
            errors["unfinished"] += len(pending)
    end = time.perf_counter()
    if report:
        report(n, n, sum(errors.values()))
    return {
        "offered_rps": rate,
        "sent": n,
        "seconds": end - t0,
        "ok_ms": ok_ms,
        "lag_ms": lag_ms,
        "errors": dict(errors),
        "statuses": {str(k): v for k, v in statuses.items()},
        "client_cpu_s": time.process_time() - cpu0,
    }


async def run_load(cmd: dict[str, Any], conn: Connection) -> dict[str, Any]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=cmd["connections"], keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=cmd["timeout"])
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, skip_auto_headers=["User-Agent"]
    ) as session:
        if cmd["warmup"] > 0:
            await open_loop(session, cmd["url"], cmd["bodies"], cmd["rate"], cmd["warmup"], 5)
        conn.send(("measuring", None))
        return await open_loop(
            session,
            cmd["url"],
            cmd["bodies"],
            cmd["rate"],
            cmd["duration"],
            cmd["drain"],
            lambda sent, done, err: conn.send(("progress", (sent, done, err))),
        )


def generator_worker(conn: Connection, nice: int) -> None:
    """Child process: run the commands the parent sends ('load', 'freshness', 'stop')."""
    import uvloop

    # Send on time even when other work competes for the 2 cores: the generator uses a few
    # % of a core, but a late send counts as server latency in an open loop.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    conn.send(("ready", os.getpriority(os.PRIO_PROCESS, 0)))

    while True:
        cmd = conn.recv()
        if cmd["cmd"] == "stop":
            return
        job = run_load if cmd["cmd"] == "load" else run_freshness
        try:
            conn.send(("result", uvloop.run(job(cmd, conn))))
        except Exception as exc:  # report to the parent, keep serving commands
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


async def run_freshness(cmd: dict[str, Any], conn: Connection) -> dict[str, Any]:
    """Purchase the top item, then time until /recommend no longer returns it."""
    import aiohttp
    import orjson

    base, headers, window = cmd["base"], client_headers(), 1.0
    fresh_ms: list[float] = []
    failures: Counter[str] = Counter()
    attempts: list[int] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:

        async def recommend(body: bytes) -> list[str] | None:
            async with session.post(f"{base}/recommend", data=body, headers=headers) as r:
                payload = await r.read()
                ok = r.status == 200
            return [i["item_id"] for i in orjson.loads(payload)["items"]] if ok else None

        async def trial(t: int, user: str) -> str | None:
            """One purchase; None when it was reflected, else why not."""
            body = orjson.dumps({"user_id": user, "k": K, "context": {"device": "mobile"}})
            items = await recommend(body)
            if not items:
                return "no_recommendation"
            event = {
                "user_id": user,
                "item_id": items[0],
                "event_type": "purchase",
                "timestamp": datetime.now(UTC).isoformat(),
                "event_id": f"bench-fresh-{cmd['run_id']}-{t}",
            }
            async with session.post(
                f"{base}/events", data=orjson.dumps(event), headers=headers
            ) as r:
                await r.read()
                if not 200 <= r.status < 300:
                    return f"event_http_{r.status}"
            acked = time.perf_counter()
            for attempt in range(1, cmd["retries"] + 1):
                after = await recommend(body)
                if after is not None and items[0] not in after:
                    fresh_ms.append((time.perf_counter() - acked) * 1000)
                    attempts.append(attempt)
                    return None
                if time.perf_counter() - acked > window:
                    break
                await asyncio.sleep(0.002)  # back to back: the resolution is one request
            return "never_reflected"

        for t, user in enumerate(cmd["users"]):
            try:
                failure = await trial(t, user)
            except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as exc:
                failure = f"error_{type(exc).__name__}"
            if failure:
                failures[failure] += 1
            conn.send(("progress", (t + 1, t + 1, sum(failures.values()))))
    return {"fresh_ms": fresh_ms, "attempts": attempts, "failures": dict(failures)}


# ---------------------------------------- client floor: the same client, a raw HTTP server


def canned_server(port: int, body: bytes) -> None:
    """Child process: the cheapest HTTP/1.1 keep-alive server, one canned 200 per request."""
    import uvloop

    response = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    length = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)

    class Canned(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport, self.buf = transport, b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while (head := self.buf.find(b"\r\n\r\n")) >= 0:
                m = length.search(self.buf, 0, head)
                end = head + 4 + (int(m.group(1)) if m else 0)
                if len(self.buf) < end:
                    return
                self.buf = self.buf[end:]
                self.transport.write(response)

    async def serve_forever() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Canned, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(serve_forever())


# ------------------------------------------------------------------------------ figures


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    ok = np.asarray(raw["ok_ms"], dtype=float)
    lag = np.clip(np.asarray(raw["lag_ms"], dtype=float), 0, None)
    q = [round(float(v), 2) for v in np.percentile(ok, [50, 95, 99])] if ok.size else [None] * 3
    errors = dict(raw["errors"])
    if raw["statuses"]:
        errors["by_status"] = raw["statuses"]
    total = sum(raw["errors"].values())
    return {
        "offered_rps": raw["offered_rps"],
        "achieved_rps": round(ok.size / max(raw["seconds"], 1e-9), 1),
        "sent": raw["sent"],
        "ok": int(ok.size),
        "p50_ms": q[0],  # None: not one 2xx
        "p95_ms": q[1],
        "p99_ms": q[2],
        "max_ms": round(float(ok.max()), 2) if ok.size else None,
        "mean_ms": round(float(ok.mean()), 2) if ok.size else None,
        "errors": total,
        "error_kinds": errors,
        "client": {
            "cpu_ms_per_request": round(raw["client_cpu_s"] * 1000 / max(raw["sent"], 1), 3),
            "cpu_share_of_one_core": round(raw["client_cpu_s"] / raw["seconds"], 3),
            "send_lag_p50_ms": round(float(np.percentile(lag, 50)), 3) if lag.size else None,
            "send_lag_p99_ms": round(float(np.percentile(lag, 99)), 3) if lag.size else None,
            "send_lag_max_ms": round(float(lag.max()), 3) if lag.size else None,
        },
    }


def freshness_figures(raw: dict[str, Any]) -> dict[str, Any]:
    """Percentiles over every trial whose event was accepted; never reflected counts as inf."""
    import numpy as np

    never = raw["failures"].get("never_reflected", 0)
    ms = np.asarray(raw["fresh_ms"] + [np.inf] * never, dtype=float)

    def pct(q: float) -> float | None:
        v = float(np.percentile(ms, q, method="inverted_cdf")) if ms.size else float("nan")
        return round(v, 2) if np.isfinite(v) else None  # None: beyond the 1 s window

    return {
        "accepted_events": int(ms.size),
        "reflected": len(raw["fresh_ms"]),
        "never_reflected": never,
        "failures": raw["failures"],
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": round(max(raw["fresh_ms"]), 2) if raw["fresh_ms"] else None,
        "first_try_share": round(float(np.mean(np.asarray(raw["attempts"]) == 1)), 3)
        if raw["attempts"]
        else None,
    }


# ------------------------------------------------------------------ parent-side driving


class Generator:
    """The load-generator process and its command pipe."""

    def __init__(self, nice: int) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=generator_worker, args=(child, nice), daemon=True)
        self.proc.start()
        if not self.conn.poll(60):
            raise TimeoutError("the load generator process did not start")
        self.nice = int(self.conn.recv()[1])  # what it got: raising priority needs root

    def run(
        self, cmd: dict[str, Any], deadline_s: float, on_message: Callable[[str, Any], None]
    ) -> dict[str, Any]:
        self.conn.send(cmd)
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.conn.poll(0.2):
                kind, payload = self.conn.recv()
                if kind == "result":
                    return dict(payload)
                if kind == "error":
                    raise RuntimeError(f"load generator: {payload}")
                on_message(kind, payload)
        self.proc.kill()
        raise TimeoutError(f"load generator gave no result within {deadline_s:.0f} s")

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send({"cmd": "stop"})
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


SIDE_PORTS = {
    "RAY_SERVE_HAPROXY_METRICS_PORT": 9101,
    "RAY_SERVE_HAPROXY_STATS_PORT": 8404,
    "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": 8500,
    "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": 9500,
}


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def configure_env(haproxy: bool, worker_niceness: int | None) -> dict[str, str]:
    """Ray Serve reads these at import time in every Ray process: set them before ray.init."""
    os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1" if haproxy else "0"
    if worker_niceness is not None:  # Ray starts its workers (Serve, HAProxy) at nice 15
        os.environ["RAY_worker_niceness"] = str(worker_niceness)  # noqa: SIM112 (Ray spelling)
    os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    # A deleted ingress replica stays up this long so load balancers can deregister it
    # (30 s by default); nothing sends to it between two apps here, so don't wait.
    os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "2")
    # Side ports bound on all interfaces: another Serve on this machine must not make
    # HAProxy (or the fallback proxy) fail to start, so move them when the default is taken.
    for var, default in SIDE_PORTS.items():
        if var not in os.environ and not port_free(default):
            os.environ[var] = str(free_port())
    prefixes = ("RAY_SERVE", "RAY_worker_niceness", "TF_USE")
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(prefixes)}


def http(method: str, url: str, body: bytes | None = None, timeout: float = 5) -> tuple[int, bytes]:
    """One plain request from the parent (readiness checks); never through an env proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=body, method=method, headers=client_headers())
    try:
        with opener.open(req, timeout=timeout) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except (urllib.error.URLError, OSError):
        return 0, b""


def wait_ready(base: str, name: str, user: str, timeout_s: float) -> None:
    """Until /healthz (and /readyz for the full app) answer 200 and /recommend comes from
    this app (model_version tells the no-op app from the real one: a reload lagging behind
    serve.delete must not let the previous app answer)."""
    paths = ["/healthz"] + (["/readyz"] if name == "full" else [])
    body = json.dumps({"user_id": user, "k": K}).encode()
    deadline, last = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        codes = [http("GET", base + p)[0] for p in paths]
        status, payload = http("POST", base + "/recommend", body)
        if all(c == 200 for c in codes) and status == 200:
            version = json.loads(payload).get("model_version")
            if (version == "noop") == (name == "noop"):
                return
            last = f"/recommend answered by model_version={version!r}"
        elif all(c == 200 for c in codes) and status in (400, 401, 403, 422):
            raise RuntimeError(f"{name}: POST /recommend -> {status}: {payload[:500]!r}")
        else:
            last = f"{dict(zip(paths, codes, strict=True))}, /recommend -> {status}"
        time.sleep(0.5)
    raise TimeoutError(f"{name} app not ready within {timeout_s:.0f} s: {last}")


def verify_proxy(port: int) -> dict[str, Any]:
    """Who owns the listening socket on PORT (haproxy or Ray's ProxyActor), and haproxy's pids."""
    import psutil

    pids = {
        c.pid
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    }
    owners = []
    for pid in sorted(pids):
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            cmdline = " ".join(p.cmdline()).strip()[:200]
            owners.append({"pid": pid, "name": p.name(), "nice": p.nice(), "cmdline": cmdline})
    names = " ".join(o["name"] for o in owners)
    kind = "haproxy" if "haproxy" in names else "ray ProxyActor" if "Proxy" in names else "?"
    pgrep = subprocess.run(["pgrep", "-a", "haproxy"], capture_output=True, text=True, check=False)
    ours = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            ours += [child.pid] if child.name() == "haproxy" else []
    found: dict[str, Any] = {
        "proxy": kind,
        "port_owners": owners,
        "haproxy_pids_of_this_run": ours,
        "pgrep_haproxy_machine_wide": pgrep.stdout.strip().splitlines(),
    }
    if kind == "haproxy":
        from ray.serve._private.haproxy import get_haproxy_binary

        binary = get_haproxy_binary()
        out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
        found["haproxy_binary"] = binary
        version = re.search(r"version (\S+)", out.stdout)
        found["haproxy_version"] = version.group(1) if version else "?"
    return found


def api_key() -> tuple[str, bool]:
    """The X-API-Key the client sends, and whether the app must be told about it.

    TAILWISE_API_KEY if set; else the first of the app's TAILWISE_API_KEYS; else a key made
    for this run (passed to the full app as ServingConfig.api_keys)."""
    if key := os.environ.get("TAILWISE_API_KEY", "").strip():
        known = os.environ.get("TAILWISE_API_KEYS", "").split(",")
        return key, key not in [k.strip() for k in known]
    if keys := [k.strip() for k in os.environ.get("TAILWISE_API_KEYS", "").split(",") if k.strip()]:
        return keys[0], False
    return f"bench-{uuid.uuid4().hex}", True


def full_config(args: argparse.Namespace) -> dict[str, Any]:
    """ServingConfig fields for the full app: address, key, then --models-dir etc."""
    fields: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": args.port,
        "content_dir": str(ROOT / "content"),  # /content's templates, wherever Ray runs
    }
    key, tell_app = api_key()
    if tell_app:
        fields["api_keys"] = [key]
    if args.models_dir:
        fields["models_dir"] = args.models_dir
    if args.model_version:
        fields["model_version"] = args.model_version
    for item in args.config:
        name, _, value = item.partition("=")
        try:
            fields[name] = json.loads(value)
        except json.JSONDecodeError:
            fields[name] = value
    return fields


def build_app(name: str, args: argparse.Namespace) -> Any:
    if name == "noop":
        import noop_app  # bench/ is sys.path[0] when this script runs

        return noop_app.build()
    # Imported here so `--apps noop` runs before serving.app exists.
    build = importlib.import_module("serving.app").build
    config_class = importlib.import_module("serving.config").ServingConfig
    return build(config_class(**full_config(args)))


def cpu_snapshot() -> tuple[float, dict[int, tuple[str, float]], Any, set[int]]:
    """Wall clock, CPU seconds of every process, the machine's CPU times, and our pids
    (this driver and its descendants: Ray, Serve, HAProxy, the load generator)."""
    import psutil

    me = psutil.Process()
    ours = {me.pid} | {p.pid for p in me.children(recursive=True)}
    procs = {}
    for p in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        times = p.info["cpu_times"]
        if times is None:
            continue
        cmd = p.info["cmdline"] or [p.info["name"] or "?"]
        name = Path(cmd[0]).name.strip()
        if name.startswith("ray::"):  # the title carries the running method: drop it
            name = name.split(".")[0]
        elif name.startswith("python") and len(cmd) > 1:
            name = f"python {Path(cmd[1]).name}"
        procs[p.pid] = (name[:48], times.user + times.system)
    return time.perf_counter(), procs, psutil.cpu_times(), ours


def cpu_usage(before: Any, after: Any, generator_pid: int | None) -> dict[str, Any]:
    """Where the machine's CPU went while measuring, in cores (1.0 = one core busy)."""
    (t0, p0, m0, _), (t1, p1, m1, ours) = before, after
    wall = max(t1 - t0, 1e-9)
    by_name: Counter[str] = Counter()
    bench = 0.0
    for pid, (name, cpu) in p1.items():
        used = cpu - p0.get(pid, (name, 0.0))[1]
        label = "load generator" if pid == generator_pid else name
        by_name["bench driver" if pid == os.getpid() else label] += used
        bench += used if pid in ours else 0.0
    idle = lambda m: m.idle + getattr(m, "iowait", 0.0)  # noqa: E731
    busy = (sum(m1) - idle(m1)) - (sum(m0) - idle(m0))
    return {
        "machine_busy_cores": round(busy / wall, 2),
        "bench_cores": round(bench / wall, 2),
        "other_work_cores": round(max(busy - bench, 0.0) / wall, 2),
        "top_processes_cores": {
            k: round(v / wall, 3) for k, v in by_name.most_common(8) if v / wall >= 0.01
        },
    }


def load_cmd(
    args: argparse.Namespace, url: str, rate: float, bodies: list[bytes]
) -> dict[str, Any]:
    return {
        "cmd": "load",
        "url": url,
        "rate": rate,
        "bodies": bodies,
        "duration": args.duration,
        "warmup": args.warmup,
        "drain": args.drain,
        "timeout": args.timeout,
        "connections": args.connections,
    }


def measure_window(
    gen: Generator,
    args: argparse.Namespace,
    progress: Any,
    label: str,
    url: str,
    rate: float,
    bodies: list[bytes],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One open-loop run at `rate` with `bodies`: (the generator's raw result, CPU use)."""
    task = progress.add_task(f"{label} warm-up", total=len(bodies), done=0, err=0)
    cpu: dict[str, Any] = {}

    def on_message(kind: str, payload: Any) -> None:
        if kind == "measuring":
            progress.update(task, description=label)
            cpu["before"] = cpu_snapshot()
        elif kind == "progress":
            sent, done, err = payload
            progress.update(task, completed=sent, done=done, err=err)

    duration = len(bodies) / rate
    deadline = args.warmup + duration + args.drain + 60
    window = argparse.Namespace(**{**vars(args), "duration": duration})
    raw = gen.run(load_cmd(window, url, rate, bodies), deadline, on_message)
    usage = cpu_usage(cpu["before"], cpu_snapshot(), gen.proc.pid) if "before" in cpu else {}
    return raw, usage


def progress_bar() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("done {task.fields[done]}  errors {task.fields[err]}"),
        TimeElapsedColumn(),
    ]
    return Progress(*columns, transient=False)


def run_rates(
    gen: Generator,
    args: argparse.Namespace,
    label: str,
    url: str,
    rates: list[float],
    users: list[str],
) -> list[dict[str, Any]]:
    """One open-loop run per rate, with a progress bar fed by the generator."""
    out = []
    with progress_bar() as progress:
        for rate in rates:
            bodies = request_bodies(args, users, int(rate * args.duration), args.seed + int(rate))
            before = scrape_handler(url) if label == "full" else {}
            raw, usage = measure_window(
                gen, args, progress, f"{label} {rate:g} req/s", url, rate, bodies
            )
            figures = {**summarise(raw), "cpu": usage} if usage else summarise(raw)
            if label == "full":  # warm-up requests included: a small share of the window
                inside = Counter(handler_delta(before, scrape_handler(url)))
                figures["in_replica_mean_ms"] = handler_means(inside)
            out.append(figures)
            time.sleep(1)  # let queues settle before the next rate
    return out


def run_paired(
    gen: Generator,
    args: argparse.Namespace,
    urls: dict[str, str],
    rates: list[float],
    users: list[str],
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """Both apps at each rate in `--rounds` alternating windows (noop first in odd rounds,
    full first in even ones) of duration/rounds each, with the same request bodies in a
    round: the machine's drift falls on both alike. Returns per app the figures over all
    its windows of a rate, and per rate the full/noop p50 ratio of every round."""
    names = list(urls)
    figures: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    ratios: dict[str, dict[str, Any]] = {}
    with progress_bar() as progress:
        for rate in rates:
            raws: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
            usage: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
            per_round = []
            inside: Counter[str] = Counter()  # the full app's handler and stage seconds
            n = max(1, int(rate * args.duration / args.rounds))
            for r in range(args.rounds):
                bodies = request_bodies(args, users, n, args.seed + int(rate) + 1000 * r)
                p50 = {}
                for name in names if r % 2 == 0 else names[::-1]:
                    label = f"{name} {rate:g} req/s, round {r + 1}/{args.rounds}"
                    before = scrape_handler(urls[name]) if name == "full" else {}
                    raw, cpu = measure_window(gen, args, progress, label, urls[name], rate, bodies)
                    if name == "full":
                        inside.update(handler_delta(before, scrape_handler(urls[name])))
                    raws[name].append(raw)
                    usage[name].append(cpu)
                    p50[name] = summarise(raw)["p50_ms"]
                    time.sleep(1)
                if p50.get("noop") and p50.get("full"):
                    per_round.append(round(p50["full"] / p50["noop"], 2))
            for name in names:
                merged = {**summarise(merge_raw(raws[name])), "windows": len(raws[name])}
                figures[name].append({**merged, "cpu": mean_usage(usage[name])})
            if "full" in names and inside:
                figures["full"][-1]["in_replica_mean_ms"] = handler_means(inside)
            if per_round:
                ratios[f"{rate:g}"] = {"rounds": per_round, "median": median(per_round)}
    return figures, ratios


_HANDLER = re.compile(
    r'^tailwise_(stage|request)_seconds_(sum|count)\{(?:stage|route)="([^"]+)"\} (\S+)$', re.M
)


def scrape_handler(recommend_url: str) -> dict[str, float]:
    """The full app's handler and stage histograms (sum and count per label) from
    GET /metrics; with several replicas, whichever one answers."""
    status, body = http("GET", recommend_url.rsplit("/", 1)[0] + "/metrics")
    if status != 200:
        return {}
    return {
        f"{label}:{kind}": float(value)
        for _, kind, label, value in _HANDLER.findall(body.decode())
        if label != "/events"
    }


def handler_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def handler_means(totals: Counter[str]) -> dict[str, float]:
    """Mean milliseconds per request of the handler (/recommend) and each graph stage."""
    out = {}
    for key, total in totals.items():
        label, _, kind = key.rpartition(":")
        if kind == "sum" and totals.get(f"{label}:count"):
            name = "handler" if label in ("/recommend", "/content") else label
            out[name] = round(1000 * total / totals[f"{label}:count"], 3)
    return out


def merge_raw(raws: list[dict[str, Any]]) -> dict[str, Any]:
    """The generator's raw results of several windows at one rate, as one run."""
    merged: dict[str, Any] = {
        "offered_rps": raws[0]["offered_rps"],
        "ok_ms": [v for r in raws for v in r["ok_ms"]],
        "lag_ms": [v for r in raws for v in r["lag_ms"]],
        "seconds": sum(r["seconds"] for r in raws),
        "sent": sum(r["sent"] for r in raws),
        "client_cpu_s": sum(r["client_cpu_s"] for r in raws),
        "errors": dict(sum((Counter(r["errors"]) for r in raws), Counter())),
        "statuses": dict(sum((Counter(r["statuses"]) for r in raws), Counter())),
    }
    for r in raws:  # every error kind listed, zeros included, as in one run
        merged["errors"].update({k: merged["errors"].get(k, 0) for k in r["errors"]})
    return merged


def mean_usage(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """CPU use over windows of equal length: the mean of each figure."""
    usages = [u for u in usages if u]
    if not usages:
        return {}
    top: Counter[str] = Counter()
    for u in usages:
        top.update(u["top_processes_cores"])
    keys = ["machine_busy_cores", "bench_cores", "other_work_cores"]
    return {k: round(sum(u[k] for u in usages) / len(usages), 2) for k in keys} | {
        "top_processes_cores": {k: round(v / len(usages), 3) for k, v in top.most_common(8)}
    }


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else round((ordered[mid - 1] + ordered[mid]) / 2, 2)


def client_floor(gen: Generator, args: argparse.Namespace, users: list[str]) -> dict[str, Any]:
    """The same generator against a raw HTTP server: what the measuring itself costs."""
    import multiprocessing

    body = json.dumps(
        {
            "request_id": "noop-0",
            "model_version": "noop",
            "items": [
                {"item_id": f"noop{n:04d}", "score": 1.0, "reason": "canned"} for n in range(K)
            ],
            "degraded": False,
        }
    ).encode()
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=canned_server, args=(port, body), daemon=True
    )
    server.start()
    try:
        deadline = time.monotonic() + 10
        while http("POST", f"http://127.0.0.1:{port}/", b"{}")[0] != 200:
            if time.monotonic() > deadline:
                raise TimeoutError("client-floor server did not start")
            time.sleep(0.1)
        floor_args = argparse.Namespace(**{**vars(args), "duration": args.client_check})
        rate = max(args.rates)
        return run_rates(
            gen, floor_args, "client floor", f"http://127.0.0.1:{port}/", [rate], users
        )[0]
    finally:
        server.kill()
        server.join(5)


def run_freshness_trials(
    gen: Generator, args: argparse.Namespace, base: str, users: list[str]
) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(args.seed)
    chosen = [users[i] for i in rng.permutation(len(users))[: args.freshness]]
    cmd = {
        "cmd": "freshness",
        "base": base,
        "users": chosen,
        "retries": args.freshness_retries,
        "run_id": uuid.uuid4().hex[:8],
    }
    from rich.progress import Progress

    with Progress() as progress:
        task = progress.add_task("freshness trials", total=len(chosen))
        raw = gen.run(
            cmd,
            len(chosen) * 6 + 30,
            lambda kind, p: progress.update(task, completed=p[0]) if kind == "progress" else None,
        )
    return freshness_figures(raw)


def bench_apps(
    gen: Generator, args: argparse.Namespace, apps: list[str], users: list[str]
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """Start Ray and Serve once. One app: deploy, wait ready, run the rates. Both: deploy
    both (the no-op app under /noop), then measure them in alternating windows per rate.
    Returns the figures per app, the freshness trials and the paired p50 ratios."""
    import ray
    from ray import serve

    results: dict[str, Any] = {}
    freshness, ratios = None, {}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        base = f"http://127.0.0.1:{args.port}"
        urls = {name: base + PREFIX[name] for name in apps}
        for name in apps:
            results[name] = deploy(args, name, urls[name], users)
        if len(apps) == 1:
            results[apps[0]]["rates"] = run_rates(
                gen, args, apps[0], urls[apps[0]] + f"/{args.path}", args.rates, users
            )
        else:
            rates, ratios = run_paired(
                gen, args, {n: urls[n] + f"/{args.path}" for n in apps}, args.rates, users
            )
            for name in apps:
                results[name]["rates"] = rates[name]
        if "full" in apps and args.freshness > 0 and args.path == "recommend":
            freshness = run_freshness_trials(gen, args, urls["full"], users)
    finally:
        serve.shutdown()
        ray.shutdown()
    return results, freshness, ratios


# Where each app is served: both can run at once, so the no-op app gets a prefix.
PREFIX = {"full": "", "noop": "/noop"}


def deploy(args: argparse.Namespace, name: str, url: str, users: list[str]) -> dict[str, Any]:
    from ray import serve

    started = time.perf_counter()
    serve.run(build_app(name, args), name=name, route_prefix=PREFIX[name] or "/")
    wait_ready(url, name, users[0], args.ready_timeout)
    ready_s = round(time.perf_counter() - started, 1)
    proxy, load = verify_proxy(args.port), round(os.getloadavg()[0], 2)
    owners = [f"{o['name']}:{o['pid']} (nice {o['nice']})" for o in proxy["port_owners"]]
    print(
        f"{name}: ready in {ready_s} s at {url}; port {args.port} owned by {owners}; load avg {load}"
    )
    if (proxy["proxy"] == "haproxy") == args.no_haproxy:
        print(f"warning: asked for {'no ' if args.no_haproxy else ''}HAProxy, got {owners}")
    if load > 1.5:
        print(f"warning: load average {load} before the run: other work shares the 2 cores")
    figures: dict[str, Any] = {"ready_s": ready_s, "loadavg_1m_before": load, "proxy": proxy}
    if name == "full":
        figures["config"] = {k: v for k, v in full_config(args).items() if k != "api_keys"}
    return figures


# ----------------------------------------------------------------------------- report


def p50_ratios(apps: dict[str, Any]) -> dict[str, float]:
    if not {"noop", "full"} <= apps.keys():
        return {}
    noop = {r["offered_rps"]: r["p50_ms"] for r in apps["noop"]["rates"]}
    return {
        f"{r['offered_rps']:g}": round(r["p50_ms"] / noop[r["offered_rps"]], 2)
        for r in apps["full"]["rates"]
        if noop.get(r["offered_rps"]) and r["p50_ms"] is not None
    }


# The highest rate counts as sustained when this share of it was achieved, p99 was within
# the limit and nothing failed.
SUSTAINED_P99_MS = 50.0
SUSTAINED_ACHIEVED = 0.98


def highest_sustained(rates: list[dict[str, Any]]) -> float | None:
    """The highest offered rate with p99 <= SUSTAINED_P99_MS, 0 errors and the rate achieved."""
    ok = [
        r["offered_rps"]
        for r in rates
        if r["errors"] == 0
        and r["p99_ms"] is not None
        and r["p99_ms"] <= SUSTAINED_P99_MS
        and r["achieved_rps"] >= SUSTAINED_ACHIEVED * r["offered_rps"]
    ]
    return max(ok) if ok else None


def check_goals(apps: dict[str, Any], fresh: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The serving targets, judged on the full app (on the no-op app when only it ran)."""
    app = "full" if "full" in apps else "noop"
    at = {r["offered_rps"]: r for r in apps[app]["rates"]}

    def get(rate: float, key: str) -> Any:
        if rate not in at:
            return None  # not measured: n/a
        return "no 2xx" if at[rate][key] is None else at[rate][key]

    fresh_p99: Any = None
    if fresh and fresh["accepted_events"]:  # None: > 1% never showed within 1 s
        fresh_p99 = "never within 1 s" if fresh["p99_ms"] is None else fresh["p99_ms"]
    goals = [
        ("p50 <= 6 ms at 50 req/s", app, get(50, "p50_ms"), 6.0),
        ("p99 <= 15 ms at 150 req/s", app, get(150, "p99_ms"), 15.0),
        ("zero errors at 150 req/s", app, get(150, "errors"), 0),
        ("freshness p99 < 100 ms", "full", fresh_p99, 99.999),
    ]
    return [
        {
            "goal": g,
            "app": a,
            "value": v,
            "pass": None if v is None else isinstance(v, int | float) and v <= limit,
        }
        for g, a, v, limit in goals
    ]


def show(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 150)
    columns = ["req/s", "achieved", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"]
    columns += ["client CPU ms/req", "send lag p99 ms", "bench cores", "other work cores"]
    for name, app in result["apps"].items():
        title = f"{name}: POST /recommend, open loop, {result['settings']['duration']:g} s per rate"
        table = Table(title=f"{title}, via {result['proxy']}")
        for col in columns:
            table.add_column(col, justify="right")
        for r in app["rates"]:
            kinds = {k: v for k, v in r["error_kinds"].items() if v}
            c = r["client"]
            table.add_row(
                *(f"{r[k]:g}" for k in ["offered_rps", "achieved_rps"]),
                *(str(r[k]) for k in ["p50_ms", "p95_ms", "p99_ms", "max_ms"]),
                f"{r['errors']} {kinds if kinds else ''}".strip(),
                str(c["cpu_ms_per_request"]),
                str(c["send_lag_p99_ms"]),
                str(r.get("cpu", {}).get("bench_cores", "?")),
                str(r.get("cpu", {}).get("other_work_cores", "?")),
            )
        console.print(table)
        if top := app["rates"][-1].get("cpu", {}).get("top_processes_cores"):
            console.print(f"CPU at {app['rates'][-1]['offered_rps']:g} req/s, cores: {top}")
    if floor := result.get("client_floor"):
        console.print(
            f"client floor (same generator, raw HTTP server, {floor['offered_rps']:g} req/s): "
            f"p50 {floor['p50_ms']} ms, p99 {floor['p99_ms']} ms, "
            f"{floor['client']['cpu_ms_per_request']} ms client CPU per request"
        )
    if result["full_over_noop_p50"]:
        console.print(f"full/noop p50 ratio per rate, all windows: {result['full_over_noop_p50']}")
    for r in result["apps"].get("full", {}).get("rates", []):
        if means := r.get("in_replica_mean_ms"):
            console.print(f"full app's replica at {r['offered_rps']:g} req/s, mean ms: {means}")
    for rate, paired in result.get("full_over_noop_p50_paired", {}).items():
        console.print(
            f"full/noop p50 ratio at {rate} req/s, round by round: {paired['rounds']}"
            f" (median {paired['median']})"
        )
    if fresh := result.get("freshness"):
        console.print(f"freshness: {fresh}")
    for g in result["goals"]:
        mark = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[yellow]n/a[/]"}[g["pass"]]
        console.print(f"{mark}  {g['goal']} ({g['app']}: {g['value']})")


def results_name(path: str, tag: str | None = None) -> str:
    """serve_load for /recommend, serve_load_content for /content (kept apart); a tag
    (another deployment shape, e.g. two replicas) is appended: serve_load_<tag>."""
    stem = "serve_load" if path == "recommend" else f"serve_load_{path}"
    return f"{stem}_{tag}" if tag else stem


def save(result: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = result["settings"].get("path", "recommend")
    stem = results_name(path, result["settings"].get("tag"))
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    s, m = result["settings"], result["machine"]
    lines = [
        f"# Serving under load: POST /{path}, open loop",
        "",
        f"{m['cores']} cores; Python {m['python']}; Ray {m['ray']}; proxy: {result['proxy']}; "
        f"{result['date']}; `{result['command']}`",
        "",
        f"Open loop (request i sent at t0 + i/rate, latency from that time), {s['duration']:g} s "
        + (
            f"per rate and app in {s['rounds']} windows alternating the apps (same request "
            f"bodies for both in a window pair), each after {s['warmup']:g} s warm-up, "
            if s.get("rounds")
            else f"per rate after {s['warmup']:g} s warm-up, "
        )
        + f"{s['timeout']:g} s timeout; percentiles over "
        f"2xx, errors counted apart; {int(UNKNOWN_SHARE * 100)}% unknown users, k={K}, "
        "device/country sampled. The no-op app (bench/noop_app.py) has the same topology and "
        "routes with canned answers: the framework's floor. Cores: CPU used by this benchmark "
        "(Ray, Serve, HAProxy, load generator) / by other work on the machine while measuring.",
        "",
        "| app | req/s | achieved | p50 ms | p95 ms | p99 ms | max ms | errors "
        "| cores: bench / other work |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, app in result["apps"].items():
        for r in app["rates"]:
            cpu = r.get("cpu", {})
            lines.append(
                f"| {name} | {r['offered_rps']:g} | {r['achieved_rps']:g} | {r['p50_ms']} | "
                f"{r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['errors']} | "
                f"{cpu.get('bench_cores', '?')} / {cpu.get('other_work_cores', '?')} |"
            )
    if cfg := result["apps"].get("full", {}).get("config"):
        lines += ["", f"Full app: serving.app.build(ServingConfig({cfg}))."]
    inside = [
        (r["offered_rps"], r["in_replica_mean_ms"])
        for r in result["apps"].get("full", {}).get("rates", [])
        if r.get("in_replica_mean_ms")
    ]
    if inside:
        lines += [
            "",
            "Inside the full app's replica (means per request from its /metrics histograms; "
            "stages: features = Redis read and context, ranking = candidates' matrix and "
            "trees, rules = rules and reasons):",
            "",
            "| req/s | handler ms | total graph | features | retrieval | ranking | rules |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {rate:g} | {m.get('handler')} | {m.get('total')} | {m.get('features')} | "
                f"{m.get('retrieval')} | {m.get('ranking')} | {m.get('rules')} |"
                for rate, m in inside
            ),
        ]
    if ratios := result["full_over_noop_p50"]:
        lines += [
            "",
            "full/noop p50, all windows: "
            + ", ".join(f"{k} req/s {v}x" for k, v in ratios.items()),
        ]
    if paired := result.get("full_over_noop_p50_paired"):
        lines += [
            "",
            "full/noop p50 round by round: "
            + "; ".join(
                f"{k} req/s {' '.join(f'{v}x' for v in p['rounds'])} (median {p['median']}x)"
                for k, p in paired.items()
            ),
        ]
    if f := result.get("freshness"):
        lines += [
            "",
            f"Freshness (purchase event 2xx -> first /recommend without the item), "
            f"{f['accepted_events']} trials: p50 {f['p50_ms']} ms, p95 {f['p95_ms']} ms, "
            f"p99 {f['p99_ms']} ms, never reflected within 1 s: {f['never_reflected']}.",
        ]
    client = f"Client: {result['client']}"
    if c := result.get("client_floor"):
        client += (
            f"; the same client against a raw HTTP server at {c['offered_rps']:g} req/s "
            f"(the measuring floor): p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms, "
            f"{c['client']['cpu_ms_per_request']} ms client CPU per request"
        )
    lines += ["", client + "."]
    for name, rate in result.get("highest_sustained_rps", {}).items():
        lines += [
            "",
            f"Highest rate {name} sustained (p99 <= {SUSTAINED_P99_MS:g} ms, 0 errors, "
            f">= {SUSTAINED_ACHIEVED:.0%} of it achieved) among the rates offered: "
            f"{'none' if rate is None else f'{rate:g} req/s'}. The load generator shares the "
            f"{m['cores']} cores with the app.",
        ]
    if fs := result.get("feast_server"):
        full = {r["offered_rps"]: r for r in result["apps"].get("full", {}).get("rates", [])}
        ref = full.get(50.0) or next(iter(full.values()), None)
        lines += [
            "",
            f"For scale, Feast's own feature server (`feast serve`): {fs['what']}: "
            f"p50 {fs['p50_ms']} ms, p99 {fs['p99_ms']} ms over {fs['requests']} requests, "
            f"{fs['errors']} errors"
            + (
                f"; the whole /recommend (features, retrieval, ranking, rules) at "
                f"{ref['offered_rps']:g} req/s: p50 {ref['p50_ms']} ms, p99 {ref['p99_ms']} ms."
                if ref
                else "."
            ),
        ]
    lines += ["", "Goals:", ""]
    for g in result["goals"]:
        mark = {True: "PASS", False: "FAIL", None: "n/a"}[g["pass"]]
        lines.append(f"- {mark}: {g['goal']} ({g['app']}: {g['value']})")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--apps", default="full", help="comma-separated: noop, full")
    ap.add_argument(
        "--path",
        choices=["recommend", "content"],
        default="recommend",
        help="route under load: POST /recommend, or POST /content (full app only; results "
        "in bench/results/serve_load_content.*)",
    )
    ap.add_argument("--slot", default="home_hero", help="--path content: the slot requested")
    ap.add_argument(
        "--tag",
        default=None,
        help="results in bench/results/serve_load[_content]_<tag>.* (e.g. a run with "
        "--config num_replicas=2), leaving the default run's results alone",
    )
    ap.add_argument(
        "--rates", default="25,50,100,150,200,300,400,500,600", help="arrival rates, req/s"
    )
    ap.add_argument(
        "--duration", type=float, default=60.0, help="measured seconds per rate and app"
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=6,
        help="with both apps: alternating windows per rate (each duration/rounds s); "
        "with 3 (20 s windows) one rate's round ratios ranged 1.19-1.66x in one run, as the "
        "host's speed drifted between windows",
    )
    ap.add_argument("--warmup", type=float, default=3.0, help="uncounted seconds before each rate")
    ap.add_argument("--timeout", type=float, default=2.0, help="per-request timeout (an error)")
    ap.add_argument("--drain", type=float, default=5.0, help="wait after the last send, s")
    ap.add_argument("--connections", type=int, default=256, help="client connection pool size")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--freshness", type=int, default=200, help="trials (full app only; 0: off)")
    ap.add_argument(
        "--freshness-retries", type=int, default=200, help="max /recommend tries within 1 s"
    )
    ap.add_argument(
        "--client-check", type=float, default=10.0, help="client-floor seconds (0: off)"
    )
    ap.add_argument("--ready-timeout", type=float, default=600.0)
    ap.add_argument(
        "--feast-requests",
        type=int,
        default=300,
        help="sequential ranking feature reads through `feast serve`, for scale (0: off)",
    )
    ap.add_argument("--no-haproxy", action="store_true", help="Ray Serve's Python proxy instead")
    ap.add_argument(
        "--ray-worker-niceness",
        type=int,
        default=0,
        help="RAY_worker_niceness for Serve and HAProxy (default 0, as `tailwise serve` starts"
        " them; Ray's own default is 15)",
    )
    ap.add_argument(
        "--client-nice", type=int, default=-10, help="load generator's nice value (root: < 0)"
    )
    ap.add_argument("--models-dir", help="ServingConfig.models_dir for the full app")
    ap.add_argument("--model-version", help="ServingConfig.model_version for the full app")
    ap.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="another ServingConfig field for the full app (value parsed as JSON if it can be)",
    )
    ap.add_argument(
        "--save",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write bench/results/serve_load.{json,md} (default: only when the full app ran)",
    )
    args = ap.parse_args()
    args.apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    if unknown := set(args.apps) - {"noop", "full"}:
        ap.error(f"unknown app(s) {sorted(unknown)}: use noop and/or full")
    if args.path == "content" and "noop" in args.apps:
        ap.error("--path content needs --apps full (the no-op app has no /content)")
    args.rates = [float(r) for r in args.rates.split(",")]
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    if any(r <= 0 for r in args.rates):
        ap.error(f"rates must be positive, got {args.rates}")
    return args


def main() -> None:
    args = parse_args()
    if not port_free(args.port):
        sys.exit(f"port {args.port} is taken (another Serve?): pick a free one with --port")
    env = configure_env(not args.no_haproxy, args.ray_worker_niceness)
    import aiohttp
    import ray

    os.environ["TAILWISE_API_KEY"] = api_key()[0]  # the generator process inherits it
    users = known_users()
    gen = Generator(args.client_nice)
    try:
        floor = client_floor(gen, args, users) if args.client_check > 0 else None
        apps, freshness, paired = bench_apps(gen, args, args.apps, users)
    finally:
        gen.close()
    feast = None
    if args.feast_requests > 0 and "full" in apps:
        import feast_server

        n_items = apps["full"].get("config", {}).get("n_candidates", 200)
        print(
            f"feast serve: {args.feast_requests} ranking feature reads of 1 user + {n_items} items"
        )
        feast = feast_server.measure(users, n_items, args.feast_requests, free_port())
    proxies = {a["proxy"]["proxy"] for a in apps.values()}
    proxy = ", ".join(sorted(proxies))
    haproxy = next((a["proxy"] for a in apps.values() if a["proxy"].get("haproxy_version")), None)
    if haproxy:
        proxy = f"HAProxy {haproxy['haproxy_version']} (bundled binary; owns port {args.port})"
    ratios = p50_ratios(apps)
    result: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", *map(shlex.quote, sys.argv)]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "ray": ray.__version__,
            "platform": platform.platform(),
        },
        "proxy": proxy,
        "env": env,
        "client": f"aiohttp {aiohttp.__version__} on uvloop, own process (nice {gen.nice}), "
        f"keep-alive pool of {args.connections}, bodies serialised in advance",
        "settings": {
            k: getattr(args, k)
            for k in [
                "apps",
                "path",
                "tag",
                "rates",
                "duration",
                "warmup",
                "timeout",
                "drain",
                "seed",
                "port",
            ]
        }
        | {"unknown_user_share": UNKNOWN_SHARE, "k": K, "known_users": len(users)}
        | ({"rounds": args.rounds} if len(args.apps) > 1 else {}),
        "client_floor": floor,
        "apps": apps,
        "full_over_noop_p50": ratios,
        "full_over_noop_p50_paired": paired,
        "freshness": freshness,
        "goals": check_goals(apps, freshness),
        "highest_sustained_rps": {
            name: highest_sustained(app["rates"]) for name, app in apps.items()
        },
        "feast_server": feast,
    }
    show(result)
    if args.save if args.save is not None else "full" in apps:
        save(result)
        name = results_name(args.path, args.tag)
        print(f"wrote {RESULTS / name}.json and {name}.md")
    else:
        print("results not written (no full app in this run; --save to force)")


if __name__ == "__main__":
    main()
