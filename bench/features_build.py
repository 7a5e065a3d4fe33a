"""Benchmark: the feature build at scale (rows in/out per table, seconds, peak memory).

Builds features from a clean directory (default: the 1M-user, ~20M-event set written by
bench/ingest_scale.py) into bench/work/features-<size>/, in this process, and records wall
time, rows/s, peak RSS (DuckDB runs in-process, so its memory is included), per-step
seconds and the p50 latency of `realtime_state` on 20 events (the online path). Results
go to bench/results/features_build.json (one entry per size) and features_build.md.

    .venv/bin/python bench/features_build.py
    .venv/bin/python bench/features_build.py --clean bench/work/clean-20000u-2000i-60d-s42
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from tailwise.features.build import build_features
from tailwise.features.config import FeaturesParams
from tailwise.features.profiles import item_category
from tailwise.features.realtime import realtime_state

sys.path.insert(0, str(Path(__file__).parent))
from ingest_scale import PeakRss

RESULTS = Path(__file__).parent / "results"
WORK = Path(__file__).parent / "work"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean", type=Path, default=WORK / "clean-1000000u-100000i-60d-s42")
    ap.add_argument("--memory-limit", default="4GB", help="DuckDB memory_limit")
    ap.add_argument("--keep", action="store_true", help="keep the built feature tables")
    return ap.parse_args()


def realtime_p50(clean: Path, n_events: int = 20, repeats: int = 300) -> float:
    """Median ms of realtime_state on one user's last `n_events` events."""
    items = pd.read_parquet(clean / "items.parquet", columns=["item_id", "category"])
    day = sorted((clean / "events").iterdir())[-1]
    events = pd.read_parquet(day)
    busiest = events["user_id"].value_counts().index[0]
    sample = events.loc[events["user_id"] == busiest].tail(n_events)
    cats = item_category(items)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        realtime_state(sample, cats).iloc[-1]
        times.append(time.perf_counter() - t0)
    return round(float(np.median(times)) * 1e3, 3)


def main() -> None:
    args = parse_args()
    size = args.clean.name.removeprefix("clean-")
    out = WORK / f"features-{size}"
    params = FeaturesParams(duckdb_memory_limit=args.memory_limit)

    def progress(step: str, frac: float) -> None:
        print(f"  {frac:6.1%} {step}", flush=True)

    with PeakRss() as rss:
        started = time.perf_counter()
        summary = build_features(args.clean, out, params, progress)
        seconds = time.perf_counter() - started
    manifest = json.loads((out / "features_manifest.json").read_text())
    result = {
        "size": size,
        "command": " ".join([".venv/bin/python", *map(shlex.quote, sys.argv)]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "duckdb_memory_limit": args.memory_limit,
        "seconds": round(seconds, 1),
        "rows_in": {
            "events": summary.events_in,
            "users": summary.users_in,
            "items": summary.items_in,
        },
        "events_per_s": round(summary.events_in / seconds),
        "rows_out": summary.rows,
        "bytes_out": {
            name: (out / t["path"]).stat().st_size for name, t in manifest["tables"].items()
        },
        "step_seconds": summary.step_seconds,
        "peak_rss_mib": round(rss.peak / 2**20),
        "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "segments": summary.segment_names,
        "realtime_state_p50_ms_20_events": realtime_p50(args.clean),
    }
    print(json.dumps(result, indent=2))
    save(result)
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


def save(result: dict) -> None:  # type: ignore[type-arg]
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "features_build.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs = [r for r in runs if r["size"] != result["size"]] + [result]
    path.write_text(json.dumps(runs, indent=2) + "\n")
    lines = [
        "# Feature build at scale",
        "",
        "| size | events in | seconds | events/s | peak RSS MiB | DuckDB limit | user_daily rows "
        "| item_daily rows | user_realtime rows | realtime_state p50 (20 events) | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        o = r["rows_out"]
        lines.append(
            f"| {r['size']} | {r['rows_in']['events']:,} | {r['seconds']} | "
            f"{r['events_per_s']:,} | {r['peak_rss_mib']:,} | {r['duckdb_memory_limit']} | "
            f"{o['user_daily']:,} | {o['item_daily']:,} | {o['user_realtime']:,} | "
            f"{r['realtime_state_p50_ms_20_events']} ms | `{r['command']}` |"
        )
    lines += ["", "Per-step seconds of the latest run per size:", ""]
    for r in runs:
        steps = ", ".join(f"{k} {v}" for k, v in r["step_seconds"].items())
        lines.append(f"- {r['size']}: {steps}")
    (RESULTS / "features_build.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
