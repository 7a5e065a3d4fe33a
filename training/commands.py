"""The training stage's commands: `evaluate`, `train` and its stages (`tailwise recommend`
lives with serving: it runs the serving graph).

Registered into the `tailwise` CLI through the `tailwise.commands` entry point, so the
shared package never imports training code. `train` runs every stage in this process;
`train-retrieval`, `train-ranker` and `evaluate --model` are the same stages one by one,
as the DVC pipeline (dvc.yaml) calls them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tailwise.console import console, errors, fail

Data = Annotated[Path, typer.Option(help="Clean data (tailwise ingest --out).")]
Features = Annotated[Path, typer.Option(help="Feature tables (tailwise features build --out).")]
Params = Annotated[Path, typer.Option(help="params.yaml (evaluation:, training:).")]
GroundTruth = Annotated[
    Path | None, typer.Option(help="Generator ground truth, for the oracle ceiling.")
]
Tune = Annotated[
    bool | None,
    typer.Option(
        "--tune/--no-tune",
        help="Search the settings with Ray Tune first (default: training.tune.enabled).",
    ),
]
DATA, FEATURES, PARAMS = Path("data/clean"), Path("data/features"), Path("params.yaml")
WORK, EVALUATION, MODELS = Path("data/training"), Path("data/evaluation"), Path("data/models")


models_app = typer.Typer(help="Model versions: the registry, champion against challenger.")
Models = Annotated[Path, typer.Option(help="Published model versions and registry.jsonl.")]


def register(app: typer.Typer) -> None:
    app.command(name="evaluate")(evaluate)
    app.command(name="train")(train)
    app.command(name="train-retrieval")(train_retrieval)
    app.command(name="train-ranker")(train_ranker)
    models_app.command(name="list")(models_list)
    models_app.command(name="challenge")(models_challenge)
    app.add_typer(models_app, name="models")


def models_list(
    models: Models = MODELS,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every version with its last decision (published, promoted, rejected) and why."""
    from rich.table import Table

    from tailwise import registry

    with _training_errors():
        rows = registry.versions(models)
    if as_json:
        typer.echo(registry.summary_json(models))
        return
    out = Console()
    table = Table(title=f"Model versions in {models} (registry.jsonl)")
    table.add_column("version", no_wrap=True)
    for col in ("published", "decision", "decided", "serving", "ndcg@10 (its decision's window)"):
        table.add_column(col)
    for r in rows:
        ndcg = r["scores"].get("ndcg@10")
        table.add_row(
            r["version"],
            f"{r['published']:%Y-%m-%d %H:%M}",
            r["status"],
            f"{r['decided']:%Y-%m-%d %H:%M}",
            "[green]yes[/green]" if r["serving"] else "",
            f"{ndcg:.4f}" if ndcg is not None else "",
        )
    out.print(table)
    for r in rows:
        out.print(f"[bold]{r['version']}[/bold] {r['status']}:")
        for reason in r["reasons"]:
            out.print(f"  - {reason}")


def models_challenge(
    data: Data = DATA,
    features: Features = FEATURES,
    models: Models = MODELS,
    challenger: Annotated[
        str | None,
        typer.Option(help="The version to challenge with (default: the newest undecided one)."),
    ] = None,
    params: Params = PARAMS,
    force: Annotated[
        bool,
        typer.Option("--force", help="Promote even if the challenger loses to the best baseline."),
    ] = False,
) -> None:
    """Score the champion (LATEST), a challenger and the baselines on the newest holdout
    window; promote the challenger only if it wins by params.yaml promotion.margin, holds
    the guards and reaches the best baseline (unless --force)."""
    from training.challenge import ChallengeError, PromotionPolicy, challenge, pending_challenger

    if challenger is None and pending_challenger(models) is None:
        console.print(f"no challenger waiting in {models}: the champion stays")
        return
    with _training_errors():
        try:
            policy = PromotionPolicy.model_validate(_section(params, "promotion"))
            evaluation, _, _, store = _setup(data, features, params)
            entry = challenge(models, data, store, evaluation, policy, challenger, force)
        except ChallengeError as exc:
            fail(str(exc))
    if entry is None:
        console.print(f"no challenger waiting in {models}: the champion stays")
        return
    colour = "green" if entry.action == "promoted" else "yellow"
    console.print(
        f"[{colour}]{entry.action}[/{colour}] {entry.version} against champion {entry.champion} "
        f"on {entry.window['start'][:10]} .. {entry.window['end'][:10]}"
    )
    for reason in entry.reasons:
        console.print(f"  - {reason}")


