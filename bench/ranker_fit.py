"""Benchmark: the ranker's fit with early stopping, XGBoost's sklearn wrapper as it comes
against training.ranker.train_ranker (the same XGBRanker, its early-stopping set a plain
DMatrix instead of the wrapper's QuantileDMatrix).

Lists of `--per-list` rows with `--features` numeric columns (a share `--missing` of them
NaN, as the union's per-source columns are where a source did not propose the item) and
a few relevant rows per list; `--lists` for training, a quarter as many to stop on. Both
fits use params.yaml's union ranker (depth 1, mean pairs, learning rate, subsample,
colsample) for `--rounds` rounds, with as many rounds of patience: every round is
fitted and scored. Reports the seconds of
each fit (median of `--repeats`), the round early stopping picked and the largest score
difference on the stopping set: the goal is the same model, faster.

    .venv/bin/python bench/ranker_fit.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.ranker import Examples, RankerConfig, _qid, train_ranker, xgboost_params  # noqa: E402


def lists(rng: np.random.Generator, n: int, per: int, features: int, missing: float) -> Examples:
    X = rng.normal(size=(n * per, features))
    X[rng.random(X.shape) < missing] = np.nan
    signal = np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1])
    y = (rng.random(n * per) < 0.005 + 0.03 * (signal > 1.5)).astype(np.float64)
    query = np.repeat([f"q{k}" for k in range(n)], per)
    keys = pd.DataFrame({"query": query, "user_id": query, "item_id": "i", "retrieval_rank": 1})
    frame = pd.DataFrame(X, columns=[f"f{k}" for k in range(features)])
    return Examples(frame, y, np.full(n, per), keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lists", type=int, default=5000)
    parser.add_argument("--per-list", type=int, default=200)
    parser.add_argument("--features", type=int, default=130)
    parser.add_argument("--missing", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    train = lists(rng, args.lists, args.per_list, args.features, args.missing)
    stop = lists(rng, args.lists // 4, args.per_list, args.features, args.missing)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["training"]["ranker"]
    union = params.pop("union")
    # Patience as long as the fit: every round is fitted and the stopping set scored
    # after each, so both fits do the same work and the round picked is the best one.
    cfg = RankerConfig(**params).model_copy(
        update={**union, "n_estimators": args.rounds, "early_stopping_rounds": args.rounds}
    )
    seconds: dict[str, list[float]] = {"sklearn wrapper": [], "train_ranker": []}
    rounds, scores = {}, {}
    for repeat in range(args.repeats):
        started = time.perf_counter()
        ours = train_ranker(cfg, train, stop)
        seconds["train_ranker"].append(time.perf_counter() - started)
        plain = xgb.XGBRanker(**xgboost_params(cfg))
        started = time.perf_counter()
        plain.fit(
            train.X,
            train.y,
            qid=_qid(train.groups),
            eval_set=[(stop.X, stop.y)],
            eval_qid=[_qid(stop.groups)],
            verbose=False,
        )
        seconds["sklearn wrapper"].append(time.perf_counter() - started)
        rounds = {
            "sklearn wrapper": plain.best_iteration,
            "train_ranker": ours.metrics["best_iteration"],
        }
        scores = {
            "max_abs_difference": float(
                np.max(np.abs(ours.predict(stop.X) - plain.predict(stop.X)))
            )
        }
        print(
            f"repeat {repeat + 1}/{args.repeats}: "
            + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in seconds.items()),
            flush=True,
        )
    medians = {k: round(statistics.median(v), 2) for k, v in seconds.items()}
    record = {
        "command": shlex.join([".venv/bin/python", "bench/ranker_fit.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "xgboost": xgb.__version__,
        "data": {
            "train_rows": len(train.y),
            "stop_rows": len(stop.y),
            "features": args.features,
            "missing": args.missing,
        },
        "seconds": {k: [round(x, 2) for x in v] for k, v in seconds.items()},
        "median_seconds": medians,
        "ratio": round(medians["sklearn wrapper"] / medians["train_ranker"], 2),
        "best_iteration": rounds,
        "scores": scores,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ranker_fit.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# Ranker fit with early stopping: the early-stopping set's matrix",
        "",
        f"`{record['command']}` ({record['date']}, {record['machine']}, XGBoost {record['xgboost']}).",
        f"{len(train.y):,} training rows and {len(stop.y):,} stopping rows, {args.features} features"
        f" ({args.missing:.0%} missing), {args.rounds} rounds, the stopping set scored after"
        f" each; median of {args.repeats}.",
        "",
        "| fit | median s | round picked |",
        "|---|---|---|",
        *(f"| {k} | {medians[k]:.1f} | {rounds[k]} |" for k in medians),
        "",
        f"train_ranker is {record['ratio']:.2f}x faster; the largest score difference on the"
        f" stopping set is {scores['max_abs_difference']:.2g}.",
        "",
        "The wrapper makes the stopping set a QuantileDMatrix, which XGBoost predicts from scratch",
        "after every round (dmlc/xgboost#10793); train_ranker passes a plain DMatrix.",
    ]
    (args.out / "ranker_fit.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
