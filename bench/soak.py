"""Benchmark: a soak of the serving app, `--minutes` (30) at `--rate` (100) req/s, events mixed in.

    open loop (request i at t0 + i/rate; latency from that time) --POST /recommend, and
    `--event-share` of them POST /events--> app (one replica) -> Redis (AOF, fsync always)
    consumer: a process of its own runs tailwise.ingest.streams.consume every
    `--consume-every` s (commits, then trims the stream), as `tailwise events consume`
    runs beside the API
    sampler thread: every `--sample-every` s the replica's RSS (its pid from Ray's actor
    table), Redis used_memory, the events stream's length and the replica's /metrics
    (handler time, GC pauses, shed requests, answers from memory, spilled events)
    speed probe: a process of its own, at nice 19, times a fixed piece of pure-Python work
    in CPU time (time.process_time) every `--probe-every` s: how fast this shared
    machine's cores are running, whatever the app does (CPU time does not count waiting
    for a core)
    Redis's latency monitor records its own stalls over 50 ms (LATENCY LATEST at the end)

Goals (issue 22), comparing the first and the last `--window` minutes (5; a third of the
run when it is shorter than 15 min): /recommend p99 of the last window at most 10% above
the first's at equal machine speed (the raw p99s divided by the speed probe's median CPU
ms in the same window; both raw figures and the probe's are reported), replica RSS (median of the window's samples) grown < 10%, Redis's streams
and caches (BUFFERS: what the consumer and the TTLs bound) grown < 10% from the end of
the first window to the end, 0 errors (every answer a 2xx, no timeout). Every 5 minutes
Redis memory is broken down by kind of key (MEMORY USAGE); the total and the growth of
per-user state (STATE, bytes per accepted event) are reported beside the goal.
Each goal prints PASS or FAIL; the exit code is 1 when one fails.

It serves a world of its own (bench/served_world.py), never the demo's data or Redis. What
other runs left in that world's streams (the overload bench runs no consumer) is consumed
before the warm-up, so the first window does not pay for it.
Results: bench/results/soak.{json,md} for a run of 30 minutes or more; a shorter run
writes soak-<minutes>min.{json,md} (a check of the benchmark, not the soak's figure).

    .venv/bin/python bench/soak.py                 # make bench-soak (30 min)
    .venv/bin/python bench/soak.py --minutes 3     # make bench-soak MINUTES=3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/soak.py` imports bench.served_world
RESULTS = ROOT / "bench" / "results"
GROWTH = 0.10  # p99, RSS and Redis memory may grow at most 10% from the first window
# What the consumer and the TTLs keep flat: the event and request streams, the exposures
# stream, the response cache. Everything else in Redis is per-user state that grows with
# what people do (recent events up to RECENT_MAX per user, seen / purchased sets, the
# per-item history, Feast's rows of new users) and Redis's own overhead.
BUFFERS = ("events", "served", "exposures", "rec")
# The speed probe's process: a fixed amount of pure-Python work, timed in CPU time.
PROBE = """
import os, sys, time
os.nice(19)  # last in line for a core: the probe must not delay what it measures
every = float(sys.argv[1])
while True:
    began, total = time.process_time(), 0
    for i in range(200_000):
        total += i * i
    print(f"{time.time():.3f} {(time.process_time() - began) * 1000:.3f}", flush=True)
    time.sleep(every)
"""
STATE = ("recent", "seen", "purchased", "history", "feast")
# The consumer's process, as `tailwise events consume` runs beside the API: its parquet
# writes do not share the load generator's interpreter. It drains the streams every
# `every` seconds until the stop file exists, and prints the entries read per drain.
CONSUMER = """
import sys, time
from pathlib import Path
import redis
from bench.soak import drain
from serving.keys import Keys
url, project, out, every, stop = sys.argv[1:6]
client, keys = redis.Redis.from_url(url), Keys(project)
while not Path(stop).exists():
    print(drain(client, keys, Path(out)), flush=True)
    time.sleep(float(every))
