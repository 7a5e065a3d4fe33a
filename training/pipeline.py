"""The training pipeline as three stages, run by DVC one by one or by `tailwise train` in turn.

    clean events --temporal_split--> train+validation (the history) | test
      train_retrieval(history) --> <work>/retrieval/
          model/             the two-tower retriever fitted on the whole history
          candidates.parquet the ranker's labelled lists: a two-tower fitted before each
                             label window, its top-N for the users with a relevant item in it
          tuning/            Ray Tune trials when tuning ran (trials.csv: header only if not)
      train_ranker(candidates) --> <work>/ranker/
          version/           the model version folder (tailwise.versions): retrieval/,
                             ranker/, cold_start.parquet, manifest.json
          tuning/
      evaluate_version(version) --> test-window metrics next to the baselines (+ oracle) and
          the candidates' own order --> publish to <models>/<version>/ with metrics.json

With training.ranker.candidates: union (training.union) the labelled lists are the union
of every candidate source (the two-tower one of them), each fitted before its label
window; retrieval/ also gets sources/ (every source refitted on the whole history), which
the version keeps next to retrieval/ and ranker/; the evaluation names the platform
`union+ranker` and its candidates' own (fused) order `union` (PLATFORM).

Before anything is trained the windows are fitted to the data (training.windows: the
configured days, or quantile windows when one holds too few users) and the repeat decision
is made on the history (tailwise.repeats); both go to stage.json and the version manifest,
and every later stage cuts time and judges relevance as recorded there.

The saved models are the evaluated ones: trained on everything before the test window, so
the evaluation never sees a model that saw the test window.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tailwise import versions
from tailwise.lineage import data_version
from tailwise.quiet import load_tensorflow
from tailwise.repeats import RecommendParams, RepeatDecision, decide_repeats
from training import cold_start
from training import ranker as ranker_io
from training import retrieval as retrieval_io
from training.cold_start import ColdStartParams
from training.config import EvaluationParams, TuneParams
from training.evaluate import EvaluationResult, baselines, evaluate, quality_summary, segments_at
from training.oracle import Oracle
from training.ranker import Examples, RankerConfig
from training.reranker import fit_examples, labelled_candidates
from training.retrieval import RetrievalConfig, TwoTowerRecommender
from training.split import Split, read_events, read_items, temporal_split
from training.union import (
    SOURCES_DIR,
    fit_sources,
    union_feature_columns,
    union_labelled_candidates,
    user_profiles,
)
from training.windows import WindowPlan, configured_days, plan_windows

MODEL = "two_tower+ranker"
CANDIDATES = "two_tower"
# training.ranker.candidates -> (the platform's evaluated name, its candidates' name)
PLATFORM = {"two_tower": (MODEL, CANDIDATES), "union": ("union+ranker", "union")}
CANDIDATES_FILE, STAGE_FILE, HISTORY = "candidates.parquet", "stage.json", "history.csv"
LIFT_K = 10


class StageError(ValueError):
    """A stage's input was made from other data or another split; the message says which."""


class TrainingParams(BaseModel):
    """The `training:` section of params.yaml."""

    model_config = ConfigDict(extra="forbid")

    retrieval: dict[str, Any] = Field(default_factory=dict, description="RetrievalConfig fields")
    ranker: dict[str, Any] = Field(default_factory=dict, description="RankerConfig fields")
    tune: dict[str, Any] = Field(default_factory=dict, description="TuneParams fields")
    cold_start: ColdStartParams = Field(default_factory=ColdStartParams)

    def tune_params(self) -> TuneParams:
        return TuneParams(**self.tune)


@dataclass
class TrainOutcome:
    version: str
    folder: Path
    result: EvaluationResult
    seconds: float


@dataclass
class Prepared:
    """The split the stages use, the windows' plan and the repeat decision behind it."""

    split: Split
    plan: WindowPlan
    repeats: RepeatDecision

    def record(self) -> dict[str, Any]:
        return {"windows": self.plan.as_manifest(), "recommend": self.repeats.as_manifest()}


