"""Benchmark: the feature build's two engines on one data set (DuckDB, Ray with 1 and 2 workers).

Each build runs in its own child process on the same clean directory (default: 100k users,
10k items, 60 days, ~2M events, written by `bench/ingest_scale.py --users 100000 --items
10000`). The parent samples the child's whole process tree (driver, Ray's GCS, raylet and
workers) every 200 ms and keeps the peak of the summed PSS (proportional set size, so Ray's
shared object store is not counted once per process) and the CPU seconds (user + system)
each process of the tree used, as last sampled: on this shared machine wall time depends
on other load, CPU seconds much less, so events per CPU second is the capacity figure. A
Ray child starts Ray with
`--workers` CPUs before the build, so the build's seconds exclude Ray's start (recorded
apart). The row counts of every table must agree between engines, else the run fails
(tests/features/test_sharded.py checks full row-for-row parity at a small size).
Results: bench/results/features_build_ray.json (one entry per size) and .md.

    .venv/bin/python bench/features_build_ray.py
    .venv/bin/python bench/features_build_ray.py --clean bench/work/clean-20000u-2000i-60d-s42
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
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

RESULTS = Path(__file__).parent / "results"
WORK = Path(__file__).parent / "work"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean", type=Path, default=WORK / "clean-100000u-10000i-60d-s42")
    ap.add_argument("--workers", default="1,2", help="Ray worker counts to run, comma-separated")
    ap.add_argument("--memory-limit", default="4GB", help="DuckDB memory_limit per session")
    ap.add_argument("--one", choices=["duckdb", "ray"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return ap.parse_args()


def child(args: argparse.Namespace) -> None:
    """One build in this process; prints its summary as the last line of JSON."""
    from tailwise.features.build import build_features
    from tailwise.features.config import FeaturesParams

    ray_start = 0.0
    if args.one == "ray":
        import ray

        for attempt in range(3):
            # Ray gives its raylet 30 s to register, which a loaded shared machine can miss.
            t0 = time.perf_counter()
            try:
                ray.init(num_cpus=args.n, include_dashboard=False, log_to_driver=False)
                break
            except Exception as exc:
                ray.shutdown()
                print(f"ray.init attempt {attempt + 1} failed: {exc}", file=sys.stderr)
        else:
            raise SystemExit("Ray did not start in 3 attempts")
        ray_start = time.perf_counter() - t0
    params = FeaturesParams(duckdb_memory_limit=args.memory_limit, engine=args.one, workers=args.n)
    started = time.perf_counter()
    summary = build_features(args.clean, args.out, params)
    seconds = time.perf_counter() - started
    body = {
        "seconds": round(seconds, 1),
        "ray_start_seconds": round(ray_start, 1),
        "events_in": summary.events_in,
        "rows_out": summary.rows,
        "step_seconds": summary.step_seconds,
        "segments": summary.segment_names,
    }
    print(json.dumps(body))


class TreePss:
    """Peak summed PSS of a process and all its descendants, and the CPU seconds each used
    (as last seen), sampled every 200 ms."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for proc in procs:
                try:
                    total += proc.memory_full_info().pss
                    times = proc.cpu_times()
                    self.cpu[proc.pid] = times.user + times.system
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.peak = max(self.peak, total)
            time.sleep(0.2)

    def __enter__(self) -> TreePss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_one(args: argparse.Namespace, engine: str, n: int) -> dict[str, Any]:
    out = WORK / f"features-{engine}-{n}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, __file__, "--one", engine, "--n", str(n), "--clean", str(args.clean)]
    cmd += ["--out", str(out), "--memory-limit", args.memory_limit]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    with TreePss(proc.pid) as pss:
        stdout, _ = proc.communicate()
    wall = time.perf_counter() - started
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode:
        raise SystemExit(f"{engine} with {n} worker(s) failed (exit {proc.returncode})")
    body = json.loads(stdout.strip().splitlines()[-1])
    body.update(
        engine=engine,
        workers=n,
        process_seconds=round(wall, 1),
        events_per_s=round(body["events_in"] / body["seconds"]),
        events_per_s_per_worker=round(body["events_in"] / body["seconds"] / n),
        peak_pss_mib=round(pss.peak / 2**20),
        load_1m_before_after=[round(load_before, 2), round(os.getloadavg()[0], 2)],
        cpu_seconds=round(sum(pss.cpu.values()), 1),
        events_per_cpu_s=round(body["events_in"] / sum(pss.cpu.values())),
    )
    print(json.dumps(body, indent=2), flush=True)
    return body


def main() -> None:
    args = parse_args()
    if args.one:
        child(args)
        return
    load_before = os.getloadavg()[0]
    # The DuckDB engine's session has 2 threads (params.yaml); it is the one-machine default.
    runs = [run_one(args, "duckdb", 2)]
    runs += [run_one(args, "ray", int(n)) for n in args.workers.split(",")]
    reference = runs[0]["rows_out"]
    for r in runs[1:]:
        if r["rows_out"] != reference:
            raise SystemExit(f"ray with {r['workers']}: rows {r['rows_out']} != duckdb {reference}")
    result = {
        "size": args.clean.name.removeprefix("clean-"),
        "command": " ".join([".venv/bin/python", *map(shlex.quote, sys.argv)]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "load_average_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "duckdb_memory_limit": args.memory_limit,
        "events_in": runs[0]["events_in"],
        "rows_out": reference,
        "runs": runs,
    }
    save(result)


def save(result: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "features_build_ray.json"
    entries = json.loads(path.read_text()) if path.exists() else []
    entries = [e for e in entries if e["size"] != result["size"]] + [result]
    path.write_text(json.dumps(entries, indent=2) + "\n")
    lines = [
        "# Feature build: DuckDB engine vs Ray engine",
        "",
        "Same clean data, same tables (row counts checked equal). `DuckDB` is one process with",
        "a 2-thread session; `ray N` runs the shard tasks on N worker CPUs (one DuckDB thread",
        "each). Build seconds exclude Ray's start (its own column); CPU seconds and peak PSS",
        "cover the whole process tree (driver, Ray's GCS, raylet and workers) from start to",
        "exit, Ray's start included. The machine is shared: wall times depend on the load",
        "average recorded with each run, CPU seconds much less.",
        "",
    ]
    for e in entries:
        lines += [
            f"## {e['size']}: {e['events_in']:,} events, {e['date']}",
            "",
            f"Command: `{e['command']}`; {e['machine']['cores']} cores, load average (1 min) "
            f"before/after {e['load_average_1m_before_after']}.",
            "",
            "| engine | workers | build s | Ray start s | events/s | events/s per worker "
            "| CPU s (tree) | events per CPU s | peak PSS MiB | load 1m before/after "
            "| steps (s) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for r in e["runs"]:
            steps = ", ".join(f"{k} {v}" for k, v in r["step_seconds"].items())
            per = f"{r['events_per_s_per_worker']:,}" if r["engine"] == "ray" else "-"
            lines.append(
                f"| {r['engine']} | {r['workers'] if r['engine'] == 'ray' else '-'} | "
                f"{r['seconds']} | {r['ray_start_seconds'] if r['engine'] == 'ray' else '-'} | "
                f"{r['events_per_s']:,} | {per} | {r['cpu_seconds']} | "
                f"{r['events_per_cpu_s']:,} | {r['peak_pss_mib']:,} | "
                f"{r['load_1m_before_after']} | {steps} |"
            )
        rows = ", ".join(f"{k} {v:,}" for k, v in e["rows_out"].items())
        lines += ["", f"Rows out (every engine): {rows}.", ""]
    (RESULTS / "features_build_ray.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