"""
# The replica's /metrics figures each sample keeps (cumulative; per minute as differences):
# field -> (sample name, the labels it must carry), summed over the samples that match
SCRAPED: dict[str, tuple[str, dict[str, str]]] = {
    "handler_seconds": ("tailwise_request_seconds_sum", {"route": "/recommend"}),
    "handled": ("tailwise_request_seconds_count", {"route": "/recommend"}),
    "gc_seconds": ("tailwise_gc_pause_seconds_sum", {}),
    "shed": ("tailwise_shed_requests_total", {}),
    "degraded": ("tailwise_degraded_responses_total", {}),
    "spilled": ("tailwise_events_total", {"outcome": "spilled"}),
}
# Redis records each of its own stalls longer than this (LATENCY LATEST at the end: which
# event, e.g. aof-fsync-always or command, how often and how long at most)
REDIS_LATENCY_MS = 50


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 2)


def refusal(content_type: str, body: bytes) -> str:
    """Who refused a request with 503: the app's shedder (its JSON error names the limit)
    or what stands in front of it (Ray Serve's queue, the proxy: text)."""
    if content_type == "application/json":
        try:
            error = str(json.loads(body).get("error", ""))
        except (ValueError, AttributeError):
            error = ""
        if error.startswith("overloaded"):
            return "app shedder: " + error.split(";")[0].removeprefix("overloaded: ")
    return f"in front of the app ({content_type or 'no content type'})"


def scrape(url: str) -> dict[str, float]:
    """SCRAPED figures from the app's /metrics (one replica: its own counters)."""
    from bench.served_world import metric_samples

    samples = metric_samples(url)
    return {
        field: sum(
            s.value
            for s in samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )
        for field, (name, labels) in SCRAPED.items()
    }


def drain(client: Any, keys: Any, out: Path) -> int:
    """Consume until the streams (events, served requests, exposures) are empty; the
    entries read."""
    from tailwise.ingest.streams import consume

    read = 0
    while batch := consume(client, keys, out).entries_read:
        read += batch
    return read


async def offer(
    url: str, key: str, users: list[str], items: list[str], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Open loop for args.minutes at args.rate; one record per request."""
    import aiohttp

    n = int(args.rate * args.minutes * 60)
    every = max(1, round(1 / args.event_share)) if args.event_share > 0 else 0
    records: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=512, keepalive_timeout=30)
    client_timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def one(i: int, due: float) -> None:
            # 10% unknown users (cold start), events spread over both kinds
            user = f"soak-new-{i % 500}" if i % 10 == 5 else users[i * 7919 % len(users)]
            if every and i % every == 0:
                kind, path, headers = "event", "/events", {"X-API-Key": key}
                body: dict[str, Any] = {
                    "event_id": f"soak-{uuid.uuid4().hex}",
                    "user_id": user,
                    "item_id": items[i % len(items)],
                    "event_type": "purchase" if i % 5 == 0 else "product_view",
                    "timestamp": datetime.now(UTC).isoformat(),
                }
            else:
                kind, path, headers, body = "recommend", "/recommend", {}, {"user_id": user}
            sent = time.perf_counter()
            record: dict[str, Any] = {"at": due - t0, "kind": kind}
            try:
                async with session.post(url + path, json=body, headers=headers) as response:
                    text = await response.read()
                    record["status"] = response.status
                    if response.status == 503:
                        record["why"] = refusal(response.content_type, text)
            except TimeoutError:
                record["status"] = "timeout"
            except (aiohttp.ClientError, OSError):
                record["status"] = "connection"
            record["ms"] = (time.perf_counter() - min(due, sent)) * 1000
            records.append(record)

        tasks: set[asyncio.Task[None]] = set()
        t0 = time.perf_counter() + 0.05
        for i in range(n):
            due = t0 + i / args.rate
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(i, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=args.timeout + 5)
    return records


class Watch:
    """Beside the load: the consumer's process, the speed probe's process, and a thread
    sampling RSS, Redis memory, the stream's length and the replica's /metrics."""

    def __init__(
        self, redis_url: str, project: str, args: argparse.Namespace, url: str = ""
    ) -> None:
        import redis

        from serving.keys import Keys

        self.client = redis.Redis.from_url(redis_url)
        self.redis_url, self.project, self.url = redis_url, project, url
        self.keys = Keys(project)
        self.args = args
        self.samples: list[dict[str, Any]] = []
        self.breakdowns: list[dict[str, Any]] = []
        self.consumed = 0
        self.stop = threading.Event()
        self.out = Path(tempfile.mkdtemp(prefix="soak-served-"))
        self.probes: list[dict[str, float]] = []
        self.threads = [
            threading.Thread(target=self._consume, daemon=True),
            threading.Thread(target=self._sample, daemon=True),
            threading.Thread(target=self._probe, daemon=True),
        ]
        self.stop_file = self.out / "stop"
        self.probe: subprocess.Popen[str] | None = None
        self.stalls: list[dict[str, Any]] = []
        self.wall0 = time.time()
        self.consumer: subprocess.Popen[str] | None = None

    def start_consumer(self) -> None:
        """The consumer's process; started before the warm-up, so that its start-up is
        not in the first window."""
        self.consumer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CONSUMER,
                self.redis_url,
                self.project,
                str(self.out),
                str(self.args.consume_every),
                str(self.stop_file),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.threads[0].start()

    def start(self) -> None:
        self.client.config_set("latency-monitor-threshold", REDIS_LATENCY_MS)
        self.client.latency_reset()
        self.t0, self.wall0 = time.perf_counter(), time.time()
        self.probe = subprocess.Popen(
            [sys.executable, "-c", PROBE, str(self.args.probe_every)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for thread in self.threads[1:]:
            thread.start()

    def _probe(self) -> None:
        assert self.probe is not None and self.probe.stdout is not None
        for line in self.probe.stdout:
            wall, ms = (float(x) for x in line.split())
            self.probes.append({"at": round(wall - self.wall0, 1), "cpu_ms": ms})

    def _consume(self) -> None:
        assert self.consumer is not None and self.consumer.stdout is not None
        for line in self.consumer.stdout:
            self.consumed += int(line)

    def drain(self) -> int:
        """Consume until the streams are empty (drain); the entries read."""
        return drain(self.client, self.keys, self.out)

    def _sample(self) -> None:
        import psutil

        from serving.server import replica_pids

        while True:
            pids, rss = replica_pids(), 0
            for pid in pids:
                try:
                    rss += psutil.Process(pid).memory_info().rss
                except psutil.Error:  # restarted between the lookup and the read
                    pids = [p for p in pids if p != pid]
            self.samples.append(
                {
                    "at": round(time.perf_counter() - self.t0, 1),
                    "load_1m": round(os.getloadavg()[0], 2),
                    "replica_pids": pids,
                    "replica_rss_mb": round(rss / 2**20, 1),
                    "redis_used_mb": round(self.used_memory() / 2**20, 2),
                    "events_stream_length": self.client.xlen(self.keys.events),
                    **(scrape(self.url) if self.url else {}),
                }
            )
            last = self.samples[-1]
            if len(self.samples) == 1 or last["at"] // 60 > self.samples[-2]["at"] // 60:
                print(
                    f"soak: {last['at'] / 60:.1f} of {self.args.minutes:g} min; replica RSS "
                    f"{last['replica_rss_mb']} MB, Redis {last['redis_used_mb']} MB, stream "
                    f"{last['events_stream_length']}",
                    flush=True,
                )
            if not self.breakdowns or last["at"] - self.breakdowns[-1]["at"] >= 300:
                self.breakdowns.append({"at": last["at"], "mb": self.breakdown()})
            if self.stop.wait(self.args.sample_every):
                self.breakdowns.append({"at": last["at"], "mb": self.breakdown()})
                return

    def used_memory(self) -> int:
        info: Any = self.client.info("memory")
        return int(info["used_memory"])

    def breakdown(self) -> dict[str, float]:
        """MB per kind of key, from MEMORY USAGE over every key of the world's own Redis:
        the app's (`tailwise:<project>:<kind>:...`: events, served, seen, history, rec,
        ...), `feast` (the online store's hashes, every other key), `overhead` (Redis's
        own: clients, the AOF buffer, the key tables; INFO used_memory_overhead)."""
        prefix = self.keys.prefix.encode()
        names = list(self.client.scan_iter(count=1000))
        sizes: Counter[str] = Counter()
        for start in range(0, len(names), 1000):
            chunk = names[start : start + 1000]
            pipe = self.client.pipeline(transaction=False)
            for name in chunk:
                pipe.memory_usage(name, samples=0)
            for name, size in zip(chunk, pipe.execute(), strict=True):
                if name.startswith(prefix):
                    kind = name[len(prefix) :].split(b":", 1)[0].split(b".", 1)[0].decode()
                else:
                    kind = "feast"
                sizes[kind] += int(size or 0)
        info: Any = self.client.info("memory")
        sizes["overhead"] = int(info["used_memory_overhead"])
        return {kind: round(size / 2**20, 2) for kind, size in sorted(sizes.items())}

    def redis_stalls(self) -> list[dict[str, Any]]:
        """Redis's own record of its stalls over REDIS_LATENCY_MS since start (LATENCY
        LATEST): per event, the last one's second in the run, its ms and the most ms."""
        out = []
        latest: Any = self.client.latency_latest()
        for event, at, last_ms, max_ms in latest:
            name = event.decode() if isinstance(event, bytes) else str(event)
            out.append(
                {
                    "event": name,
                    "last_at": round(at - self.wall0, 1),
                    "last_ms": last_ms,
                    "max_ms": max_ms,
                }
            )
        return out

    def close(self) -> None:
        try:
            self.stalls = self.redis_stalls()
        except Exception as exc:  # the run's figures still count without Redis's record
            print(f"soak: cannot read Redis's latency record: {exc}", flush=True)
        self.stop.set()
        if self.probe is not None:
            self.probe.terminate()
            self.probe.wait(timeout=30)
        self.stop_file.touch()  # the consumer ends after its drain under way
        if self.consumer is not None:
            try:
                self.consumer.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.consumer.kill()
                self.consumer.wait(timeout=30)
        for thread in self.threads:
            if thread.is_alive():
                thread.join(timeout=120)
        shutil.rmtree(self.out, ignore_errors=True)