def prepare_split(
    clean: Path,
    evaluation: EvaluationParams,
    ranker: RankerConfig | None = None,
    recommend: RecommendParams | None = None,
) -> Prepared:
    """Windows fitted to the data and the repeat decision on the history before the test
    window (decided on all events first, then again on that history; the windows are
    planned again when the two differ)."""
    events, items = read_events(clean), read_items(clean)
    recommend = recommend or RecommendParams()
    cut = None if ranker is None else ranker.cut_days
    windows = None if ranker is None else ranker.label_windows
    decision = decide_repeats(recommend, events)
    for _ in range(2):
        plan = plan_windows(events, evaluation.split, cut, windows, decision.allow_repeats)
        split = temporal_split(events, plan.split, items, decision.allow_repeats)
        final = decide_repeats(recommend, split.history("test"))
        if final.allow_repeats == decision.allow_repeats:
            break
        decision = final
    return Prepared(split, plan, final)


def recorded_split(clean: Path, evaluation: EvaluationParams, record: dict[str, Any]) -> Split:
    """The split a stage.json or manifest recorded (windows and repeat decision)."""
    windows = record.get("windows") or {}
    params = evaluation.split
    # The recorded fallback windows hold while params.yaml asks for the same windows as
    # then; otherwise the configured ones are cut, and _same_data says they differ.
    if windows.get("rule") == "quantile" and windows.get("configured") == configured_days(params):
        params = params.model_copy(
            update={
                "validation_days": windows["validation_days"],
                "test_days": windows["test_days"],
            }
        )
    allow = bool((record.get("recommend") or {}).get("allow_repeats", False))
    return temporal_split(read_events(clean), params, read_items(clean), allow)


def load_split(clean: Path, evaluation: EvaluationParams) -> Split:
    return temporal_split(read_events(clean), evaluation.split, read_items(clean))


def _ranker_config(training: TrainingParams, record: dict[str, Any] | None = None) -> RankerConfig:
    """training.ranker, with the label window the plan chose."""
    cfg = RankerConfig(**training.ranker)
    windows = (record or {}).get("windows") or {}
    if windows.get("ranker_cut_days") is not None:
        cfg = cfg.model_copy(
            update={
                "cut_days": windows["ranker_cut_days"],
                "label_windows": windows["ranker_label_windows"],
            }
        )
    return cfg


