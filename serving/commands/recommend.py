"""`tailwise recommend`: recommendations for a file of users, written to CSV.

user ids (one per line) --serving.batch (the serving graph, in this process; or in
`--workers` Ray tasks over shards of the list)--> CSV
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from tailwise.console import console, errors, fail


def recommend(
    users_file: Annotated[Path, typer.Option(help="User ids, one per line.")],
    out: Annotated[Path, typer.Option(help="CSV to write: user_id,item_id,rank,score.")],
    k: Annotated[int, typer.Option(min=1, max=1000, help="Items per user.")] = 10,
    model: Annotated[
        str | None, typer.Option(help="Model version (default: the one data/models/LATEST names).")
    ] = None,
    models: Annotated[Path, typer.Option(help="Model versions folder.")] = Path("data/models"),
    data: Annotated[Path, typer.Option(help="Clean data (seen items).")] = Path("data/clean"),
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=1024,
            help="1: in this process; more: Ray tasks over shards of the users (a running "
            "cluster when RAY_ADDRESS is set).",
        ),
    ] = 1,
    at: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
            help="Request time of every user, UTC (default: now): the same time gives the "
            "same lists.",
        ),
    ] = None,
) -> None:
    """Batch recommendations for the listed users through the serving graph (features from
    Redis: run `tailwise features materialize` first); already-seen items are left out
    unless the model version allows repeats. Says how many users with history got the
    cold-start list (0 in normal operation)."""
    from rich.progress import Progress

    from serving.batch import recommend_batch, recommend_users_on_ray
    from serving.bundle import BundleError
    from serving.config import ServingConfig
    from tailwise.settings import Settings
    from tailwise.user_list import read_user_ids

    try:
        user_ids = read_user_ids(users_file)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    with errors(BundleError):
        config = ServingConfig(models_dir=models, model_version=model, clean_dir=data)
        when = (at or datetime.now(UTC)).replace(tzinfo=UTC)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("recommending", total=len(user_ids))

            def done(n: int) -> None:
                progress.update(task, completed=n)

            if workers > 1:
                run = recommend_users_on_ray(config, Settings(), user_ids, k, workers, done, when)
            else:
                run = recommend_batch(config, Settings(), user_ids, k, when, done)
    recs, tally = run.recs, run.tally
    recs.to_csv(out, index=False)
    repeats = "allowed" if run.allow_repeats else "not allowed: seen items left out"
    where = f"; {workers} Ray workers" if workers > 1 else ""
    console.print(
        f"[green]wrote[/green] {out}: {len(recs):,} rows for {recs['user_id'].nunique():,}"
        f" of {len(user_ids):,} users (model {run.version}; repeats {repeats}{where})"
    )
    if run.tower_fallback is not None:
        console.print(
            f"[yellow]the query vectors came from the SavedModel itself[/yellow]"
            f" ({run.tower_fallback})"
        )
    cold = tally.describe()
    if tally.without_features:
        cold += f"; {tally.without_features} of them had no online features"
    console.print(cold if not tally.cold else f"[yellow]{cold}[/yellow]", soft_wrap=True)
