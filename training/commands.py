"""`tailwise evaluate` (and later `train`, `recommend`): the training stage's commands.

Registered into the `tailwise` CLI through the `tailwise.commands` entry point, so the
shared package never imports training code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command(name="evaluate")(evaluate)
    app.command(name="train")(train)
    app.command(name="recommend")(recommend)


def recommend(
    users_file: Annotated[Path, typer.Option(help="User ids, one per line.")],
    out: Annotated[Path, typer.Option(help="CSV to write: user_id,item_id,rank,score.")],
    k: Annotated[int, typer.Option(help="Items per user.")] = 10,
    model: Annotated[
        str | None, typer.Option(help="Model version (default: the one data/models/LATEST names).")
    ] = None,
    models: Annotated[Path, typer.Option(help="Model versions folder.")] = Path("data/models"),
    data: Annotated[Path, typer.Option(help="Clean data (seen items).")] = Path("data/clean"),
    features: Annotated[Path, typer.Option(help="Feature tables.")] = Path("data/features"),
) -> None:
    """Batch recommendations for the listed users from a trained model version."""
    from tailwise.cli import EXIT_BAD_INPUT, _errors
    from tailwise.features.store import open_store
    from tailwise.settings import Settings
    from training.batch import (
        ModelNotFoundError,
        load_recommender,
        read_user_ids,
        recommend_batch,
        version_folder,
    )

    try:
        folder = version_folder(models, model)
        user_ids = read_user_ids(users_file)
    except (ModelNotFoundError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    with _errors():
        store = open_store(Settings().model_copy(update={"features_dir": features}))
        recs = recommend_batch(load_recommender(folder, store, data), user_ids, k)
    recs.to_csv(out, index=False)
    console.print(
        f"[green]wrote[/green] {out}: {len(recs):,} rows for {recs['user_id'].nunique():,}"
        f" of {len(user_ids):,} users (model {folder.name})"
    )


def train(
    data: Annotated[Path, typer.Option(help="Clean data (tailwise ingest --out).")] = Path(
        "data/clean"
    ),
    features: Annotated[Path, typer.Option(help="Feature tables (tailwise features build).")] = (
        Path("data/features")
    ),
    ground_truth: Annotated[
        Path | None, typer.Option(help="Generator ground truth, for the oracle ceiling.")
    ] = None,
    models: Annotated[Path, typer.Option(help="Where model versions are written.")] = Path(
        "data/models"
    ),
    params: Annotated[Path, typer.Option(help="params.yaml (evaluation:, training:).")] = Path(
        "params.yaml"
    ),
    tune: Annotated[
        bool,
        typer.Option(
            help="First search both models' settings with Ray Tune (params training.tune)."
        ),
    ] = False,
) -> None:
    """Train the two-tower retriever and the ranker, evaluate them against the baselines."""
    from tailwise.cli import EXIT_BAD_INPUT, _errors
    from tailwise.features.build import build_features
    from tailwise.features.store import apply
    from tailwise.params import load_params
    from tailwise.settings import Settings
    from training.config import EvaluationParams
    from training.pipeline import TrainingParams
    from training.pipeline import train as run_train

    with _errors():
        evaluation = EvaluationParams.model_validate(_section(params, "evaluation"))
        training = TrainingParams.model_validate(_section(params, "training"))
        if not (features / "features_manifest.json").exists():
            console.print(f"building features into {features} ...")
            build_features(data, features, load_params(params).features)
        settings = Settings().model_copy(update={"features_dir": features})
        store, _ = apply(settings)
        if tune:
            from training.pipeline import tune_both
            from training.tune import TuneError

            console.print("tuning with Ray Tune (validation window) ...")
            try:
                training = tune_both(settings, data, evaluation, training, models / "tuning")
            except TuneError as exc:
                console.print(f"[red]error:[/red] {exc}")
                raise typer.Exit(EXIT_BAD_INPUT) from exc
            console.print(f"best settings: {training.model_dump()}")
        console.print("training (two-tower retrieval, then the ranker) and evaluating ...")
        outcome = run_train(data, store, evaluation, training, models, ground_truth, features)
    console.print(outcome.result.to_markdown())
    console.print(
        f"[green]model version {outcome.version}[/green] in {outcome.folder} "
        f"({outcome.seconds:.0f}s)"
    )


def evaluate(
    data: Annotated[Path, typer.Option(help="Clean data (tailwise ingest --out).")] = Path(
        "data/clean"
    ),
    features: Annotated[
        Path | None, typer.Option(help="Feature tables, for slicing by user segment.")
    ] = Path("data/features"),
    ground_truth: Annotated[
        Path | None, typer.Option(help="Generator ground truth, for the oracle ceiling.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write metrics and plots.")] = Path(
        "data/evaluation"
    ),
    params: Annotated[Path, typer.Option(help="params.yaml with an evaluation: section.")] = Path(
        "params.yaml"
    ),
) -> None:
    """Evaluate the baselines (and the oracle) on the test window; write metrics and plots."""
    from tailwise.cli import _errors
    from training.config import EvaluationParams
    from training.evaluate import evaluate_baselines

    with _errors():
        p = EvaluationParams.model_validate(_section(params, "evaluation"))
        result = evaluate_baselines(data, p, ground_truth, features)
    write_evaluation(result, out)
    console.print(result.to_markdown())
    console.print(f"[green]wrote[/green] {out}/metrics.json, ndcg_at_k.csv, report.md")


def _section(path: Path, name: str) -> dict[str, Any]:
    from tailwise.params import load_params

    extra = load_params(path).model_extra or {}
    return dict(extra.get(name) or {})


def write_evaluation(result: Any, out: Path) -> None:
    """metrics.json for `dvc metrics show`, ndcg_at_k.csv for `dvc plots show`, report.md."""
    out.mkdir(parents=True, exist_ok=True)
    table = result.table
    overall = table.loc[table["slice"] == "all"]
    metrics: dict[str, dict[str, float]] = {}
    for row in overall.itertuples():
        metrics.setdefault(row.model, {})[f"{row.metric}@{row.k}"] = round(float(row.value), 6)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    ndcg = overall.loc[overall["metric"] == "ndcg", ["model", "k", "value"]]
    ndcg.rename(columns={"value": "ndcg"}).to_csv(out / "ndcg_at_k.csv", index=False)
    (out / "report.md").write_text(result.to_markdown() + "\n")