def train_retrieval(
    clean: Path,
    store: Any,
    evaluation: EvaluationParams,
    training: TrainingParams,
    out: Path,
    settings: Any = None,
    tune: bool | None = None,
    recommend: RecommendParams | None = None,
    prefetched: dict[str, Examples] | None = None,
) -> Path:
    """Stage 1 (see the module docstring): `out/` holds model/, candidates.parquet, tuning/.

    `prefetched`: when given and the two-tower trains alongside the union's lists, the
    ranker's examples of those lists are fetched from the feature store while it still
    trains, into prefetched["examples"] (train runs both stages in one process)."""
    started = time.perf_counter()
    prepared = prepare_split(clean, evaluation, RankerConfig(**training.ranker), recommend)
    split, record = prepared.split, prepared.record()
    _say(prepared.plan.describe())
    _say(prepared.repeats.describe())
    cfg = RetrievalConfig(**training.retrieval)
    if split.allow_repeats and cfg.first_touch_only:
        # A re-bought item is a relevant answer when repeats are allowed: learn from repeats too.
        cfg = cfg.model_copy(update={"first_touch_only": False})
        _say("repeats allowed: the retriever learns from every interaction, not first touches only")
    _reset(out)
    if _tuning(training, tune):
        from training.tune import tune_retrieval

        # Trials run in their own working folders: absolute paths.
        found = tune_retrieval(_settings(settings).resolved(), split, cfg, training.tune_params())
        _save_tuning(found, out / "tuning")
        cfg = RetrievalConfig.model_validate(found.best_config.model_dump())
    else:
        _save_tuning(None, out / "tuning")
    history, items = split.history("test"), split.candidate_items("test")
    ranker_cfg = _ranker_config(training, record)
    lists = union_labelled_candidates if ranker_cfg.candidates == "union" else labelled_candidates
    timings: dict[str, float] = {}
    # The union's lists time their own parts (sources fitted per cut, rows made).
    profiles = user_profiles(store) if ranker_cfg.candidates == "union" else None
    parts: dict[str, Any] = (
        {"timings": timings, "say": _say, "profiles": profiles}
        if ranker_cfg.candidates == "union"
        else {}
    )
    # The version's two-tower does not depend on the ranker's lists: when the lists fit
    # no two-tower of their own, it trains in a second thread while they are made
    # (TensorFlow's steps and pandas' work share the two cores).
    alongside = ranker_cfg.candidates == "union" and not ranker_cfg.two_tower_source

    def lap() -> float:  # seconds since the last part timed (not counting one run alongside)
        done = sum(v for k, v in timings.items() if not k.endswith("_alongside"))
        return time.perf_counter() - started - done

    if alongside:  # imported here: the import holds file descriptor 2 while it logs
        load_tensorflow()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="two-tower") if alongside else None
    tower = None if pool is None else pool.submit(_timed_fit, store, cfg, history, items)
    try:
        candidates = lists(
            lambda: TwoTowerRecommender(store, cfg),
            history,
            items,
            ranker_cfg,
            split.params,
            split.allow_repeats,
            **parts,
        )
        candidates.to_parquet(out / CANDIDATES_FILE, index=False)
        timings["labelled_lists"] = lap()
        if ranker_cfg.candidates == "union":
            fitted = fit_sources(
                history, split.test_start, items, split.allow_repeats, profiles=profiles
            )
            fitted.save(out / SOURCES_DIR)
            timings["sources"] = lap()
        if prefetched is not None and tower is not None:
            # The examples do not depend on the two-tower: fetched while it trains.
            prefetched["examples"] = _list_examples(store, candidates, ranker_cfg)
            timings["ranker_examples_early"] = lap()
        final, fit_seconds = (
            _timed_fit(store, cfg, history, items) if tower is None else tower.result()
        )
    finally:
        if pool is not None:
            pool.shutdown()
    retrieval_io.save(final.result, out / "model")
    if alongside:  # its seconds, and how long the stage then waited for it
        timings["two_tower_alongside"] = fit_seconds
        timings["two_tower_wait"] = lap()
    else:
        timings["two_tower"] = lap()
    _say("time per stage, s: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    stage = {
        "data_version": data_version(clean),
        "trained_before": split.test_start.isoformat(),
        "config": cfg.model_dump(mode="json"),
        "candidate_lists": int(candidates["query"].nunique()),
        "seconds": round(time.perf_counter() - started, 1),
        "stage_seconds": {k: round(v, 1) for k, v in timings.items()},
        **record,
    }
    (out / STAGE_FILE).write_text(json.dumps(stage, indent=2) + "\n")
    return out


def _timed_fit(
    store: Any, cfg: RetrievalConfig, history: pd.DataFrame, items: pd.DataFrame | None
) -> tuple[TwoTowerRecommender, float]:
    started = time.perf_counter()
    return TwoTowerRecommender(store, cfg).fit(history, items), time.perf_counter() - started


