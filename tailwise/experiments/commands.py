"""`tailwise experiments ...` (the command group) and `tailwise simulate`.

The group lives here so every stage can add its commands to it: serving adds `validate`
(rules and model versions checked the way a replica does at start), monitoring adds
`report`.

`tailwise simulate`: simulated shoppers against a running API (tailwise.experiments.simulation).
Bounded by --max-requests and --time-limit; a progress bar counts visits. Ids are sent as
the ingested data holds them (keyed pseudonyms, the key from TAILWISE_HMAC_KEY as ingest
reads it) unless --raw-ids. The run's own exposures and outcomes go to --out (Parquet, the
tables of tailwise.experiments) with per-variant figures and the truth in summary.json.
Exit codes as the CLI's: 3 bad input, 5 the API did not answer.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from tailwise.console import EXIT_SERVICE, console, errors, fail, progress

app = typer.Typer(
    help="Experiments as code: check definitions, read results.", no_args_is_help=True
)


def simulate(
    truth: Annotated[
        Path, typer.Option(help="A `tailwise generate` folder (its ground_truth/ is read).")
    ] = Path("data/raw"),
    url: Annotated[str, typer.Option(help="The API's base URL.")] = "http://127.0.0.1:8000",
    days: Annotated[int, typer.Option(help="Simulated days, ending now.")] = 3,
    users_per_day: Annotated[int, typer.Option(help="Visits per simulated day.")] = 100,
    k: Annotated[int, typer.Option(help="Items asked for per visit.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same people and choices.")] = 0,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 8,
    max_requests: Annotated[int, typer.Option(help="Stop after this many visits.")] = 10_000,
    time_limit: Annotated[float, typer.Option(help="Stop after this many seconds.")] = 600.0,
    raw_ids: Annotated[
        bool, typer.Option("--raw-ids", help="Send the generator's user ids, not pseudonyms.")
    ] = False,
    out: Annotated[Path, typer.Option(help="Where the run's log and summary go.")] = Path(
        "data/simulated"
    ),
) -> None:
    """Simulated people ask /recommend, click and buy by their true utility, send /events."""
    import httpx

    from tailwise.experiments.simulation import (
        ChoiceModel,
        Shoppers,
        SimulationConfig,
        SimulationError,
    )
    from tailwise.experiments.simulation import (
        simulate as run,
    )

    with errors(SimulationError):
        cfg = SimulationConfig(
            days=days, users_per_day=users_per_day, k=k, seed=seed, concurrency=concurrency,
            max_requests=max_requests, time_limit_s=time_limit, raw_ids=raw_ids,
        )  # fmt: skip
        shoppers = Shoppers(truth, ChoiceModel(), seed=seed)
        ids = _id_map(shoppers.user_ids, raw_ids)
        headers = {"X-API-Key": key} if (key := _api_key()) else {}

        async def go(update: Any) -> Any:
            timeout = httpx.Timeout(30.0)
            async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
                return await run(client, shoppers, cfg, ids.__getitem__, headers, update)

        try:
            with progress() as bar:
                task = bar.add_task("shoppers", total=min(days * users_per_day, max_requests))
                result = asyncio.run(go(lambda done, total: bar.update(task, completed=done)))
        except httpx.TransportError as exc:
            fail(
                f"the API at {url} did not answer ({exc}); start it with `tailwise serve`",
                EXIT_SERVICE,
            )
    result.write(out)
    summary = {"url": url, "requests": result.requests, "failed": result.failed,
               "clicks": result.clicks, "purchases": result.purchases,
               "revenue": round(result.revenue, 2), "seconds": round(result.seconds, 1),
               "stopped": result.stopped, "errors": result.errors,
               "per_variant": result.per_variant()}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print(summary)
    console.print(f"[green]wrote[/green] {out} (exposures.parquet, outcomes.parquet, summary.json)")


def _id_map(user_ids: list[str], raw: bool) -> dict[str, str]:
    if raw:
        return {u: u for u in user_ids}
    import pandas as pd

    from tailwise.privacy import load_key, pseudonymise
    from tailwise.settings import Settings

    keyed = pseudonymise(pd.Series(user_ids), load_key(Settings()))
    return dict(zip(user_ids, keyed, strict=True))


def _api_key() -> str | None:
    from tailwise.settings import Settings

    if os.environ.get("TAILWISE_API_KEY"):
        return os.environ["TAILWISE_API_KEY"]
    path = Settings().home / "api_key"
    return path.read_text().strip() if path.exists() else None


def _print(summary: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(
        f"{summary['requests']:,} visits ({summary['failed']:,} failed) in {summary['seconds']}s: "
        f"{summary['clicks']:,} clicks, {summary['purchases']:,} purchases, "
        f"revenue {summary['revenue']:,.2f}"
        + (f"; {summary['stopped']}" if summary["stopped"] else "")
    )
    for error in summary["errors"]:
        console.print(f"[red]failed:[/red] {error}")
    table = Table(title="Per variant (true utility: mean over the items shown)")
    for col in ("variant", "requests", "CTR", "purchases", "revenue", "true utility"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for variant, v in summary["per_variant"].items():
        table.add_row(
            variant, f"{v['requests']:,}", f"{v['clicks'] / max(v['requests'], 1):.3f}",
            f"{v['purchases']:,}", f"{v['revenue']:,.2f}", f"{v['mean_true_utility']:.3f}",
        )  # fmt: skip
    console.print(table)
