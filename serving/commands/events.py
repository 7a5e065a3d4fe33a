"""`tailwise events consume`: served events and the request log into offline Parquet.

the events, requests and exposures streams in Redis --tailwise.ingest.streams.consume,
batch by batch until all are empty--> Parquet under --out (idempotent by id; erased
people's entries dropped); once, or in a loop that outlives a Redis restart; then the
bandits' posteriors are recounted (serving.commands.experiments)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tailwise.console import console, errors

if TYPE_CHECKING:  # the CLI loads this module for every command: nothing heavy at import
    from tailwise.ingest.streams import ConsumeResult

app = typer.Typer(
    help="Served traffic: move the events and request streams into offline Parquet tables.",
    no_args_is_help=True,
)


@app.command()
def consume(
    out: Annotated[Path, typer.Option(help="Where served events and requests are written.")] = Path(
        "data/served"
    ),
    once: Annotated[
        bool, typer.Option("--once", help="Move what is in the streams now, then exit.")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between passes when looping.")
    ] = 30.0,
    count: Annotated[int, typer.Option(min=1, help="Stream entries per batch.")] = 5000,
    params: Annotated[
        Path, typer.Option(help="params.yaml (experiments: attribution window, folder).")
    ] = Path("params.yaml"),
    data: Annotated[
        Path, typer.Option(help="Clean data, whose erasure ledger (erasures.parquet) is read.")
    ] = Path("data/clean"),
) -> None:
    """Append served events (and the request log, and experiment exposures) to Parquet,
    idempotently by id; then recount the bandits' posteriors and allocation in Redis.

    Redis and the project come from REDIS_URL and TAILWISE_FEAST_PROJECT (else the
    project of feature_store.yaml). Writes under --out, not data/clean, which
    `dvc repro` rewrites.
    """
    from redis.exceptions import ConnectionError as RedisConnectionError

    from serving.commands.experiments import refresh_bandits
    from serving.keys import Keys
    from tailwise.erasure import erased_filter
    from tailwise.experiments.definitions import DefinitionError
    from tailwise.features.store import repo_config
    from tailwise.ingest.streams import consume as consume_batch
    from tailwise.privacy import load_key
    from tailwise.redis_clients import CLUSTER_UNAVAILABLE, open_redis
    from tailwise.settings import Settings

    retryable: tuple[type[Exception], ...] = (RedisConnectionError, *CLUSTER_UNAVAILABLE)
    with errors(DefinitionError):
        settings = Settings()
        keys = Keys.of(repo_config(settings).project, settings)
        client = open_redis(settings)
        try:
            while True:
                try:
                    # Erased people's entries are dropped (the ledger is read each pass).
                    erased = erased_filter(client, keys.project, [data], lambda: load_key(settings))
                    totals = _drain(
                        lambda erased=erased: consume_batch(  # type: ignore[misc]
                            client, keys, out, count=count, erased=erased
                        )
                    )
                except retryable as exc:
                    if once:
                        raise
                    # A long-running consumer outlives a Redis restart (or a cluster's
                    # failover): the entries wait in the stream (pending ones are re-read),
                    # so just try again later.
                    console.print(f"[yellow]Redis unavailable ({exc}); retrying[/yellow]")
                else:
                    console.print(_describe(totals, out))
                    if totals.exposures is not None and (
                        totals.exposures.written or totals.written
                    ):
                        console.print(refresh_bandits(client, keys, out, params))
                if once:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            console.print("stopped")


def _drain(step: Callable[[], ConsumeResult]) -> ConsumeResult:
    """Repeat one-batch passes until the streams are empty; sum the counts."""
    from tailwise.ingest.streams import ConsumeResult

    zero = ConsumeResult(0, 0, 0)
    events, requests, exposures = zero, zero, zero
    while True:
        result = step()
        events, requests = _add(events, result), _add(requests, result.requests or zero)
        exposures = _add(exposures, result.exposures or zero)
        if not result.entries_read:
            return ConsumeResult(
                events.read,
                events.written,
                events.duplicates,
                events.rejected,
                requests,
                exposures,
                erased=events.erased,
            )


def _add(a: ConsumeResult, b: ConsumeResult) -> ConsumeResult:
    from tailwise.ingest.streams import ConsumeResult

    return ConsumeResult(
        a.read + b.read,
        a.written + b.written,
        a.duplicates + b.duplicates,
        a.rejected + b.rejected,
        erased=a.erased + b.erased,
    )


def _describe(result: ConsumeResult, out: Path) -> str:
    from tailwise.ingest.streams import ConsumeResult

    req = result.requests or ConsumeResult(0, 0, 0)
    text = (
        f"events: read {result.read:,}, [green]written {result.written:,}[/green], "
        f"duplicates {result.duplicates:,}; requests: read {req.read:,}, "
        f"[green]written {req.written:,}[/green], duplicates {req.duplicates:,} -> {out}"
    )
    if result.exposures is not None:
        exp = result.exposures
        text += f"; exposures: read {exp.read:,}, [green]written {exp.written:,}[/green]"
    if result.erased:
        text += f" ({result.erased:,} events of erased people dropped)"
    rejected = result.rejected + req.rejected
    if rejected:
        text += f" [yellow]({rejected:,} unreadable entries in {out / 'rejected'})[/yellow]"
    return text