def train_ranker(
    clean: Path,
    store: Any,
    evaluation: EvaluationParams,
    training: TrainingParams,
    retrieval_dir: Path,
    out: Path,
    settings: Any = None,
    tune: bool | None = None,
    examples: Examples | None = None,
) -> Path:
    """Stage 2: the ranker on the retrieval stage's lists; `out/version/` is the version.
    `examples`: those lists' ranking examples when already fetched (train_retrieval's
    `prefetched`), used unless the ranker is tuned."""
    started = time.perf_counter()
    stage = json.loads((retrieval_dir / STAGE_FILE).read_text())
    split = recorded_split(clean, evaluation, stage)
    _same_data(stage, clean, split, retrieval_dir)
    cfg = _ranker_config(training, stage)
    _reset(out)
    if _tuning(training, tune):
        from tailwise.features.store import open_store
        from training.tune import tune_ranker

        resolved = _settings(settings).resolved()
        retrieval_cfg = RetrievalConfig(**stage["config"])

        def candidates() -> TwoTowerRecommender:
            return TwoTowerRecommender(open_store(resolved), retrieval_cfg)

        found = tune_ranker(resolved, split, candidates, cfg, training.tune_params())
        _save_tuning(found, out / "tuning")
        cfg = RankerConfig.model_validate(found.best_config.model_dump())
    else:
        _save_tuning(None, out / "tuning")
    lists = pd.read_parquet(retrieval_dir / CANDIDATES_FILE)
    fit_started = time.perf_counter()
    early = examples is not None and not _tuning(training, tune) and len(examples.y) == len(lists)
    if examples is None or not early:
        examples = _list_examples(store, lists, cfg)
    fetched = time.perf_counter() - fit_started
    result = fit_examples(examples, cfg)
    seconds_of = stage.setdefault("stage_seconds", {})
    seconds_of["ranker"] = round(time.perf_counter() - fit_started, 1)
    seconds_of["ranker_examples"] = round(fetched, 1)
    seconds_of["ranker_fit"] = round(seconds_of["ranker"] - fetched, 1)
    how = "fetched while the two-tower trained" if early else f"fetched in {fetched:.1f} s"
    _say(
        f"ranker: {len(examples.y):,} rows in {len(examples.groups):,} lists; features "
        f"{how}, fitted in {seconds_of['ranker_fit']:.1f} s"
    )
    if result.metrics.get("scored_by") == "candidate order":
        _say(f"ranker: scoring by {_order_name(result.metrics)} ({result.metrics['reason']})")
    if result.metrics.get("new_user_best_order") is not None:
        _say(f"ranker: {_new_user_note(result.metrics)}")
    version = versions.new_version()
    folder = out / "version"
    shutil.copytree(retrieval_dir / "model", folder / "retrieval")
    if cfg.candidates == "union":
        shutil.copytree(retrieval_dir / SOURCES_DIR, folder / SOURCES_DIR)
    ranker_io.save(result, folder / "ranker", data_version=stage["data_version"])
    history = split.history("test")
    table = cold_start.popular_by_context(
        history, training.cold_start.days, training.cold_start.top
    )
    cold_start.write(table, folder)
    final = training.model_copy(
        update={"retrieval": stage["config"], "ranker": cfg.model_dump(mode="json")}
    )
    seconds = stage["seconds"] + time.perf_counter() - started
    _write_manifest(folder, version, stage, final, evaluation, split, result, seconds)
    return out


def _list_examples(store: Any, lists: pd.DataFrame, cfg: RankerConfig) -> Examples:
    """The ranking examples of the retrieval stage's lists (with the union's source
    features when the lists are the union's)."""
    extra = union_feature_columns(lists) if cfg.candidates == "union" else []
    return ranker_io.ranking_examples(store, lists, extra=extra, workers=cfg.fetch_workers)


def evaluate_version(
    clean: Path,
    store: Any,
    evaluation: EvaluationParams,
    folder: Path,
    ground_truth: Path | None = None,
    features: Path | None = None,
) -> EvaluationResult:
    """Stage 3: the saved version (loaded as serving would) on the test window, next to the
    baselines fitted on the same history, the oracle, and the retriever's own order."""
    from training.batch import load_recommender

    manifest = versions.read_manifest(folder)
    split = recorded_split(clean, evaluation, manifest)
    _same_data(manifest, clean, split, folder)
    segments = segments_at(features, split.test_start)
    fitted: dict[str, Any] = baselines(evaluation, split.allow_repeats)
    if ground_truth is not None:
        fitted["oracle"] = Oracle(ground_truth, at=split.test_start)
    result = evaluate(fitted, split, evaluation.ks, segments, window="test", fit=True)
    reranker = load_recommender(folder, store, split.history("test"))
    model, candidates = platform_names(manifest)
    trained = {candidates: reranker.candidate_model, model: reranker}
    own = evaluate(trained, split, evaluation.ks, segments, window="test", fit=False)
    result = _merge(result, own)
    windows, repeats = manifest.get("windows") or {}, manifest.get("recommend") or {}
    if windows:
        result.notes.append(
            f"windows: {windows['rule']} (test {windows['test_days']:.4g} days, validation "
            f"{windows['validation_days']:.4g} days; evaluation.split.fallback)"
        )
    if repeats:
        allowed = "allowed" if repeats.get("allow_repeats") else "not allowed"
        result.notes.append(
            f"repeats {allowed} (recommend.allow_repeats {repeats.get('setting')}, "
            f"{repeats.get('repeat_share', 0):.0%} of {repeats.get('basis')} are repeats)"
        )
    scored_by = manifest.get("ranker_scored_by")
    if scored_by == "candidate order":
        checked = manifest["ranker_validation"]
        result.notes.append(f"{model} keeps {_order_name(checked)}: {checked.get('reason')}")
    if (manifest.get("ranker_validation") or {}).get("new_user_order"):
        result.notes.append(f"{model}: {_new_user_note(manifest['ranker_validation'])}")
    lift = ranker_lift(result)
    if lift is not None:
        result.notes.append(
            f"{model} NDCG@{LIFT_K} is {lift:+.1%} over {candidates}'s own order of the same "
            "candidates"
        )
    return result


