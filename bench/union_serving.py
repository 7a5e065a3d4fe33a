"""Benchmark: a union version's request path in one process (candidates, features, rank).

Builds (or reuses, under bench/work/union_serving/) a generated data set, fits the union's
candidate sources (tailwise.candidates.default_sources, the profile source included: its
profile table built as `tailwise features build` builds it) on it and trains a union ranker the
way training does (training.union, params.yaml's ranker with `--trees` trees and
candidates: union; the two-tower source left out, and Feast stood in by a store that serves
no view, so the ranker reads the union's own features: ~42 of them). Each sampled user's
Redis state (recent list and history hash, as serving.history and serving.events keep them)
is built before the clock starts; then, over `--calls` requests cycling through the users,
it times in this process (no HTTP, no Redis, no Feast lookups):

  events      serving.union.user_events: the recent list's JSON and the hash as events
  candidates  UnionServing.candidates: every source's top n_per_source (the profile
              source reading the user's profile values from the row), fusion, the
              n_candidates kept, their source, item and user features
  matrix      serving.ranking.ranking_matrix + the union's columns (with_columns)
  rank        ModelBundle.rank: XGBoost's inplace_predict, then UnionServing.scores
  total       the four together

Medians and p99 in ms of thread CPU time (time.thread_time) and of wall time for total.
Writes bench/results/union_serving.json and .md (entry `--label`).

    nice -n 19 .venv/bin/python bench/union_serving.py --label first
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/union_serving.py` imports bench.ranking_step
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "work" / "union_serving"
STAGES = ("events", "candidates", "matrix", "rank", "total", "total_wall")


class NoViews:
    """A Feast store whose ranking service has no feature view (see the docstring)."""

    def get_feature_service(self, name: str) -> Any:
        return SimpleNamespace(feature_view_projections=[])

    def get_historical_features(self, entity_df: pd.DataFrame, features: Any) -> Any:
        return SimpleNamespace(to_df=lambda: entity_df.copy())


def data(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Clean events, items and user profiles of the generated set (generated and ingested
    once; the profiles as the feature build makes them)."""
    from tailwise.features.profiles import user_profile
    from tailwise.ingest.pipeline import run_ingest
    from tailwise.params import IngestParams
    from tailwise.synthetic import GenerateConfig, generate

    root = WORK / f"u{args.users}-i{args.items}-d{args.days}-s{args.seed}"
    if not (root / "clean" / "events").is_dir():
        config = GenerateConfig(users=args.users, items=args.items, days=args.days, seed=args.seed)
        generate(config, root / "raw")
        run_ingest(root / "clean", IngestParams(), b"b" * 40, source=root / "raw")
    events = pd.read_parquet(root / "clean" / "events")
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    users = pd.read_parquet(root / "clean" / "users.parquet")
    first = events.groupby("user_id")["timestamp"].min()
    profiles = user_profile(users, first, pd.Timestamp.now(tz="UTC"))
    return events, pd.read_parquet(root / "clean" / "items.parquet"), profiles


def version(
    events: pd.DataFrame,
    items: pd.DataFrame,
    profiles: pd.DataFrame,
    args: argparse.Namespace,
    folder: Path,
):
    """The union version's sources and ranker in `folder`, and its bundle for serving."""
    import yaml

    from serving.bundle import ColdStart, ModelBundle
    from training.config import SplitParams
    from training.ranker import RankerConfig
    from training.ranker import save as save_ranker
    from training.union import fit_sources, fit_union_ranker, union_labelled_candidates

    ranker = dict(yaml.safe_load((ROOT / "params.yaml").read_text())["training"]["ranker"])
    ranker |= {"candidates": "union", "two_tower_source": False, "n_estimators": args.trees}
    ranker |= {"validation_share": 0, "max_train_users": 1000, "n_jobs": 1}
    cfg = RankerConfig(**ranker)
    lists = union_labelled_candidates(
        None, events, items, cfg, SplitParams(), False, profiles=profiles
    )
    result = fit_union_ranker(NoViews(), lists, cfg)
    cut = events["timestamp"].max() + pd.Timedelta(seconds=1)
    fit_sources(events, cut, items, False, profiles=profiles).save(folder / "sources")
    save_ranker(result, folder / "ranker")
    booster = result.model.get_booster()
    booster.set_param({"nthread": 1})
    catalogue = np.array(sorted(set(items["item_id"].astype(str))), dtype=object)
    bundle = ModelBundle(
        version="union-bench",
        folder=folder,
        manifest={"recommend": {"allow_repeats": False}},
        inputs=[],
        item_ids=catalogue,
        item_vectors=np.zeros((len(catalogue), 2), np.float32),
        ranker=booster,
        ranker_features=result.feature_names,
        categories=result.categories,
        cold_start=ColdStart(),
        ranker_config=result.config.model_dump(),
    )
    return bundle, cut


