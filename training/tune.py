"""Hyper-parameter search for the retriever and the ranker with Ray Tune + Optuna.

This module only declares search spaces and wraps the single-run code path:

    RETRIEVAL_SPACE / RANKER_SPACE (plain data, no Ray at import)
      --tune_retrieval / tune_ranker(params: TuneParams)-->
        ray.init (TF_USE_LEGACY_KERAS for every worker) -> Tuner(OptunaSearch, ASHA)
          each trial: cfg = base + sampled values (validated by the pydantic model)
                      open_store(settings) inside the trial
                      retrieval: TwoTowerRecommender(cfg, on_epoch=report).fit(history
                        before the validation window): one report per epoch of <metric>@<k>
                        on the retriever's own held-out latest examples (best so far)
                      ranker: Reranker(factory, cfg), evaluate(window='validation',
                        fit=True) -> one report of <metric>@<k>
        ray.shutdown
      --> TuneOutcome(best_config, best_metric, trials) --save(folder)--> best_config.json,
          trials.csv, history.png

Trials see a copy of the split whose test window is empty: they fit on the train window
and score the validation window, so the test window cannot influence the choice. Heavy
inputs reach trials through `tune.with_parameters` (Ray's object store), never closures.
A retrieval trial reports after every epoch (train_retrieval's `on_epoch`), so ASHA
(max_t: the base config's epochs) stops the trials that trail at each rung; the same
train function early-stops within a trial (RetrievalConfig.patience), without the refit
(a trial needs the figure, not the final model). A ranker trial reports once.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel

from tailwise.quiet import load_tensorflow
from tailwise.ranking_metrics import METRICS
from training.config import TuneParams
from training.ranker import RankerConfig
from training.retrieval import RetrievalConfig
from training.split import Split, WindowTruth

RAY_ENV = {"TF_USE_LEGACY_KERAS": "1"}  # TFRS needs Keras 2, in every Ray worker too
WINDOW = "validation"
C = TypeVar("C", bound=BaseModel)


@dataclass(frozen=True)
class IntRange:
    """Integers low..high, both included."""

    low: int
    high: int

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high + 1))

    def to_ray(self) -> Any:
        from ray import tune

        return tune.randint(self.low, self.high + 1)  # Ray's upper bound is exclusive

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and self.low <= value <= self.high


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float
    log: bool = False

    def sample(self, rng: np.random.Generator) -> float:
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def to_ray(self) -> Any:
        from ray import tune

        return (tune.loguniform if self.log else tune.uniform)(self.low, self.high)

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high


@dataclass(frozen=True)
class Choice:
    options: tuple[Any, ...]

    def sample(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))]

    def to_ray(self) -> Any:
        from ray import tune

        return tune.choice(list(self.options))

    def contains(self, value: Any) -> bool:
        return value in self.options


Domain = IntRange | Uniform | Choice

RETRIEVAL_SPACE: dict[str, Domain] = {  # epochs: early stopping on held-out recall decides
    "embedding_dim": Choice((16, 32, 64)),
    "learning_rate": Uniform(1e-3, 5e-2, log=True),
    "temperature": Uniform(0.02, 0.5, log=True),
    "batch_size": Choice((128, 256, 512, 1024)),
    "history_items": Choice((0, 5, 10, 20)),
}
TRIAL_VALIDATION_SHARE = 0.1  # a retrieval trial holds out at least this (base's if larger)
RANKER_SPACE: dict[str, Domain] = {
    "max_depth": IntRange(2, 8),
    "learning_rate": Uniform(0.01, 0.3, log=True),
    "min_child_weight": Uniform(1.0, 100.0, log=True),
    "n_estimators": IntRange(50, 800),
    "subsample": Uniform(0.5, 1.0),
    "colsample_bytree": Uniform(0.5, 1.0),
}


class TuneError(RuntimeError):
    """A search produced no usable trial; the message says why."""


@dataclass
class TuneOutcome:
    """The best config found, its validation metric, and one row per trial (config
    columns, the metric, status, seconds) in the order the trials were created."""

    best_config: BaseModel
    best_metric: float
    metric: str
    trials: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)  # ray_start_s, search_s, total_s
    experiment: str = ""


def build_config(base: C, sampled: Mapping[str, Any]) -> C:
    """`base` with `sampled` values, validated by the config model (bad values raise)."""
    unknown = sorted(set(sampled) - set(type(base).model_fields))
    if unknown:
        raise ValueError(f"{type(base).__name__} has no field(s) {unknown}")
    return type(base).model_validate({**base.model_dump(), **sampled})


def validation_only(split: Split) -> Split:
    """The split with an empty test window: what a trial may see."""
    relevant = split.test_truth.relevant.iloc[:0]
    users = split.test_truth.users.iloc[:0]
    return dataclasses.replace(
        split, test=split.test.iloc[:0], test_truth=WindowTruth(relevant, users)
    )


def validation_score(model: Any, name: str, split: Split, metric: str) -> float:
    """Fit `model` on the history of the validation window and score it there."""
    from training.evaluate import evaluate

    measure, k = _parse_metric(metric)
    result = evaluate({name: model}, split, ks=(k,), window=WINDOW, fit=True)
    return result.value(name, measure, k)


def tune_retrieval(
    settings: Any,
    split: Split,
    base: RetrievalConfig,
    params: TuneParams,
    space: Mapping[str, Domain] = RETRIEVAL_SPACE,
) -> TuneOutcome:
    """Search RETRIEVAL_SPACE around `base`; each trial is one TwoTowerRecommender run."""
    return _run(
        "retrieval", _retrieval_trial, settings, split, base, params, space, None, base.epochs
    )


def tune_ranker(
    settings: Any,
    split: Split,
    candidate_model_factory: Callable[[], Any],
    base: RankerConfig,
    params: TuneParams,
    space: Mapping[str, Domain] = RANKER_SPACE,
) -> TuneOutcome:
    """Search RANKER_SPACE around `base`; each trial is one Reranker run over the
    candidates of `candidate_model_factory()` (an unfitted harness recommender)."""
    factory = candidate_model_factory
    return _run("ranker", _ranker_trial, settings, split, base, params, space, factory, 1)


def _retrieval_trial(config: dict, *, settings: Any, split: Split, base: Any, env: dict) -> None:
    from ray import tune

    from tailwise.features.store import open_store
    from training.retrieval import EpochFigures, TwoTowerRecommender

    _limit_tensorflow_threads(env["cpus"])
    share = max(base.validation_share, TRIAL_VALIDATION_SHARE)
    cfg = build_config(base, {**config, "validation_share": share, "refit": False})
    measure, k = _parse_metric(env["metric"])
    best = [-math.inf]
    started = time.perf_counter()

    def report(figures: EpochFigures) -> None:
        value = figures.metric(measure, k)
        best[0] = max(best[0], value)  # the weights early stopping keeps
        tune.report(
            {
                env["key"]: best[0],
                "epoch_value": value,
                "epoch": figures.epoch,
                "loss": figures.loss,
                "fit_eval_s": time.perf_counter() - started,
            }
        )

    model = TwoTowerRecommender(open_store(settings), cfg, on_epoch=report)
    model.fit(split.history(WINDOW), split.candidate_items(WINDOW))


def _ranker_trial(config: dict, *, settings: Any, split: Split, base: Any, env: dict) -> None:
    from ray import tune

    from tailwise.features.store import open_store
    from training.reranker import Reranker

    cfg = build_config(base, config)
    # Threads follow the trial's CPUs; the returned best config keeps base.n_jobs.
    cfg = cfg.model_copy(update={"n_jobs": env["cpus"]})
    # The factory itself: Reranker builds fresh candidate models (copying one would copy
    # the Feast store it holds).
    model = Reranker(
        env["factory"], open_store(settings), cfg, split.params, allow_repeats=split.allow_repeats
    )
    started = time.perf_counter()
    value = validation_score(model, "reranker", split, env["metric"])
    tune.report({env["key"]: value, "fit_eval_s": time.perf_counter() - started})


def _run(
    kind: str,
    trial: Callable[..., None],
    settings: Any,
    split: Split,
    base: C,
    params: TuneParams,
    space: Mapping[str, Domain],
    factory: Callable[[], Any] | None,
    max_reports: int,
) -> TuneOutcome:
    """Start Ray (unless the caller did), search, shut Ray down, tabulate the trials.
    `max_reports`: what a trial reports at most (ASHA's max_t)."""
    import ray
    from ray import tune

    build_config(base, {name: getattr(base, name) for name in space})  # names exist
    _parse_metric(params.metric)
    key = _report_key(params.metric)
    env = {"metric": params.metric, "key": key, "cpus": params.cpus_per_trial, "factory": factory}
    name = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    started = time.perf_counter()
    own_ray = not ray.is_initialized()
    if own_ray:
        os.environ.update(RAY_ENV)
        ray.init(
            num_cpus=params.cpus,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": RAY_ENV},
        )
    ray_start = time.perf_counter() - started
    try:
        fn = tune.with_parameters(
            trial, settings=settings, split=validation_only(split), base=base, env=env
        )
        grid = _tuner(fn, base, space, params, key, name, max_reports).fit()
    finally:
        if own_ray:
            ray.shutdown()
    total = time.perf_counter() - started
    trials = _trials_table(grid, list(space), key, params.metric)
    ok = trials[trials["status"] == "TERMINATED"]
    if ok.empty:
        errors = [str(grid[i].error)[:300] for i in range(len(grid)) if grid[i].error]
        if not errors:
            raise TuneError(
                f"tune {kind}: no trial finished within time_budget_s={params.time_budget_s:g}"
                f" ({len(trials)} started); raise training.tune.time_budget_s in params.yaml"
            )
        raise TuneError(f"tune {kind}: no trial finished ({len(trials)} run); errors: {errors}")
    best = ok.loc[ok[params.metric].idxmax()]
    return TuneOutcome(
        best_config=build_config(base, {n: _plain(best[n]) for n in space}),
        best_metric=float(best[params.metric]),
        metric=params.metric,
        trials=trials,
        timings={"ray_start_s": ray_start, "search_s": total - ray_start, "total_s": total},
        experiment=str(Path(params.storage).resolve() / name),
    )


def _tuner(
    fn: Any,
    base: BaseModel,
    space: Mapping[str, Domain],
    params: TuneParams,
    key: str,
    name: str,
    max_reports: int,
) -> Any:
    """Optuna proposes (the base config first when it lies in the space), ASHA stops
    trials that trail at a rung (after grace_period reports, up to `max_reports`)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    start_point = {n: getattr(base, n) for n in space}
    in_space = all(domain.contains(start_point[n]) for n, domain in space.items())
    searcher = OptunaSearch(
        points_to_evaluate=[start_point] if params.evaluate_base and in_space else None,
        seed=params.seed,
    )
    return tune.Tuner(
        tune.with_resources(fn, {"cpu": params.cpus_per_trial}),
        param_space={n: d.to_ray() for n, d in space.items()},
        tune_config=tune.TuneConfig(
            metric=key,
            mode="max",
            search_alg=searcher,
            scheduler=ASHAScheduler(
                max_t=max(max_reports, params.grace_period), grace_period=params.grace_period
            ),
            num_samples=params.num_samples,
            time_budget_s=params.time_budget_s,
            max_concurrent_trials=params.max_concurrent_trials,
        ),
        run_config=tune.RunConfig(
            storage_path=str(Path(params.storage).resolve()), name=name, verbose=0
        ),
    )


def _trials_table(grid: Any, names: list[str], key: str, metric: str) -> pd.DataFrame:
    """One row per trial: trial number, config columns, metric, status, reports, seconds."""
    rows: list[dict[str, Any]] = []
    for result in (grid[i] for i in range(len(grid))):
        metrics = result.metrics or {}
        found = re.search(r"_(\d{5})_", Path(result.path).name)
        rows.append(
            {
                "trial": int(found.group(1)) if found else len(rows),
                **{n: result.config.get(n) for n in names},
                metric: metrics.get(key, np.nan),
                "status": _status(result.error, key in metrics),
                "reports": metrics.get("training_iteration", 0),  # epochs, ASHA's time
                "seconds": metrics.get("time_total_s", np.nan),
            }
        )
    columns = ["trial", *names, metric, "status", "reports", "seconds"]
    return pd.DataFrame(rows, columns=columns).sort_values("trial").reset_index(drop=True)


def save(outcome: TuneOutcome, folder: Path | str) -> Path:
    """best_config.json (the config model's fields), trials.csv and history.png."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = outcome.best_config.model_dump(mode="json")
    (folder / "best_config.json").write_text(json.dumps(config, indent=2) + "\n")
    outcome.trials.to_csv(folder / "trials.csv", index=False)
    values = outcome.trials[outcome.metric].to_numpy(dtype=float)
    order = np.arange(1, len(values) + 1)
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(order, values, "o", label="trial")
    best = pd.Series(values).cummax().ffill().to_numpy()  # failed trials (NaN) carry it over
    ax.step(order, best, where="post", label="best so far")
    ax.set(xlabel="trial (in order)", ylabel=f"validation {outcome.metric}")
    ax.set_title(f"{type(outcome.best_config).__name__}: best {outcome.best_metric:.4f}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="best")
    fig.savefig(folder / "history.png", dpi=100)
    return folder


def _status(error: Any, reported: bool) -> str:
    if error is not None:
        return "ERROR"
    return "TERMINATED" if reported else "NO_RESULT"  # e.g. stopped by the time budget


def _parse_metric(metric: str) -> tuple[str, int]:
    name, _, k = metric.partition("@")
    if name not in METRICS or not k.isdigit():
        raise ValueError(f"metric {metric!r}: expected <one of {METRICS}>@<k>")
    return name, int(k)


def _report_key(metric: str) -> str:
    return "validation_" + metric.replace("@", "_at_")


def _plain(value: Any) -> Any:
    """numpy scalars from the trials table -> Python numbers the config model accepts."""
    return value.item() if isinstance(value, np.generic) else value


def _limit_tensorflow_threads(cpus: int) -> None:
    os.environ.update(RAY_ENV)
    tf = load_tensorflow()  # the worker's first import: load-time C++ lines held to the level

    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(cpus)
    except RuntimeError:  # TensorFlow already initialised in this worker
        pass
