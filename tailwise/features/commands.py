"""`tailwise features ...`: build, apply, materialise and inspect the feature store."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from tailwise.console import EXIT_BAD_INPUT, console, errors, fail, progress

app = typer.Typer(
    help="Build, register, materialise and read features (Feast).", no_args_is_help=True
)
FeaturesDir = Annotated[
    Path | None,
    typer.Option(help="Feature tables directory (default TAILWISE_FEATURES_DIR or data/features)."),
]


def _settings(features: Path | None = None) -> Any:
    from tailwise.settings import Settings

    settings = Settings()
    if features is not None:
        settings = settings.model_copy(update={"features_dir": features})
    return settings


@app.command()
def build(
    data: Annotated[
        Path, typer.Option(help="Clean data directory (tailwise ingest --out).")
    ] = Path("data/clean"),
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write feature tables (default TAILWISE_FEATURES_DIR or data/features)."
        ),
    ] = None,
    params: Annotated[Path, typer.Option(help="params.yaml with a features: section.")] = Path(
        "params.yaml"
    ),
    engine: Annotated[
        str | None,
        typer.Option(
            help="duckdb (one process) or ray (user/item shards on Ray workers); default "
            "features.engine of params.yaml."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Ray worker CPUs when the build starts Ray (default features.workers)."),
    ] = None,
) -> None:
    """Compute the feature tables (Parquet) from clean data."""
    from pydantic import ValidationError

    from tailwise.features.build import build_features
    from tailwise.features.config import FeaturesParams
    from tailwise.params import load_params

    settings = _settings(out)
    with errors():
        chosen = load_params(params).features
    given = {k: v for k, v in (("engine", engine), ("workers", workers)) if v is not None}
    try:
        chosen = FeaturesParams.model_validate({**chosen.model_dump(), **given})
    except ValidationError as exc:
        bad = exc.errors()[0]
        fail(f"--{bad['loc'][0]}: {bad['msg']}", EXIT_BAD_INPUT)
    with errors(), progress(counts=False) as bar:
        task = bar.add_task("features", total=1.0)

        def step(name: str, done: float) -> None:
            bar.update(task, description=f"features: {name}", completed=done)

        summary = build_features(data, settings.features_dir, chosen, progress=step)
        bar.update(task, description="features: done", completed=1.0)
    from tailwise.lineage import recorded

    rows = ", ".join(f"{name} {n:,}" for name, n in summary.rows.items())
    version = recorded(settings.features_dir) or {}
    console.print(
        f"[green]wrote[/green] {settings.features_dir}: {rows} in {summary.seconds:.1f}s; "
        f"segments: {', '.join(summary.segment_names)}; data version "
        f"{str(version.get('data_version'))[:12]} as of {version.get('as_of')}"
    )


@app.command()
def apply(
    features: FeaturesDir = None,
) -> None:
    """Register entities, views and services of feature_repo/ (like `feast apply`)."""
    from tailwise.features.store import apply as apply_repo

    with errors():
        store, names = apply_repo(_settings(features))
    console.print(f"applied {len(names)} objects to project {store.project!r}")
    for name in names:
        console.print(f"  {name}")


@app.command()
def materialize(
    features: FeaturesDir = None,
) -> None:
    """Load the newest feature values into Redis (incremental after the first run)."""
    from tailwise.features.store import materialize as run

    with errors():
        report = run(_settings(features))
    console.print(
        f"materialised into Redis in {report['seconds']:.1f}s "
        f"({report['mode']}, up to {report['end']})"
    )


@app.command()
def get(
    user: Annotated[str, typer.Option(help="User id.")],
    item: Annotated[list[str] | None, typer.Option(help="Item id (repeat for several).")] = None,
    context: Annotated[
        str,
        typer.Option(help='Request context as JSON, e.g. {"device": "mobile", "country": "DE"}.'),
    ] = "{}",
    features: FeaturesDir = None,
) -> None:
    """Print the online feature vector (retrieval_v1, or ranking_v1 with items) as JSON."""
    from tailwise.features.store import open_store

    try:
        ctx = json.loads(context)
        if not isinstance(ctx, dict):
            raise ValueError("expected a JSON object")
        request = {
            "request_device": ctx.get("device"),
            "request_country": ctx.get("country"),
            "request_ts": int(ctx.get("request_ts", time.time())),
        }
    except (ValueError, TypeError) as exc:
        fail(f"--context: {exc} (device, country: text; request_ts: epoch seconds)")
    with errors():
        store = open_store(_settings(features))
        service = store.get_feature_service("ranking_v1" if item else "retrieval_v1")
        rows = (
            [{"user_id": user, "item_id": i, **request} for i in item]
            if item
            else [{"user_id": user, **request}]
        )
        vector = store.get_online_features(features=service, entity_rows=rows).to_dict()
    user_views = [
        p.name
        for p in service.feature_view_projections
        if p.name.startswith("user_") and p.name != "user_request_context"
    ]
    stored = [
        n
        for p in service.feature_view_projections
        if p.name in user_views
        for n in (f.name for f in p.features)
    ]
    if all(vector[n][0] is None for n in stored):
        fail(
            f"user {user!r} has no online features in project {store.project!r} "
            "(unknown user, or not materialised yet)",
            EXIT_BAD_INPUT,
        )
    per_row = [{name: values[i] for name, values in vector.items()} for i in range(len(rows))]
    body = {
        "service": service.name,
        "at": datetime.now(UTC).isoformat(),
        "features": per_row[0] if len(per_row) == 1 else per_row,
    }
    json.dump(body, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
