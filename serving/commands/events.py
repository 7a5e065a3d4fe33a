"""`tailwise events consume`: served events and the request log into offline Parquet.

the events and requests streams in Redis --tailwise.ingest.streams.consume, batch by
batch until both are empty--> Parquet under --out (idempotent by id); once, or in a
loop that outlives a Redis restart
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
) -> None:
    """Append served events (and the request log) to Parquet, idempotently by id.

    Redis and the project come from REDIS_URL and TAILWISE_FEAST_PROJECT (else the
    project of feature_store.yaml). Writes under --out, not data/clean, which
    `dvc repro` rewrites.
    """
    import redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    from serving.keys import Keys
    from tailwise.features.store import repo_config
    from tailwise.ingest.streams import consume as consume_batch
    from tailwise.settings import Settings

    with errors():
        settings = Settings()
        keys = Keys(repo_config(settings).project)
        client = redis.Redis.from_url(settings.redis_url)
        try:
            while True:
                try:
                    totals = _drain(lambda: consume_batch(client, keys, out, count=count))
                except RedisConnectionError as exc:
                    if once:
                        raise
                    # A long-running consumer outlives a Redis restart: the entries wait
                    # in the stream (pending ones are re-read), so just try again later.
                    console.print(f"[yellow]Redis unavailable ({exc}); retrying[/yellow]")
                else:
                    console.print(_describe(totals, out))
                if once:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            console.print("stopped")


def _drain(step: Callable[[], ConsumeResult]) -> ConsumeResult:
    """Repeat one-batch passes until both streams are empty; sum the counts."""
    from tailwise.ingest.streams import ConsumeResult

    zero = ConsumeResult(0, 0, 0)
    events, requests = zero, zero
    while True:
        result = step()
        events, requests = _add(events, result), _add(requests, result.requests or zero)
        if not result.read and not (result.requests or zero).read:
            return ConsumeResult(
                events.read, events.written, events.duplicates, events.rejected, requests
            )


def _add(a: ConsumeResult, b: ConsumeResult) -> ConsumeResult:
    from tailwise.ingest.streams import ConsumeResult

    return ConsumeResult(
        a.read + b.read,
        a.written + b.written,
        a.duplicates + b.duplicates,
        a.rejected + b.rejected,
    )


def _describe(result: ConsumeResult, out: Path) -> str:
    from tailwise.ingest.streams import ConsumeResult

    req = result.requests or ConsumeResult(0, 0, 0)
    text = (
        f"events: read {result.read:,}, [green]written {result.written:,}[/green], "
        f"duplicates {result.duplicates:,}; requests: read {req.read:,}, "
        f"[green]written {req.written:,}[/green], duplicates {req.duplicates:,} -> {out}"
    )
    rejected = result.rejected + req.rejected
    if rejected:
        text += f" [yellow]({rejected:,} unreadable entries in {out / 'rejected'})[/yellow]"
    return text
