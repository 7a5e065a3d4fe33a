"""Benchmark: Feast offline stores over our Parquet tables, `duckdb` against `file`.

Registers the feature repo twice (throwaway projects; the second with `offline_store: file`
in a copy of feature_store.yaml) and builds the same point-in-time training set with each:
entity rows sampled from the clean events (user, event time). Reports seconds and how many
rows came back: a correct store returns exactly one row per entity row. Results:
bench/results/offline_store.{json,md}.

    .venv/bin/python bench/offline_store.py --data bench/work/clean-100000u-10000i-60d-s42 \\
        --features bench/work/features-100000u-10000i-60d-s42 --rows 10000 100000
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from tailwise.features.store import apply, teardown
from tailwise.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
FEATURES = [
    "user_profile_demographics:age",
    "user_daily_engagement:views_7d",
    "user_daily_rfm:recency_days",
    "user_daily_affinity:top_categories",
]


def run_store(kind: str, features: Path, entity_df: pd.DataFrame) -> dict:  # type: ignore[type-arg]
    work = Path(tempfile.mkdtemp(prefix=f"tw-{kind}-"))
    repo = work / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__"))
    yaml_path = repo / "feature_store.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("type: duckdb", f"type: {kind}"))
    settings = Settings(
        TAILWISE_FEATURE_REPO=repo,
        TAILWISE_FEATURES_DIR=features,
        TAILWISE_FEAST_PROJECT=f"bench_{kind}_{uuid.uuid4().hex[:6]}",
        TAILWISE_FEAST_REGISTRY=work / "registry.db",
    )
    store, _ = apply(settings)
    try:
        started = time.perf_counter()
        frame = store.get_historical_features(entity_df=entity_df, features=FEATURES).to_df()
        seconds = time.perf_counter() - started
    finally:
        teardown(settings, store)
        shutil.rmtree(work, ignore_errors=True)
    return {
        "seconds": round(seconds, 2),
        "rows_in": len(entity_df),
        "rows_out": len(frame),
        "views_7d_null": int(frame["views_7d"].isna().sum()) if "views_7d" in frame else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="clean data (events sample)")
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000])
    args = ap.parse_args()
    events = pd.read_parquet(args.data / "events", columns=["user_id", "timestamp"])
    runs = []
    for n in args.rows:
        sample = events.sample(n, random_state=0).rename(columns={"timestamp": "event_timestamp"})
        for kind in ("duckdb", "file"):
            r = {"store": kind, **run_store(kind, args.features, sample.reset_index(drop=True))}
            print(r, flush=True)
            runs.append(r)
    result = {
        "command": " ".join([".venv/bin/python", *map(shlex.quote, sys.argv)]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "features": FEATURES,
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "offline_store.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Feast offline stores: point-in-time training set",
        "",
        f"`{result['command']}` ({result['date']}); features: {', '.join(FEATURES)}",
        "",
        "| entity rows | store | seconds | rows returned | views_7d null |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['rows_in']:,} | {r['store']} | {r['seconds']} | {r['rows_out']:,} | "
        f"{r['views_7d_null']:,} |"
        for r in runs
    ]
    lines += [
        "",
        "A correct store returns one row per entity row; rows whose features are "
        "outside the ttl come back with nulls.",
    ]
    (RESULTS / "offline_store.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