def growth(first: list[float], last: list[float]) -> float | None:
    if not first or not last:
        return None
    before, after = statistics.median(first), statistics.median(last)
    if before == 0:
        return 0.0 if after == 0 else None
    return round(after / before - 1, 4)


def summarise(
    records: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    args: argparse.Namespace,
    breakdowns: list[dict[str, Any]] | None = None,
    probes: list[dict[str, float]] | None = None,
) -> dict[str, Any]:
    total = args.minutes * 60
    window = min(args.window, args.minutes / 3) * 60
    first = [r for r in records if r["at"] < window]
    last = [r for r in records if r["at"] >= total - window]

    def p99(rows: list[dict[str, Any]]) -> float | None:
        return percentile([r["ms"] for r in rows if r["kind"] == "recommend" and r["ok"]], 99)

    for r in records:
        r["ok"] = r["status"] in (200, 202)
    statuses = Counter(f"{r['kind']} {r['status']}" for r in records)
    in_first = [s for s in samples if s["at"] < window]
    in_last = [s for s in samples if s["at"] >= total - window]
    probes = probes or []
    probe_first = _median([p for p in probes if p["at"] < window], "cpu_ms")
    probe_last = _median([p for p in probes if p["at"] >= total - window], "cpu_ms")
    figures = {
        "minutes": args.minutes,
        "window_minutes": round(window / 60, 2),
        "offered_rps": args.rate,
        "sent": len(records),
        "events_sent": sum(r["kind"] == "event" for r in records),
        "statuses": dict(statuses),
        "refusals": dict(Counter(f"{r['kind']}: {r['why']}" for r in records if "why" in r)),
        "errors": sum(not r["ok"] for r in records),
        "recommend_p50_ms": percentile([r["ms"] for r in records if r["kind"] == "recommend"], 50),
        "p99_first_ms": p99(first),
        "p99_last_ms": p99(last),
        "probe_first_cpu_ms": probe_first,
        "probe_last_cpu_ms": probe_last,
        "event_p99_ms": percentile([r["ms"] for r in records if r["kind"] == "event"], 99),
        "rss_first_mb": _median(in_first, "replica_rss_mb"),
        "rss_last_mb": _median(in_last, "replica_rss_mb"),
        "rss_growth": growth(
            _values(in_first, "replica_rss_mb"), _values(in_last, "replica_rss_mb")
        ),
        "redis_first_mb": _median(in_first, "redis_used_mb"),
        "redis_last_mb": _median(in_last, "redis_used_mb"),
        "redis_growth": growth(
            _values(in_first, "redis_used_mb"), _values(in_last, "redis_used_mb")
        ),
        "stream_length_max": max((s["events_stream_length"] for s in samples), default=None),
        "replica_pids": sorted({p for s in samples for p in s["replica_pids"]}),
        "redis_mb_by_kind": breakdowns or [],
        **_redis_parts(breakdowns or [], window, sum(r["status"] == 202 for r in records)),
        "by_minute": _by_minute(records, samples, probes),
    }
    first_p99, last_p99 = figures["p99_first_ms"], figures["p99_last_ms"]
    known = None not in (first_p99, last_p99, probe_first, probe_last)
    figures["p99_growth"] = round(last_p99 / first_p99 - 1, 4) if known else None
    figures["machine_slowdown"] = round(probe_last / probe_first - 1, 4) if known else None
    figures["p99_growth_at_equal_speed"] = (
        round((last_p99 / probe_last) / (first_p99 / probe_first) - 1, 4) if known else None
    )
    goals = {
        "p99 of the last window at most 10% above the first's, at equal machine speed": known
        and figures["p99_growth_at_equal_speed"] <= GROWTH,
        "replica RSS growth < 10%": figures["rss_growth"] is not None
        and figures["rss_growth"] < GROWTH,
        "Redis streams and caches flat (growth < 10%) with the consumer running": figures[
            "buffers_growth"
        ]
        is not None
        and figures["buffers_growth"] < GROWTH,
        "0 errors, no replica restart": figures["errors"] == 0
        and len(figures["replica_pids"]) == 1,
    }
    return {"figures": figures, "goals": goals}


