"""Benchmark: synthetic data generation at scale (rows/s and peak RSS).

Runs `tailwise.synthetic.generate` once in this process at the given size
(default: 1M users, 100k items, 60 days, ~20M events), samples RSS after every
chunk, and records the run in bench/results/generate_scale.json (one entry per
size, replaced on re-run) plus a markdown table in generate_scale.md.

    .venv/bin/python bench/generate_scale.py                    # full size
    .venv/bin/python bench/generate_scale.py --users 100000 --items 10000
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
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from tailwise.synthetic import GenerateConfig, generate

RESULTS = Path(__file__).parent / "results"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--chunk-users", type=int, default=20_000)
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: a temp dir, deleted afterwards)",
    )
    ap.add_argument("--note", default="", help="free text stored with the run")
    return ap.parse_args()


def run(args: argparse.Namespace) -> dict:
    cfg = GenerateConfig(
        users=args.users,
        items=args.items,
        days=args.days,
        seed=args.seed,
        chunk_users=args.chunk_users,
    )
    out = args.out or Path(tempfile.mkdtemp(prefix="tailwise-bench-"))
    proc = psutil.Process()
    rss_mb: list[float] = []

    def progress(done: int) -> None:
        rss_mb.append(round(proc.memory_info().rss / 2**20, 1))
        print(f"\r{done:>10,} / {cfg.users:,} users  rss {rss_mb[-1]:,.0f} MiB", end="", flush=True)

    load_before = os.getloadavg()
    started = time.perf_counter()
    summary = generate(cfg, out, progress=progress)
    seconds = time.perf_counter() - started
    print()
    size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    if args.out is None:
        shutil.rmtree(out)
    total_rows = sum(v for k, v in summary.rows.items() if k in ("users", "items", "events"))
    return {
        "label": f"{cfg.users}u_{cfg.items}i_{cfg.days}d",
        "command": " ".join([os.path.relpath(sys.executable), *map(shlex.quote, sys.argv)]),
        "note": args.note,
        "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "config": json.loads(cfg.model_dump_json()),
        "rows": summary.rows,
        "seconds": round(seconds, 1),
        "events_per_second": round(summary.rows["events"] / seconds),
        "raw_rows_per_second": round(total_rows / seconds),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_mib_after_chunks": _sample(rss_mb),
        "output_mib": round(size_mb, 1),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _sample(values: list[float], k: int = 10) -> list[float]:
    """At most k evenly spaced RSS samples (first and last included)."""
    if len(values) <= k:
        return values
    step = (len(values) - 1) / (k - 1)
    return [values[round(i * step)] for i in range(k)]


def save(result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "generate_scale.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    runs = [r for r in runs if r["label"] != result["label"]] + [result]
    runs.sort(key=lambda r: r["config"]["users"])
    path.write_text(
        json.dumps({"benchmark": "synthetic generate scale", "runs": runs}, indent=2) + "\n"
    )
    lines = [
        "# Synthetic data generation at scale",
        "",
        "| users | items | days | events | seconds | events/s | raw rows/s | "
        "peak RSS MiB | output MiB | cores | date |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        c = r["config"]
        lines.append(
            f"| {c['users']:,} | {c['items']:,} | {c['days']} | {r['rows']['events']:,}"
            f" | {r['seconds']} | {r['events_per_second']:,} | "
            f"{r['raw_rows_per_second']:,} | {r['peak_rss_mib']:,} | {r['output_mib']:,}"
            f" | {r['machine']['cores']} | {r['date'][:10]} |"
        )
    lines += ["", "Commands:", ""] + [f"- `{r['command']}`" for r in runs]
    lines += ["", "Notes (shared, noisy 2-core machine; load average before/after):", ""]
    lines += [
        f"- {r['label']}: load {r['load_average_1m_before_after']}. {r['note']}" for r in runs
    ]
    lines += ["", "RSS (MiB) sampled after chunks, first to last:", ""]
    lines += [f"- {r['label']}: {r['rss_mib_after_chunks']}" for r in runs]
    (RESULTS / "generate_scale.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    result = run(parse_args())
    save(result)
    print(
        json.dumps(
            {
                k: result[k]
                for k in ("label", "rows", "seconds", "events_per_second", "peak_rss_mib")
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
