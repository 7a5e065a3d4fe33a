"""`tailwise experiments validate`, and the bandits' refresh that `tailwise events consume`
runs after each pass: attribute the served events to exposures, recount every bandit's
posteriors and store them with the allocation in Redis (tailwise.experiments)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tailwise.console import console, errors


def refresh_bandits(client: Any, keys: Any, out: Path, params_path: Path) -> str:
    """Attribute the served events to exposures and store every bandit's posteriors and
    allocation (recounted from the whole tables: a repeated pass counts nothing twice)."""
    import pandas as pd

    from tailwise.experiments.attribution import attribute, empty_outcomes, read_table
    from tailwise.experiments.definitions import load_definitions, load_experiments_params
    from tailwise.experiments.posteriors import PosteriorStore, refresh_posteriors

    params = load_experiments_params(params_path)
    folder = params.dir if params.dir.is_absolute() else params_path.parent / params.dir
    definitions = load_definitions(folder)
    bandits = [e for e in definitions.experiments if e.bandit is not None]
    if not bandits:
        return "experiments: no bandit to update"
    exposures, events = read_table(out / "exposures"), read_table(out / "events")
    window = pd.Timedelta(hours=params.attribution_hours)
    outcomes = (
        attribute(exposures, events, window)
        if exposures is not None and events is not None
        else empty_outcomes()
    )
    store = PosteriorStore(client, keys.prefix)
    summary = refresh_posteriors(store, bandits, exposures, outcomes, params)
    parts = [
        f"{name}: " + ", ".join(f"{v} {s['weight']:.2f}" for v, s in arms.items())
        for name, arms in summary.items()
    ]
    return "bandit allocation: " + "; ".join(parts)


def validate_experiments(
    models: Annotated[Path, typer.Option(help="Model versions folder.")] = Path("data/models"),
    params: Annotated[Path, typer.Option(help="params.yaml (experiments.dir).")] = Path(
        "params.yaml"
    ),
) -> None:
    """Check every experiment definition as a replica would at start: fields, weights,
    dates, layers, model versions, rules and candidate sources."""
    from serving.config import ServingConfig
    from serving.experiments import check_definitions, experiments_params
    from tailwise.experiments.definitions import DefinitionError

    config = ServingConfig(models_dir=models, params_path=params)
    with errors(DefinitionError):
        folder = experiments_params(config).dir
        definitions = check_definitions(config)
        for e in definitions.experiments:
            arms = ", ".join(f"{v.name} ({v.type}, {v.weight:g})" for v in e.variants)
            span = (
                f"{e.start:%Y-%m-%d} .. {e.stop:%Y-%m-%d}" if e.stop else f"{e.start:%Y-%m-%d} .."
            )
            console.print(
                f"{e.name}: layer {e.layer} [{e.traffic.offset:g}, {e.traffic.end:g}), "
                f"{span}, {'bandit' if e.bandit else 'fixed'}: {arms}"
            )
        console.print(
            f"[green]{len(definitions.experiments)} experiment(s) valid[/green] in {folder}"
        )
