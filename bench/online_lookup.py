"""Benchmark: materialisation into Redis and online feature lookups, Feast SDK vs fast path.

Builds (or reuses) generated data at the given size under bench/work/, registers the
feature repo under a throwaway Feast project, materialises it into the local Redis
(timed, rows/s), then times in one run, each for a bounded number of requests:
  - SDK, one user + request context: store.get_online_features(retrieval_v1 service)
  - SDK, one user + 100 items: store.get_online_features(ranking_v1, 100 entity rows)
  - fast path, one user + context: one HMGET in Feast's layout + the same on-demand
    transformation function Feast runs (called directly)
  - fast path, one user + 100 items: the above + in-memory item columns
Tears the project down at the end (its Redis keys only). Results:
bench/results/online_lookup.{json,md}.

    .venv/bin/python bench/online_lookup.py --users 100000 --items 10000
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis

from tailwise.features.build import build_features
from tailwise.features.config import FeaturesParams
from tailwise.features.online import ItemTable, OnlineFeatures
from tailwise.features.store import apply, materialize, teardown
from tailwise.ingest.pipeline import run_ingest
from tailwise.params import IngestParams
from tailwise.settings import Settings
from tailwise.synthetic import GenerateConfig, generate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "work"
USER_VIEWS = [
    "user_profile_demographics",
    "user_daily_engagement",
    "user_daily_rfm",
    "user_daily_affinity",
    "user_daily_context",
    "user_realtime_session",
]


def prepare(users: int, items: int) -> tuple[Path, Path]:
    name = f"{users}u-{items}i-60d-s42"
    raw, clean, feats = WORK / f"raw-{name}", WORK / f"clean-{name}", WORK / f"features-{name}"
    if not (raw / "defects.json").exists():
        generate(GenerateConfig(users=users, items=items, days=60, seed=42), raw)
    if not (clean / "quality_report.json").exists():
        run_ingest(clean, IngestParams(), b"bench-key-" * 4, source=raw)
    if not (feats / "features_manifest.json").exists():
        build_features(clean, feats, FeaturesParams())
    return clean, feats


def timed(fn: Any, n: int, budget_s: float) -> dict[str, float]:
    fn()  # warm
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < n and time.perf_counter() < deadline:
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    q = np.percentile(samples, [50, 99])
    return {
        "n": len(samples),
        "p50_ms": round(float(q[0]), 3),
        "p99_ms": round(float(q[1]), 3),
        "mean_ms": round(statistics.fmean(samples), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=60.0, help="time budget per measurement")
    args = ap.parse_args()
    clean, feats = prepare(args.users, args.items)
    project = f"bench_{uuid.uuid4().hex[:8]}"
    settings = Settings(
        TAILWISE_FEATURE_REPO=ROOT / "feature_repo",
        TAILWISE_FEATURES_DIR=feats,
        TAILWISE_FEAST_PROJECT=project,
        TAILWISE_FEAST_REGISTRY=WORK / f"registry-{project}.db",
    )
    store, _ = apply(settings)
    try:
        result = measure(store, settings, feats, args)
        result["realtime_update"] = measure_push(store, settings, clean, feats, args)
    finally:
        teardown(settings, store)
        (WORK / f"registry-{project}.db").unlink(missing_ok=True)
    result.update(
        {
            "size": f"{args.users} users, {args.items} items, 60 days",
            "command": " ".join([".venv/bin/python", *map(shlex.quote, sys.argv)]),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "cores": os.cpu_count(),
        }
    )
    print(json.dumps(result, indent=2))
    save(result)


def measure(store: Any, settings: Settings, feats: Path, args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    rows = {
        v: pd.read_parquet(feats / f"{t}.parquet", columns=[k]).drop_duplicates().shape[0]
        for v, t, k in [("users", "user_profile", "user_id"), ("items", "item_catalog", "item_id")]
    }
    started = time.perf_counter()
    materialize(settings)
    seconds = time.perf_counter() - started
    views = store.list_feature_views()
    written = sum(
        rows["items" if v.entities == ["item"] else "users"]
        for v in views
        if v.name != "user_realtime_session"
    )
    client = redis.Redis.from_url(settings.redis_url)
    users = pd.read_parquet(feats / "user_profile.parquet", columns=["user_id"])["user_id"]
    items = pd.read_parquet(feats / "item_catalog.parquet", columns=["item_id"])["item_id"]
    rng = np.random.default_rng(0)
    pick_user = lambda: str(users.iat[int(rng.integers(len(users)))])  # noqa: E731
    pick_items = lambda: list(items.iloc[rng.integers(len(items), size=100)])  # noqa: E731
    now = int(time.time())
    ctx = {"request_device": "mobile", "request_country": "DE", "request_ts": now}
    retrieval, ranking = (
        store.get_feature_service("retrieval_v1"),
        store.get_feature_service("ranking_v1"),
    )
    fast = OnlineFeatures(
        client, store.project, "user_id", [store.get_feature_view(v) for v in USER_VIEWS]
    )
    udf = store.get_on_demand_feature_view("user_request_context").feature_transformation.udf
    item_views = [
        store.get_feature_view(v) for v in ("item_profile_catalog", "item_daily_popularity")
    ]
    table = ItemTable.from_online(client, store.project, item_views, list(items))

    def fast_user() -> dict[str, Any]:
        f = fast.read(pick_user())
        f.update(
            {
                k: v[0]
                for k, v in udf(
                    {**{k: [v] for k, v in f.items()}, **{k: [v] for k, v in ctx.items()}}
                ).items()
            }
        )
        return f

    n, budget = args.requests, args.seconds
    return {
        "materialize": {
            "seconds": round(seconds, 1),
            "entity_rows_written": written,
            "rows_per_s": round(written / seconds),
        },
        "sdk_user_context": timed(
            lambda: store.get_online_features(
                features=retrieval, entity_rows=[{"user_id": pick_user(), **ctx}]
            ),
            n,
            budget,
        ),
        "sdk_user_100_items": timed(
            lambda: store.get_online_features(
                features=ranking,
                entity_rows=[{"user_id": pick_user(), "item_id": i, **ctx} for i in pick_items()],
            ),
            n // 4,
            budget,
        ),
        "fast_user_context": timed(fast_user, n, budget),
        "fast_user_100_items": timed(lambda: (fast_user(), table.lookup(pick_items())), n, budget),
    }


def measure_push(
    store: Any, settings: Settings, clean: Path, feats: Path, args: argparse.Namespace
) -> dict:  # type: ignore[type-arg]
    """An event arrives: recompute the session state from the user's last 20 events, write it."""
    from tailwise.features.profiles import item_category
    from tailwise.features.realtime import realtime_state

    events = pd.read_parquet(
        clean / "events",
        columns=["event_id", "user_id", "item_id", "event_type", "timestamp", "session_id"],
    )
    busiest = events["user_id"].value_counts().index[0]
    recent = events.loc[events["user_id"] == busiest].sort_values("timestamp").tail(20)
    categories = item_category(pd.read_parquet(clean / "items.parquet"))
    view = store.get_feature_view("user_realtime_session")
    fast = OnlineFeatures(
        redis.Redis.from_url(settings.redis_url), store.project, "user_id", [view]
    )
    names = [f.name for f in view.features]

    def direct() -> None:
        state = realtime_state(recent, categories).iloc[-1]
        fast.write(busiest, view.name, {n: state[n] for n in names}, datetime.now(UTC))

    def sdk() -> None:
        state = realtime_state(recent, categories).iloc[[-1]][["user_id", *names]]
        now = datetime.now(UTC)
        store.push("user_realtime_push", state.assign(event_timestamp=now, created_timestamp=now))

    return {
        "direct_write": timed(direct, args.requests // 4, args.seconds),
        "sdk_push": timed(sdk, args.requests // 8, args.seconds),
        "state_only": timed(
            lambda: realtime_state(recent, categories), args.requests // 4, args.seconds
        ),
    }


def save(result: dict) -> None:  # type: ignore[type-arg]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "online_lookup.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["materialize"]
    lines = [
        "# Online feature lookups and materialisation",
        "",
        f"{result['size']}; {result['cores']} cores; {result['date']}; `{result['command']}`",
        "",
        f"Materialisation into Redis: {m['entity_rows_written']:,} entity rows "
        f"(latest per entity and view) in {m['seconds']} s = {m['rows_per_s']:,} rows/s.",
        "",
        "| lookup | path | p50 ms | p99 ms | requests |",
        "|---|---|---|---|---|",
    ]
    for key, label, path in [
        ("sdk_user_context", "1 user + context", "Feast SDK get_online_features (retrieval_v1)"),
        ("fast_user_context", "1 user + context", "HMGET in Feast layout + same on-demand UDF"),
        ("sdk_user_100_items", "1 user + 100 items", "Feast SDK get_online_features (ranking_v1)"),
        ("fast_user_100_items", "1 user + 100 items", "HMGET + in-memory item columns"),
    ]:
        r = result[key]
        lines.append(f"| {label} | {path} | {r['p50_ms']} | {r['p99_ms']} | {r['n']} |")
    for key, label in [
        ("state_only", "session state from the last 20 events (realtime_state)"),
        ("direct_write", "state + direct write in Feast's layout"),
        ("sdk_push", "state + Feast SDK store.push"),
    ]:
        r = result["realtime_update"][key]
        lines.append(
            f"| event -> real-time view | {label} | {r['p50_ms']} | {r['p99_ms']} | {r['n']} |"
        )
    sdk, fast = result["sdk_user_100_items"]["p50_ms"], result["fast_user_100_items"]["p50_ms"]
    lines += [
        "",
        f"1 user + 100 items: the fast path's p50 is {sdk / fast:.0f}x lower than the SDK's.",
    ]
    (RESULTS / "online_lookup.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