def _order_name(metrics: dict[str, Any]) -> str:
    """The order a candidate-order ranker keeps, in words (ranker.candidate_order)."""
    return ranker_io.order_name(str(metrics.get("order") or "retrieval_rank"))


def _new_user_note(metrics: dict[str, Any]) -> str:
    """Which order people without history get, and the held-out figures that chose it."""
    best = ranker_io.order_name(str(metrics["new_user_best_order"]))
    figures = (
        f"NDCG@{LIFT_K} {metrics.get('new_user_best_ndcg@10', 0):.4f} against "
        f"{metrics.get('new_user_ndcg@10', 0):.4f}, one standard error "
        f"{metrics.get('new_user_gain_se', 0):.4f}, on {metrics.get('new_user_lists', 0)} "
        "held-out lists of such people"
    )
    if metrics.get("new_user_order"):
        return f"people with no event get {best} ({figures})"
    return f"people with no event keep the version's order; the best other is {best} ({figures})"


def platform_names(manifest: dict[str, Any]) -> tuple[str, str]:
    """(the platform's model name, its candidates' name) in a version's evaluation."""
    ranker = ((manifest.get("params") or {}).get("training") or {}).get("ranker") or {}
    return PLATFORM[ranker.get("candidates", "two_tower")]


def platform_model(result: EvaluationResult) -> str:
    """The platform's name in an evaluation (whichever candidate mode it was trained in)."""
    present = set(result.table["model"])
    return next((m for m, _ in PLATFORM.values() if m in present), MODEL)


def ranker_lift(result: EvaluationResult, k: int = LIFT_K) -> float | None:
    """NDCG@k of the reranked list over the candidate model's own order, minus 1."""
    model = platform_model(result)
    candidates = dict(PLATFORM.values())[model]
    try:
        base = result.value(candidates, "ndcg", k)
        return result.value(model, "ndcg", k) / base - 1 if base > 0 else None
    except KeyError:
        return None


def evaluation_metrics(result: EvaluationResult) -> dict[str, Any]:
    """metrics.json: {model: {'<metric>@<k>': value}} plus the ranker's lift."""
    metrics: dict[str, Any] = result.model_metrics()
    lift = ranker_lift(result)
    if lift is not None:
        metrics["ranker_lift"] = {f"ndcg@{LIFT_K}": round(lift, 6)}
    return metrics


def train(
    clean: Path,
    store: Any,
    evaluation: EvaluationParams,
    training: TrainingParams,
    models_dir: Path,
    ground_truth: Path | None = None,
    features: Path | None = None,
    work: Path | None = None,
    settings: Any = None,
    tune: bool | None = None,
    recommend: RecommendParams | None = None,
) -> TrainOutcome:
    """Every stage in this process (what `dvc repro` runs stage by stage), then publish."""
    started = time.perf_counter()
    work = work or models_dir / ".work"
    prefetched: dict[str, Examples] | None = None if _tuning(training, tune) else {}
    retrieval_dir = train_retrieval(
        clean,
        store,
        evaluation,
        training,
        work / "retrieval",
        settings,
        tune,
        recommend,
        prefetched,
    )
    ranker_dir = train_ranker(
        clean,
        store,
        evaluation,
        training,
        retrieval_dir,
        work / "ranker",
        settings,
        tune,
        (prefetched or {}).get("examples"),
    )
    folder = ranker_dir / "version"
    result = evaluate_version(clean, store, evaluation, folder, ground_truth, features)
    models_dir.mkdir(parents=True, exist_ok=True)
    published = versions.publish(
        folder,
        models_dir,
        evaluation_metrics(result),
        result.to_markdown(),
        quality_summary(result, platform_model(result)),
    )
    return TrainOutcome(published.name, published, result, time.perf_counter() - started)