def states(events: pd.DataFrame, users: list[str]) -> dict[str, tuple[Any, list[bytes]]]:
    """user -> (history hash as decoded, recent list entries): what Redis would hold."""
    from serving.events import event_json
    from serving.history import UserHistory
    from serving.keys import RECENT_MAX
    from tailwise.ingest.events import CLEAN_COLUMNS

    out = {}
    for user, mine in events[events["user_id"].isin(users)].groupby("user_id"):
        seconds = mine["timestamp"].astype("int64") / 1e9
        stats = mine.assign(s=seconds).groupby("item_id")["s"].agg(["size", "max"])
        raw = {f"n:{i}": str(n) for i, n in stats["size"].items()}
        raw |= {f"t:{i}": repr(float(t)) for i, t in stats["max"].items()}
        newest = mine.sort_values(["timestamp", "event_id"], ascending=False).head(RECENT_MAX)
        records = newest[CLEAN_COLUMNS].astype(object)
        records = records.where(records.notna(), None).to_dict("records")
        out[str(user)] = (UserHistory.decode(raw), [event_json(r).encode() for r in records])
    return out


def measure(
    bundle: Any, cut: pd.Timestamp, users: dict, calls: int, profiles: pd.DataFrame
) -> dict[str, list[float]]:
    from serving.ranking import ItemBlock, ranking_matrix, with_columns
    from serving.union import UnionServing, user_events
    from tailwise.features.online import ItemTable

    serving = UnionServing.load(bundle)
    block = ItemBlock.build(bundle, ItemTable(pd.DataFrame({"item_id": bundle.item_ids})))
    on_demand = block.on_demand({})
    names = list(users)
    online = profiles.set_index(profiles["user_id"].astype(str))
    features = {u: online.loc[u].to_dict() if u in online.index else {} for u in names}
    timings: dict[str, list[float]] = {s: [] for s in STAGES}
    ts = cut.timestamp()
    for call in range(calls):
        name = names[call % len(names)]
        history, recent = users[name]
        row = {**features[name], "request_device": "mobile", "request_country": None}
        w0, t0 = time.perf_counter(), time.thread_time()
        events = user_events(history, recent)
        t1 = time.thread_time()
        found, rows = serving.candidates(bundle, row, events, ts, set(history.items))
        t2 = time.thread_time()
        X = ranking_matrix(bundle, block, row, on_demand, found)
        X = with_columns(X, serving.columns(bundle, rows))
        t3 = time.thread_time()
        serving.scores(bundle, rows, bundle.rank(X))
        t4, w4 = time.thread_time(), time.perf_counter()
        for stage, seconds in zip(
            STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0, w4 - w0), strict=True
        ):
            timings[stage].append(seconds)
    return timings


def percentiles(values: list[float]) -> dict[str, float]:
    ms = np.asarray(values[len(values) // 10 :]) * 1000  # the first tenth warms caches
    return {
        "median_ms": round(float(np.median(ms)), 4),
        "p99_ms": round(float(np.quantile(ms, 0.99)), 4),
    }


def save(label: str, entry: dict[str, Any]) -> None:
    from bench.ranking_step import record, stage_table

    results = record(RESULTS / "union_serving.json", label, entry)
    labels = list(results)
    lines = [
        "# A union version's request path in one process (candidates, features, rank)",
        "",
        "Per-request CPU time of the thread (time.thread_time; total_wall: wall time) in "
        "ms, median and p99, after a tenth of the calls to warm up; no HTTP, Redis or Feast "
        "lookups (bench/union_serving.py says what each stage holds). A 2-core machine "
        "shared with other work: see the load average.",
        "",
        *stage_table(results, list(STAGES)),
    ]
    lines += ["", "| run | when | calls | load average | code | data | command |"]
    lines.append("|---|---|---|---|---|---|---|")
    for lb in labels:
        e = results[lb]
        lines.append(
            f"| {lb} | {e['when']} | {e['calls']} | {e['load_average']} | {e['code']} | "
            f"{e['data']} | `{e['command']}` |"
        )
    e = results[labels[-1]]
    lines += [
        "",
        f"Version: {e['sources']} sources, {e['n_per_source']} per source, {e['n_candidates']}"
        f" candidates kept, {e['catalogue']} items, {e['ranker_features']} ranker features,"
        f" {e['trees']} trees; {e['users']} users with history cycled through.",
    ]
    (RESULTS / "union_serving.md").write_text("\n".join(lines) + "\n")


def code_revision() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--label", default="run")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--sample", type=int, default=200)
    args = parser.parse_args()
    events, items, profiles = data(args)
    folder = WORK / "version"
    bundle, cut = version(events, items, profiles, args, folder)
    rng = np.random.default_rng(0)
    pool = sorted(events["user_id"].astype(str).unique())
    users = states(events, list(rng.choice(pool, min(args.sample, len(pool)), replace=False)))
    timings = measure(bundle, cut, users, args.calls, profiles)
    config = bundle.ranker_config
    entry = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "calls": args.calls,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "code": code_revision(),
        "data": f"generated {args.users} users, {args.items} items, {args.days} days, seed {args.seed}",
        "command": shlex.join(["python", "bench/union_serving.py", *sys.argv[1:]]),
        "stages": {k: percentiles(v) for k, v in timings.items()},
        "sources": len(json.loads((folder / "sources" / "sources.json").read_text())) - 1,
        "n_per_source": config["n_per_source"],
        "n_candidates": config["n_candidates"],
        "catalogue": len(bundle.item_ids),
        "ranker_features": len(bundle.ranker_features),
        "trees": int(bundle.ranker.num_boosted_rounds()),
        "users": len(users),
    }
    save(args.label, entry)
    print(json.dumps(entry["stages"], indent=2))


if __name__ == "__main__":
    main()
