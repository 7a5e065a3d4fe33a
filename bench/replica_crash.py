"""Benchmark: `kill -9` of the serving replica under load; nothing acknowledged is lost.

    load threads --POST /recommend, POST /events--> app (one replica)
    after `--before` s: SIGKILL to the replica's pid (serving.server.replica_pids, from
    Ray's actor table) -> Ray Serve's controller starts a new replica -> /readyz is 200
    again (restart seconds) -> `--after` s more load -> stop
    then the consumer (tailwise.ingest.streams.consume) drains the events stream into
    Parquet: every event answered 202 must be there, once.

Reported: requests sent, answers by status, errors while the replica was down (sent from
`--timeout` s before the kill until it was ready again) and outside that window, restart
seconds, events acknowledged vs found in the stream and in the offline table, duplicates.
Goals: 0 acknowledged events lost, 0 duplicated, 0 errors outside the restart window, a
new replica ready within `--restart-timeout` s.

It serves a world of its own (bench/served_world.py: generated data, a small trained model,
a private redis-server with AOF), so the demo's data and Redis are untouched. Results:
bench/results/replica_crash.{json,md} unless `--no-save`.

    .venv/bin/python bench/replica_crash.py          # make bench-crash
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/replica_crash.py` imports bench.served_world
RESULTS = ROOT / "bench" / "results"


@dataclass
class Call:
    kind: str  # "recommend" or "event"
    sent: float  # seconds since the load started
    status: int | str  # HTTP status, "timeout" or "connection"
    event_id: str | None = None


@dataclass
class Crash:
    """What one crash under load did."""

    calls: list[Call]
    killed_pid: int
    new_pids: list[int]
    killed_at: float  # seconds since the load started
    ready_at: float | None  # a new replica answered /readyz 200; None: not in time
    timeout: float
    notes: list[str] = field(default_factory=list)

    @property
    def restart_s(self) -> float | None:
        return None if self.ready_at is None else round(self.ready_at - self.killed_at, 2)

    def in_window(self, call: Call) -> bool:
        end = self.ready_at if self.ready_at is not None else float("inf")
        return self.killed_at - self.timeout <= call.sent <= end

    def errors(self) -> tuple[list[Call], list[Call]]:
        """(errors in the restart window, errors outside it)."""
        bad = [c for c in self.calls if c.status not in (200, 202)]
        return [c for c in bad if self.in_window(c)], [c for c in bad if not self.in_window(c)]

    def acknowledged(self) -> set[str]:
        return {c.event_id for c in self.calls if c.status == 202 and c.event_id}

    def figures(self) -> dict[str, Any]:
        during, outside = self.errors()
        return {
            "sent": len(self.calls),
            "sent_recommend": sum(c.kind == "recommend" for c in self.calls),
            "sent_events": sum(c.kind == "event" for c in self.calls),
            "statuses": dict(Counter(str(c.status) for c in self.calls)),
            "errors_in_restart_window": len(during),
            "errors_in_restart_window_by_status": dict(Counter(str(c.status) for c in during)),
            "errors_outside_window": len(outside),
            "restart_s": self.restart_s,
            "acknowledged_events": len(self.acknowledged()),
        }


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def crash_during_load(
    url: str,
    write_key: str,
    users: list[str],
    items: list[str],
    threads: int = 4,
    before: float = 5.0,
    after: float = 5.0,
    restart_timeout: float = 300.0,
    timeout: float = 5.0,
) -> Crash:
    """Load (every other request an event), SIGKILL the replica, wait for a new one, load
    on; the Ray instance serving `url` must be the one this process is connected to."""
    from bench.served_world import post
    from serving.server import replica_pids

    pids = replica_pids()
    if not pids:
        raise RuntimeError("no live replica of the app in Ray's actor table")
    victim = pids[0]
    calls: list[Call] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def load(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            user = users[(worker * 7919 + n) % len(users)]
            sent = time.monotonic() - t0
            if n % 2:
                status = post(f"{url}/recommend", {"user_id": user, "k": 10}, None, timeout)
                calls.append(Call("recommend", sent, status))
                continue
            event_id = f"crash-{uuid.uuid4().hex}"
            event = {
                "event_id": event_id,
                "user_id": user,
                "item_id": items[(worker + n) % len(items)],
                "event_type": "product_view" if n % 3 else "purchase",
                "timestamp": datetime.now(UTC).isoformat(),
            }
            status = post(f"{url}/events", event, write_key, timeout)
            calls.append(Call("event", sent, status, event_id))

    workers = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(threads)]
    for worker in workers:
        worker.start()
    ready_at: float | None = None
    new: list[int] = []
    try:
        time.sleep(before)
        killed_at = time.monotonic() - t0
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + restart_timeout
        while time.monotonic() < deadline:
            new = [p for p in replica_pids() if p != victim]
            if new and _ready(url):
                ready_at = time.monotonic() - t0
                break
            time.sleep(0.2)
        if ready_at is not None:
            time.sleep(after)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=timeout + 5)
    return Crash(sorted(calls, key=lambda c: c.sent), victim, new, killed_at, ready_at, timeout)


def stream_event_ids(client: Any, stream: str) -> list[str]:
    """Event ids of the entries still in the events stream (read, not consumed)."""
    return [json.loads(fields[b"e"])["event_id"] for _, fields in client.xrange(stream)]


def offline_check(client: Any, keys: Any, acknowledged: set[str]) -> dict[str, Any]:
    """Consume the streams into a fresh folder; acknowledged events found there, once."""
    import pandas as pd

    from tailwise.ingest.streams import consume

    in_stream = set(stream_event_ids(client, keys.events)) & acknowledged
    with tempfile.TemporaryDirectory() as out:
        while consume(client, keys, Path(out)).read:
            pass
        events = Path(out) / "events"
        ids = pd.read_parquet(events)["event_id"] if events.exists() else pd.Series([], dtype=str)
    found = ids[ids.isin(acknowledged)]
    return {
        "acknowledged_in_stream": len(in_stream),
        "acknowledged_in_offline_table": found.nunique(),
        "acknowledged_lost": len(acknowledged - set(found)),
        "duplicated_in_offline_table": int(found.duplicated().sum()),
    }


def goals(figures: dict[str, Any], restart_timeout: float) -> dict[str, bool]:
    return {
        # every answer 202 is tracked by its event id: none tracked would make "none lost"
        # say nothing
        "every event answered 202 tracked": figures["acknowledged_events"]
        == figures["statuses"].get("202", 0)
        > 0,
        "no acknowledged event lost": figures["acknowledged_lost"] == 0,
        "no event duplicated": figures["duplicated_in_offline_table"] == 0,
        "no error outside the restart window": figures["errors_outside_window"] == 0,
        f"a new replica ready within {restart_timeout:.0f} s": figures["restart_s"] is not None,
    }


def save(result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "replica_crash.json").write_text(json.dumps(result, indent=2) + "\n")
    f = result["figures"]
    lines = [
        "# kill -9 of the serving replica under load",
        "",
        f"{result['machine']}; {result['when']}; `{result['command']}`",
        "",
        f"{result['threads']} closed-loop clients, every other request a POST /events; "
        f"SIGKILL to the one replica after {result['before_s']} s, {result['after_s']} s of "
        "load after the new replica is ready; then the consumer drains the stream.",
        "",
        "| sent | statuses | errors while restarting | errors outside | restart s |"
        " events 202 | in stream | in offline table | lost | duplicated |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {f['sent']} | {f['statuses']} | {f['errors_in_restart_window']} "
        f"{f['errors_in_restart_window_by_status']} | {f['errors_outside_window']} |"
        f" {f['restart_s']} | {f['acknowledged_events']} | {f['acknowledged_in_stream']} |"
        f" {f['acknowledged_in_offline_table']} | {f['acknowledged_lost']} |"
        f" {f['duplicated_in_offline_table']} |",
        "",
        "Goals:",
        "",
        *(f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in result["goals"].items()),
        "",
    ]
    (RESULTS / "replica_crash.md").write_text("\n".join(lines))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, help="world folder (default bench/work/...)")
    parser.add_argument("--threads", type=int, default=4, help="concurrent clients")
    parser.add_argument("--before", type=float, default=10.0, help="load seconds before kill")
    parser.add_argument("--after", type=float, default=10.0, help="load seconds after ready")
    parser.add_argument("--restart-timeout", type=float, default=300.0)
    parser.add_argument("--timeout", type=float, default=5.0, help="per request")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    from bench.served_world import require_positive

    require_positive(parser, args, ("threads", "before", "after", "restart_timeout", "timeout"))
    return args


def main() -> None:
    import redis

    from bench.served_world import DEFAULT_ROOT, PROJECT, open_world, serve
    from serving import server
    from serving.keys import Keys

    args = parse_args()
    world = open_world(args.world or DEFAULT_ROOT)
    key = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        client, keys = redis.Redis.from_url(world.redis_url), Keys(PROJECT)
        offline_check(client, keys, set())  # earlier runs' events out of the way
        try:
            url = serve(world, key, num_replicas=1)
            crash = crash_during_load(
                url, key, world.users(), world.items(), args.threads, args.before, args.after,
                args.restart_timeout, args.timeout,
            )  # fmt: skip
        finally:
            server.stop()
        figures = {**crash.figures(), **offline_check(client, keys, crash.acknowledged())}
    finally:
        world.stop()
    result = {
        "figures": figures,
        "goals": goals(figures, args.restart_timeout),
        "killed_pid": crash.killed_pid,
        "new_pids": crash.new_pids,
        "threads": args.threads,
        "before_s": args.before,
        "after_s": args.after,
        "machine": f"{os.cpu_count()} cores (shared); Python {platform.python_version()}",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([".venv/bin/python", "bench/replica_crash.py", *sys.argv[1:]]),
    }
    print(json.dumps(figures, indent=2))
    for name, ok in result["goals"].items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    if not args.no_save:
        save(result)
    sys.exit(0 if all(result["goals"].values()) else 1)


if __name__ == "__main__":
    main()