def _by_minute(
    records: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    probes: list[dict[str, float]],
) -> list[dict]:
    """Per minute of the run: /recommend p50 and p99, errors, the machine's load average,
    the speed probe's median CPU ms."""
    out = []
    for minute in range(int(max((r["at"] for r in records), default=0) // 60) + 1):
        rows = [r for r in records if minute * 60 <= r["at"] < (minute + 1) * 60]
        ms = [r["ms"] for r in rows if r["kind"] == "recommend" and r["ok"]]
        loads = [s["load_1m"] for s in samples if minute * 60 <= s["at"] < (minute + 1) * 60]
        out.append(
            {
                "minute": minute,
                "p50_ms": percentile(ms, 50),
                "p99_ms": percentile(ms, 99),
                "errors": sum(not r["ok"] for r in rows),
                **_replica_minute(samples, minute),
                "load_1m": max(loads, default=None),
                "probe_cpu_ms": _median(
                    [p for p in probes if minute * 60 <= p["at"] < (minute + 1) * 60], "cpu_ms"
                ),
            }
        )
    return out


def _replica_minute(samples: list[dict[str, Any]], minute: int) -> dict[str, Any]:
    """From the replica's /metrics over the minute (the samples before its start and its
    end): its mean /recommend handler ms, ms of GC pauses, requests its shedder refused,
    answers it gave from memory, events it spilled."""
    before = [s for s in samples if s["at"] <= minute * 60 and "handled" in s]
    upto = [s for s in samples if s["at"] <= (minute + 1) * 60 and "handled" in s]
    if not before or not upto or upto[-1] is before[-1]:
        return dict.fromkeys(("handler_mean_ms", "gc_ms", "shed", "degraded", "spilled"))
    a, b = before[-1], upto[-1]
    handled = b["handled"] - a["handled"]
    return {
        "handler_mean_ms": round((b["handler_seconds"] - a["handler_seconds"]) / handled * 1000, 2)
        if handled
        else None,
        "gc_ms": round((b["gc_seconds"] - a["gc_seconds"]) * 1000, 1),
        "shed": int(b["shed"] - a["shed"]),
        "degraded": int(b["degraded"] - a["degraded"]),
        "spilled": int(b["spilled"] - a["spilled"]),
    }


def _redis_parts(
    breakdowns: list[dict[str, Any]], window: float, accepted_events: int
) -> dict[str, Any]:
    """Streams and caches (BUFFERS) at the end of the first window and at the end; the
    growth of per-user state (STATE) and what it comes to per accepted event."""
    if len(breakdowns) < 2:
        return {"buffers_first_mb": None, "buffers_last_mb": None, "buffers_growth": None}
    first = min(breakdowns, key=lambda b: abs(b["at"] - window))
    last = breakdowns[-1]

    def total(b: dict[str, Any], kinds: tuple[str, ...]) -> float:
        return round(sum(b["mb"].get(kind, 0.0) for kind in kinds), 2)

    state_mb = total(last, STATE) - total(breakdowns[0], STATE)
    before, after = total(first, BUFFERS), total(last, BUFFERS)
    return {
        "buffers_first_mb": before,
        "buffers_last_mb": after,
        "buffers_growth": growth([before], [after]),
        "state_growth_mb": round(state_mb, 2),
        "state_bytes_per_event": round(state_mb * 2**20 / accepted_events)
        if accepted_events
        else None,
    }


def _values(samples: list[dict[str, Any]], key: str) -> list[float]:
    return [s[key] for s in samples]


def _median(samples: list[Any], key: str) -> float | None:
    values = _values(samples, key)
    return round(statistics.median(values), 2) if values else None


def save(result: dict[str, Any], name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    f = result["figures"]
    lines = [
        f"# Soak: {f['minutes']} min at {f['offered_rps']} req/s with events mixed in",
        "",
        f"{result['machine']}; {result['when']}; `{result['command']}`",
        "",
        f"Open loop, {f['events_sent']} of {f['sent']} requests POST /events; the consumer "
        f"drains the stream every {result['consume_every_s']} s (entries other runs left in "
        f"the world's streams, {result.get('backlog_consumed_before', 0)}, were consumed "
        f"before the warm-up). First and last window: {f['window_minutes']} min.",
        "",
        "| errors | p50 ms | p99 first | p99 last | RSS first MB | RSS last MB | RSS growth |"
        " Redis first MB | Redis last MB | Redis growth | stream max |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {f['errors']} | {f['recommend_p50_ms']} | {f['p99_first_ms']} | {f['p99_last_ms']} |"
        f" {f['rss_first_mb']} | {f['rss_last_mb']} | {f['rss_growth']} | {f['redis_first_mb']} |"
        f" {f['redis_last_mb']} | {f['redis_growth']} | {f['stream_length_max']} |",
        "",
        f"Statuses: {f['statuses']}",
        "",
        f"503s by who refused (the app's shedder names its limit): {f.get('refusals') or 'none'}",
        "",
        f"Redis's own record of stalls over {REDIS_LATENCY_MS} ms (LATENCY LATEST; event, "
        f"the last one's second in the run, its ms, the most ms): "
        f"{f.get('redis_stalls') or 'none'}",
        "",
        f"/recommend p99, first window {f['p99_first_ms']} ms, last {f['p99_last_ms']} ms "
        f"(growth {f['p99_growth']}). The speed probe's fixed work took a median "
        f"{f['probe_first_cpu_ms']} ms of CPU in the first window and "
        f"{f['probe_last_cpu_ms']} ms in the last (machine slower by "
        f"{f['machine_slowdown']}); at equal machine speed the p99 grew "
        f"{f['p99_growth_at_equal_speed']}.",
        "",
        f"Redis streams and caches ({', '.join(BUFFERS)}): {f['buffers_first_mb']} MB at the "
        f"end of the first window, {f['buffers_last_mb']} MB at the end "
        f"(growth {f['buffers_growth']}). Per-user state ({', '.join(STATE)}) grew "
        f"{f.get('state_growth_mb')} MB over the run, {f.get('state_bytes_per_event')} bytes "
        "per accepted event: it grows with what people do (recent events up to 50 per "
        "user, seen and purchased sets, the per-item history), not with time.",
        "",
        *_breakdown_table(f["redis_mb_by_kind"]),
        *_minute_table(f["by_minute"]),
        "Goals:",
        "",
        *(f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in result["goals"].items()),
        "",
    ]
    (RESULTS / f"{name}.md").write_text("\n".join(lines))


def _minute_table(rows: list[dict[str, Any]]) -> list[str]:
    """/recommend p50 / p99, errors and the machine's load average, minute by minute."""
    if not rows:
        return []
    lines = [
        "Minute by minute (load: the machine's 1-minute load average, highest sample; "
        "probe: the speed probe's median CPU ms for its fixed work, higher is slower; "
        "handler, GC and shed from the replica's /metrics: its mean /recommend handler "
        "time, its garbage-collection pauses in the minute, the requests its shedder "
        "refused, the answers it gave from memory because Redis did not answer in time, "
        "the events it put in the outbox):",
        "",
        "| min | p50 ms | p99 ms | errors | load | probe CPU ms | handler mean ms | GC ms |"
        " shed | degraded | events spilled |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['minute']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} | {r['load_1m']} |"
            f" {r.get('probe_cpu_ms')} | {r.get('handler_mean_ms')} | {r.get('gc_ms')} |"
            f" {r.get('shed')} | {r.get('degraded')} | {r.get('spilled')} |"
        )
    return [*lines, ""]


def _breakdown_table(breakdowns: list[dict[str, Any]]) -> list[str]:
    """Redis MB per kind of key at each breakdown (every 5 min and at the end)."""
    if not breakdowns:
        return []
    kinds = sorted({kind for b in breakdowns for kind in b["mb"]})
    lines = [
        "Redis memory (MB) by kind of key (`tailwise:<project>:<kind>`; feast: the online"
        " store; overhead: Redis's own):",
        "",
        "| min | " + " | ".join(kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for b in breakdowns:
        cells = " | ".join(str(b["mb"].get(kind, 0)) for kind in kinds)
        lines.append(f"| {b['at'] / 60:.1f} | {cells} |")
    return [*lines, ""]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the soak")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--event-share", type=float, default=0.1, help="share of POST /events")
    parser.add_argument("--window", type=float, default=5.0, help="minutes compared")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds at rate, not counted")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds")
    parser.add_argument("--consume-every", type=float, default=5.0, help="seconds")
    parser.add_argument("--probe-every", type=float, default=2.0, help="seconds")
    parser.add_argument("--timeout", type=float, default=5.0, help="per request")
    parser.add_argument("--world", type=Path, help="world folder (default bench/work/...)")
    parser.add_argument("--config", action="append", default=[], help="ServingConfig k=v")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    from bench.served_world import require_positive

    require_positive(
        parser,
        args,
        ("minutes", "rate", "window", "sample_every", "consume_every", "probe_every", "timeout"),
    )
    if not 0 <= args.event_share <= 1:
        parser.error("--event-share must be between 0 and 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.served_world import DEFAULT_ROOT, PROJECT, open_world, serve
    from serving import server

    world = open_world(args.world or DEFAULT_ROOT)
    key = f"bench-{uuid.uuid4().hex[:8]}"
    config: dict[str, Any] = {"num_replicas": 1}
    for item in args.config:
        name, _, value = item.partition("=")
        config[name] = json.loads(value) if value[:1] in "0123456789-[{tf" else value
    try:
        url = serve(world, key, **config)
        users, items = world.users(), world.items()
        loop = _loop()
        watch = Watch(world.redis_url, PROJECT, args, url)
        # What other benchmarks left in the world's streams (the overload bench runs no
        # consumer) is consumed before the soak, not by the soak's first minutes.
        backlog = watch.drain()
        print(f"soak: consumed {backlog} entries left in the streams before the run", flush=True)
        try:
            watch.start_consumer()
            if args.warmup:
                warm = argparse.Namespace(**{**vars(args), "minutes": args.warmup / 60})
                loop(offer(url, key, users, items, warm))
            watch.start()
            records = loop(offer(url, key, users, items, args))
        finally:
            watch.close()
            server.stop()
    finally:
        world.stop()
    result = summarise(records, watch.samples, args, watch.breakdowns, watch.probes)
    result["consumed_entries"] = watch.consumed
    result["figures"]["redis_stalls"] = watch.stalls
    result["backlog_consumed_before"] = backlog
    result["samples"] = watch.samples
    result["probes"] = watch.probes
    return result


def _loop() -> Any:
    try:
        import uvloop

        return uvloop.run
    except ImportError:
        return asyncio.run


def main() -> None:
    args = parse_args()
    result = run(args)
    result.update(
        consume_every_s=args.consume_every,
        machine=f"{os.cpu_count()} cores (shared); Python {platform.python_version()}",
        when=datetime.now(UTC).isoformat(timespec="seconds"),
        command=shlex.join([".venv/bin/python", "bench/soak.py", *sys.argv[1:]]),
    )
    print(json.dumps(result["figures"], indent=2))
    for name, ok in result["goals"].items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    if not args.no_save:
        save(result, "soak" if args.minutes >= 30 else f"soak-{args.minutes:g}min")
    sys.exit(0 if all(result["goals"].values()) else 1)


if __name__ == "__main__":
    main()