def train(
    data: Data = DATA,
    features: Features = FEATURES,
    ground_truth: GroundTruth = None,
    models: Annotated[Path, typer.Option(help="Where evaluated versions are published.")] = MODELS,
    work: Annotated[Path, typer.Option(help="The stages' outputs (as in dvc.yaml).")] = WORK,
    evaluation_out: Annotated[
        Path, typer.Option("--evaluation", help="Where the evaluation is written.")
    ] = EVALUATION,
    params: Params = PARAMS,
    tune: Tune = None,
) -> None:
    """Features (when missing), optional tuning, the retriever, the ranker, the evaluation
    next to the baselines; publishes the version to MODELS/<version> and MODELS/LATEST."""
    from tailwise.lineage import check_features
    from training.pipeline import train as run_train

    with _training_errors():
        check_features(features, data, "train")
        evaluation, training, settings, store = _setup(data, features, params, build=True)
        console.print("training (two-tower retrieval, then the ranker) and evaluating ...")
        outcome = run_train(
            data,
            store,
            evaluation,
            training,
            models,
            ground_truth,
            features,
            work,
            settings,
            tune,
            _recommend(params),
        )
    write_evaluation(outcome.result, evaluation_out)
    console.print(outcome.result.to_markdown(slices=["all", "new", "returning"]))
    _platform_vs_baseline(outcome.result)
    console.print(
        f"[green]model version {outcome.version}[/green] in {outcome.folder} "
        f"({outcome.seconds:.0f}s); every slice in {evaluation_out}/report.md"
    )


def train_retrieval(
    data: Data = DATA,
    features: Features = FEATURES,
    out: Annotated[Path, typer.Option(help="Stage output folder.")] = WORK / "retrieval",
    params: Params = PARAMS,
    tune: Tune = None,
) -> None:
    """Stage: the two-tower retriever and the ranker's labelled candidate lists."""
    from training.pipeline import train_retrieval as stage

    with _training_errors():
        evaluation, training, settings, store = _setup(data, features, params)
        stage(data, store, evaluation, training, out, settings, tune, _recommend(params))
    console.print(f"[green]wrote[/green] {out}/ (model/, candidates.parquet, tuning/)")


def train_ranker(
    data: Data = DATA,
    features: Features = FEATURES,
    retrieval: Annotated[Path, typer.Option(help="train-retrieval's output.")] = WORK / "retrieval",
    out: Annotated[Path, typer.Option(help="Stage output folder.")] = WORK / "ranker",
    params: Params = PARAMS,
    tune: Tune = None,
) -> None:
    """Stage: the XGBoost ranker over the retriever's lists; writes OUT/version/."""
    from training.pipeline import train_ranker as stage

    with _training_errors():
        evaluation, training, settings, store = _setup(data, features, params)
        stage(data, store, evaluation, training, retrieval, out, settings, tune)
    console.print(f"[green]wrote[/green] {out}/version/ (a model version) and {out}/tuning/")


