"""Benchmark: ingestion at scale (rows/s, peak memory) plus defect detection at that size.

Generates the raw data set once into bench/work/ (default: 1M people, 100k items, 60 days,
~20M events; reused when present), then runs `run_ingest` in this process and records
wall time, input rows/s, peak RSS (DuckDB runs in-process, so its memory is included), the
DuckDB memory limit, and how many injected defects were found. Results go to
bench/results/ingest_scale.json (one entry per size) and ingest_scale.md.

    .venv/bin/python bench/ingest_scale.py                       # full size
    .venv/bin/python bench/ingest_scale.py --users 100000 --items 10000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psutil

from tailwise.ingest.pipeline import run_ingest
from tailwise.params import IngestParams
from tailwise.synthetic import GenerateConfig, generate

RESULTS = Path(__file__).parent / "results"
WORK = Path(__file__).parent / "work"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--memory-limit", default="4GB", help="DuckDB memory_limit")
    ap.add_argument(
        "--detection-only",
        action="store_true",
        help="recompute the detection figures of the last run of this size",
    )
    return ap.parse_args()


class PeakRss:
    """Samples this process's RSS every 50 ms (ru_maxrss also covers it; this gives a trace)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def detection(raw: Path, clean: Path) -> dict[str, float]:
    """Share of injected defects found, per kind (the tests check the same at small size)."""
    manifest = pd.read_parquet(raw / "defects.parquet")
    merges = pd.read_parquet(clean / "user_merges.parquet")
    canon = dict(zip(merges["user_id"], merges["canonical_user_id"], strict=True))
    dups = manifest.loc[manifest["kind"] == "near_duplicate_users"]
    # Merges are only kept for people in the clean tables (consent); judge those.
    kept = set(pd.read_parquet(clean / "users.parquet", columns=["user_id"])["user_id"])
    dups = dups.loc[dups["id"].isin(kept) | dups["related_id"].isin(kept)]
    original = dict(zip(dups["id"], dups["related_id"], strict=True))
    found = sum(canon.get(d, d) == canon.get(o, o) for d, o in original.items())
    correct = sum(original.get(u, u) == original.get(c, c) for u, c in canon.items())
    q = pd.read_parquet(clean / "quarantine.parquet", columns=["column_name", "row_json"])
    q_ids = dict(
        zip(q["row_json"].str.extract(r'"event_id":"([^"]+)"')[0], q["column_name"], strict=True)
    )
    fixes = pd.read_parquet(clean / "corrections.parquet")
    fixed = set(zip(fixes["table_name"], fixes["id"], fixes["column_name"], strict=True))

    # Rows of people whose data is not kept (no consent) are held back from every output
    # by design, so they are judged only where the clean data can show them.
    raw_events = pd.read_parquet(raw / "events.parquet", columns=["event_id", "user_id"])
    owner = dict(zip(raw_events["event_id"], raw_events["user_id"], strict=False))
    keep = kept | set(merges["user_id"])

    def share(kind: str, ok) -> float:  # type: ignore[no-untyped-def]
        rows = manifest.loc[manifest["kind"] == kind]
        user = rows["id"].map(owner).where(rows["table"] == "events", rows["id"])
        unknown_user = rows["column"].eq("user_id") & rows["kind"].eq("unknown_references")
        rows = rows.loc[user.isin(keep) | unknown_user | rows["table"].eq("items")]
        hits = sum(ok(r) for r in rows.itertuples())
        return round(hits / len(rows), 6) if len(rows) else float("nan")

    return {
        "near_duplicate_recall": round(found / max(len(original), 1), 6),
        "near_duplicate_precision": round(correct / max(len(canon), 1), 6),
        "malformed_timestamps_found": share(
            "malformed_timestamps", lambda r: q_ids.get(r.id) == "timestamp"
        ),
        "unknown_references_found": share(
            "unknown_references", lambda r: q_ids.get(r.id) == r.column
        ),
        "impossible_values_found": share(
            "impossible_values", lambda r: (r.table, r.id, r.column) in fixed or r.id in q_ids
        ),
    }


def main() -> None:
    args = parse_args()
    name = f"{args.users}u-{args.items}i-{args.days}d-s{args.seed}"
    raw, clean = WORK / f"raw-{name}", WORK / f"clean-{name}"
    if not (raw / "defects.json").exists():
        print(f"generating {raw} ...", flush=True)
        generate(
            GenerateConfig(users=args.users, items=args.items, days=args.days, seed=args.seed), raw
        )
    if args.detection_only:
        path = RESULTS / "ingest_scale.json"
        runs = json.loads(path.read_text())
        for r in runs:
            if r["size"] == name and r["duckdb_memory_limit"] == args.memory_limit:
                r["detection"] = detection(raw, clean)
                print(json.dumps(r["detection"], indent=2))
                save(r)
        return
    params = IngestParams(duckdb_memory_limit=args.memory_limit)
    step_times: dict[str, float] = {}
    last = [time.perf_counter(), ""]

    def step(s: str) -> None:
        now = time.perf_counter()
        if last[1]:
            step_times[str(last[1])] = round(now - float(last[0]), 2)
        last[0], last[1] = now, s
        print(f"  step: {s}", flush=True)

    with PeakRss() as rss:
        started = time.perf_counter()
        report = run_ingest(clean, params, b"bench-key-" * 4, source=raw, step=step)
        seconds = time.perf_counter() - started
    step(" done")
    tables = report["tables"]
    rows_in = sum(t["input"] for t in tables.values())
    result = {
        "size": name,
        "command": " ".join([".venv/bin/python", *map(shlex.quote, sys.argv)]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "duckdb_memory_limit": args.memory_limit,
        "seconds": round(seconds, 1),
        "rows_in": rows_in,
        "events_in": tables["events"]["input"],
        "rows_per_s": round(rows_in / seconds),
        "events_per_s": round(tables["events"]["input"] / seconds),
        "peak_rss_mib": round(rss.peak / 2**20),
        "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "step_seconds": step_times,
        "tables": {
            k: {
                b: v[b]
                for b in (
                    "input",
                    "kept",
                    "duplicates_merged",
                    "quarantined",
                    "excluded_no_consent",
                )
            }
            for k, v in tables.items()
        },
        "detection": detection(raw, clean),
    }
    print(json.dumps(result, indent=2))
    save(result)


def save(result: dict) -> None:  # type: ignore[type-arg]
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "ingest_scale.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    same = (result["size"], result["duckdb_memory_limit"])
    runs = [r for r in runs if (r["size"], r["duckdb_memory_limit"]) != same] + [result]
    path.write_text(json.dumps(runs, indent=2) + "\n")
    lines = [
        "# Ingestion at scale",
        "",
        "| size | events in | seconds | events/s | all rows/s | peak RSS MiB | DuckDB limit "
        "| near-dup recall | near-dup precision | command |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        d = r["detection"]
        lines.append(
            f"| {r['size']} | {r['events_in']:,} | {r['seconds']} | {r['events_per_s']:,} | "
            f"{r['rows_per_s']:,} | {r['peak_rss_mib']:,} | {r['duckdb_memory_limit']} | "
            f"{d['near_duplicate_recall']:.4f} | {d['near_duplicate_precision']:.4f} | "
            f"`{r['command']}` |"
        )
    (RESULTS / "ingest_scale.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
