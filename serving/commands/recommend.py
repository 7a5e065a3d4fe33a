"""`tailwise recommend`: recommendations for a file of users, written to CSV.

user ids (one per line) --serving.batch (the serving graph, in this process)--> CSV
"""

from __future__ import annotations

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
) -> None:
    """Batch recommendations for the listed users through the serving graph (features from
    Redis: run `tailwise features materialize` first); already-seen items are left out
    unless the model version allows repeats. Says how many users with history got the
    cold-start list (0 in normal operation)."""
    from rich.progress import Progress

    from serving.batch import Tally, open_graph, recommend_users
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
        graph = open_graph(config, Settings())
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("recommending", total=len(user_ids))
            tally = Tally()
            recs = recommend_users(
                graph, user_ids, k, lambda n: progress.update(task, completed=n), tally
            )
    recs.to_csv(out, index=False)
    bundle = graph.bundle
    repeats = "allowed" if bundle.allow_repeats else "not allowed: seen items left out"
    console.print(
        f"[green]wrote[/green] {out}: {len(recs):,} rows for {recs['user_id'].nunique():,}"
        f" of {len(user_ids):,} users (model {bundle.version}; repeats {repeats})"
    )
    if bundle.tower_fallback is not None:
        console.print(
            f"[yellow]the query vectors came from the SavedModel itself[/yellow]"
            f" ({bundle.tower_fallback})"
        )
    cold = tally.describe()
    if tally.without_features:
        cold += f"; {tally.without_features} of them had no online features"
    console.print(cold if not tally.cold else f"[yellow]{cold}[/yellow]", soft_wrap=True)