def evaluate(
    data: Data = DATA,
    features: Annotated[
        Path | None, typer.Option(help="Feature tables (segments; Feast for --model).")
    ] = FEATURES,
    ground_truth: GroundTruth = None,
    model: Annotated[
        Path | None, typer.Option(help="A model version folder to evaluate with the baselines.")
    ] = None,
    publish: Annotated[
        Path | None,
        typer.Option(help="Copy the evaluated --model version here with its metrics (registry)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write metrics and plots.")] = EVALUATION,
    params: Params = PARAMS,
) -> None:
    """Evaluate the baselines (and the oracle, and a trained --model) on the test window."""
    from tailwise import registry
    from tailwise.lineage import check_features
    from tailwise.versions import publish as publish_version
    from training.config import EvaluationParams
    from training.evaluate import evaluate_baselines
    from training.pipeline import evaluate_version, evaluation_metrics

    with _training_errors():
        if features is not None:
            check_features(features, data, "evaluate")
        p = EvaluationParams.model_validate(_section(params, "evaluation"))
        if model is None:
            result = evaluate_baselines(data, p, ground_truth, features, _recommend(params))
        else:
            if features is None:
                raise typer.BadParameter("--model needs --features (the feature store)")
            _, _, _, store = _setup(data, features, params)
            result = evaluate_version(data, store, p, model, ground_truth, features)
    write_evaluation(result, out)
    console.print(result.to_markdown(slices=["all", "new", "returning"]))
    console.print(f"[green]wrote[/green] {out}/metrics.json, ndcg_at_k.csv, report.md")
    if model is not None and publish is not None:
        publish.mkdir(parents=True, exist_ok=True)
        from training.evaluate import quality_summary
        from training.pipeline import platform_model

        folder = publish_version(
            model,
            publish,
            evaluation_metrics(result),
            result.to_markdown(),
            quality_summary(result, platform_model(result)),
        )
        champion = registry.champion(publish)
        role = "the champion" if champion == folder.name else f"a challenger to {champion}"
        console.print(f"[green]published[/green] {folder} as {role} ({publish}/registry.jsonl)")


def _recommend(params: Path) -> Any:
    from tailwise.params import load_params

    return load_params(params).recommend


def _platform_vs_baseline(result: Any) -> None:
    """One line: the platform's NDCG@10 next to the best baseline's."""
    from training.evaluate import best_baseline
    from training.pipeline import platform_model

    MODEL = platform_model(result)
    best = best_baseline(result)
    try:
        platform = result.value(MODEL, "ndcg", 10)
    except KeyError:
        return
    if best is None:
        return
    name, value = best
    ratio = f" ({platform / value:.2f}x)" if value > 0 else ""
    console.print(
        f"NDCG@10: platform {MODEL} {platform:.4f}, best baseline {name} {value:.4f}{ratio}"
    )


def _setup(data: Path, features: Path, params: Path, build: bool = False) -> tuple[Any, ...]:
    """Typed params, settings and the applied Feast store over `features` (built from
    `data` first when `build` and they are missing)."""
    from tailwise.features.build import build_features
    from tailwise.features.store import apply
    from tailwise.params import load_params
    from tailwise.settings import Settings
    from training.config import EvaluationParams
    from training.pipeline import TrainingParams

    evaluation = EvaluationParams.model_validate(_section(params, "evaluation"))
    training = TrainingParams.model_validate(_section(params, "training"))
    if build and not (features / "features_manifest.json").exists():
        console.print(f"building features into {features} ...")
        build_features(data, features, load_params(params).features)
    settings = Settings().model_copy(update={"features_dir": features})
    store, _ = apply(settings)
    return evaluation, training, settings, store


@contextmanager
def _training_errors() -> Iterator[None]:
    """The CLI's errors, plus the training ones a person fixes (exit 3, message names it)."""
    from pydantic import ValidationError

    from training.pipeline import StageError
    from training.tune import TuneError

    with errors(StageError, TuneError, ValidationError):
        yield


def _section(path: Path, name: str) -> dict[str, Any]:
    from tailwise.params import load_params

    extra = load_params(path).model_extra or {}
    return dict(extra.get(name) or {})


def write_evaluation(result: Any, out: Path) -> None:
    """metrics.json for `dvc metrics show`; ndcg_at_k.csv (k, one column per model) for
    `dvc plots show`; report.md with every metric and slice."""
    import json

    from training.pipeline import evaluation_metrics

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(evaluation_metrics(result), indent=2) + "\n")
    table = result.table
    ndcg = table.loc[(table["slice"] == "all") & (table["metric"] == "ndcg")]
    wide = ndcg.pivot_table(index="k", columns="model", values="value", sort=False)
    wide[list(dict.fromkeys(ndcg["model"]))].round(6).to_csv(out / "ndcg_at_k.csv")
    (out / "report.md").write_text(result.to_markdown() + "\n")