def _write_manifest(
    folder: Path,
    version: str,
    stage: dict[str, Any],
    training: TrainingParams,
    evaluation: EvaluationParams,
    split: Split,
    ranker: Any,
    seconds: float,
) -> None:
    versions.write_manifest(
        folder,
        {
            "version": version,
            "created_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
            "data_version": stage["data_version"],
            "trained_before": stage["trained_before"],
            "trained_on": f"events before {split.test_start.isoformat()}",
            "evaluated_on": f"{split.test_start.isoformat()} .. {split.end.isoformat()}",
            "feature_services": {"retrieval": "retrieval_v1", "ranking": ranker.feature_service},
            "files": {
                "retrieval": "retrieval/: query_model/ (SavedModel, serving_default takes the "
                "raw inputs named in retrieval/manifest.json), item_embeddings.parquet",
                "ranker": "ranker/: model.json (XGBoost), ranker.json (feature_names in "
                "model order, categories)",
                "cold_start": cold_start.DESCRIPTION,
                "sources": "sources/ (training.ranker.candidates: union): sources.json and "
                "<source>/<table>.parquet of every candidate source (tailwise.candidates)",
                "metrics": f"{versions.METRICS}, {versions.REPORT} (test window)",
            },
            "feature_names": {
                "retrieval": retrieval_io.load_manifest(folder / "retrieval")["feature_names"],
                "ranking": ranker.feature_names,
            },
            "params": {
                "training": training.model_dump(mode="json"),
                "evaluation": evaluation.model_dump(mode="json"),
            },
            "ranker_validation": ranker.metrics,
            "ranker_scored_by": ranker.metrics.get("scored_by", "ranker"),
            "dropped_features": _dropped(folder, ranker),
            "windows": stage.get("windows"),
            "recommend": stage.get("recommend"),
            "training_seconds": round(seconds, 1),
            "stage_seconds": stage.get("stage_seconds", {}),
        },
    )


def _dropped(folder: Path, ranker: Any) -> dict[str, list[str]]:
    """Inputs left out because they were constant or all-null in training, per model."""
    retrieval = retrieval_io.load_manifest(folder / "retrieval").get("dropped_features", {})
    return {
        "retrieval": list(retrieval.get("query", [])),
        "retrieval_candidate": list(retrieval.get("candidate", [])),
        "ranking": list(ranker.dropped),
    }


def _say(message: str) -> None:
    """A line for the person running training (stderr, like the commands' output)."""
    from rich.console import Console

    Console(stderr=True).print(message)


def _same_data(recorded: dict[str, Any], clean: Path, split: Split, where: Path) -> None:
    """The stage output was trained on this data and this split, else the evaluation or the
    next stage would mix two data sets."""
    now = data_version(clean)
    if recorded.get("data_version") != now:
        raise StageError(
            f"{where} was trained on data version {recorded.get('data_version')}, but {clean} "
            f"is {now}: rerun the training stages (dvc repro)"
        )
    if pd.Timestamp(recorded["trained_before"]) != split.test_start:
        raise StageError(
            f"{where} was trained on events before {recorded['trained_before']}, but the test "
            f"window now starts at {split.test_start}: rerun the training stages"
        )


def _merge(a: EvaluationResult, b: EvaluationResult) -> EvaluationResult:
    a.table = pd.concat([a.table, b.table], ignore_index=True)
    a.per_user = pd.concat([a.per_user, b.per_user], ignore_index=True)
    a.timings.update(b.timings)
    a.notes = [*b.notes[:-1], *a.notes]  # both end with the same users/catalogue note
    return a


def _tuning(training: TrainingParams, tune: bool | None) -> bool:
    return training.tune_params().enabled if tune is None else tune


def _settings(settings: Any) -> Any:
    if settings is None:
        raise ValueError("tuning needs the Settings (trials open their own feature store)")
    return settings


def _reset(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)


def _save_tuning(found: Any, folder: Path) -> None:
    """The search's files (training.tune.save) and history.csv for the DVC plot: trial,
    validation metric, best so far. Header only when tuning did not run, so the plot
    exists and is empty."""
    folder.mkdir(parents=True, exist_ok=True)
    history = pd.DataFrame({"trial": [], "value": [], "best": []})
    if found is not None:
        from training.tune import save

        save(found, folder)
        values = found.trials[found.metric].astype(float)
        history = pd.DataFrame(
            {"trial": found.trials["trial"], "value": values, "best": values.cummax().ffill()}
        )
    history.to_csv(folder / HISTORY, index=False)
