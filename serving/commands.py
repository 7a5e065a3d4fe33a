"""`tailwise serve`, `tailwise recommend` and `tailwise events ...`: the serving stage's commands.

Registered into the `tailwise` CLI through the `tailwise.commands` entry point, so the
shared package never imports serving code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tailwise.console import EXIT_SERVICE, console, errors, fail

if TYPE_CHECKING:  # the CLI loads this module for every command: nothing heavy at import
    from serving.config import ServingConfig
    from tailwise.ingest.streams import ConsumeResult

app = typer.Typer(
    help="Served traffic: move the events and request streams into offline Parquet tables.",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="events")
    root.command(name="serve")(serve)
    root.command(name="recommend")(recommend)


PID_FILE = Path(".tailwise/serve.pid")
LOG_FILE = Path(".tailwise/serve.log")
KEY_FILE = Path(".tailwise/api_key")
ADMIN_KEY_FILE = Path(".tailwise/admin_key")  # monitoring.loop reads it for /admin/reload


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    model: Annotated[
        str | None, typer.Option(help="Model version (default: data/models/LATEST).")
    ] = None,
    models: Annotated[Path, typer.Option(help="Model versions folder.")] = Path("data/models"),
    replicas: Annotated[
        int | None, typer.Option(min=1, help="Replicas of the app (default 1).")
    ] = None,
    background: Annotated[
        bool, typer.Option("--background", help="Start detached, wait until ready, return.")
    ] = False,
    stop: Annotated[
        bool, typer.Option("--stop", help="Stop a server started with --background.")
    ] = False,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Any ServingConfig field as KEY=VALUE (YAML value), repeatable: "
            "--set log_feature_sample=1 --set rules.max_per_category=3",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (Ray Serve) on this machine; Ctrl-C stops it cleanly."""
    if stop:
        _stop_background()
        return
    from serving.config import ServingConfig
    from serving.server import ServeError, ensure_admin_key, ensure_api_key, run_until_stopped

    with errors():
        fields = {
            "host": host,
            "port": port,
            "model_version": model,
            "models_dir": models,
            "num_replicas": replicas,
        }
        config = ServingConfig.model_validate(_overrides(fields, settings or []))
        config, generated = ensure_api_key(config)
        config, admin = ensure_admin_key(config)
        if background:
            _start_background(config, generated, settings or [], admin)
            return

        def ready(url: str) -> None:
            console.print(f"[green]serving[/green] {url}  (API docs: {url}/docs)")
            if generated:
                console.print(
                    f"API key for /events: [bold]{generated}[/bold] "
                    "(set TAILWISE_API_KEYS to choose your own)"
                )
            if admin:
                console.print(
                    f"admin key for /admin: [bold]{admin}[/bold] "
                    "(set TAILWISE_ADMIN_KEYS to choose your own)"
                )
            console.print("Ctrl-C stops the server")

        try:
            run_until_stopped(ready, config)
        except ServeError as exc:
            fail(str(exc), EXIT_SERVICE)
    console.print("stopped")


def _overrides(fields: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """`fields` updated by KEY=VALUE items (dotted keys reach nested models); a malformed
    item is a bad-parameter error naming it."""
    import yaml

    out: dict[str, Any] = dict(fields)
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--set {item!r}: expected KEY=VALUE")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise typer.BadParameter(f"--set {item!r}: the value is not YAML: {exc}") from exc
        *parents, leaf = key.strip().split(".")
        node = out
        for name in parents:
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                raise typer.BadParameter(f"--set {item!r}: {name} is not a section")
        node[leaf] = value
    return out


def _start_background(
    config: ServingConfig, generated: str | None, overrides: list[str], admin: str | None = None
) -> None:
    import os
    import subprocess
    import sys

    from serving.server import wait_ready

    PID_FILE.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if generated:
        env["TAILWISE_API_KEYS"] = generated
    if admin:
        env["TAILWISE_ADMIN_KEYS"] = admin
    args = ["--host", config.host, "--port", str(config.port), "--models", str(config.models_dir)]
    if config.model_version:
        args += ["--model", config.model_version]
    if config.num_replicas:
        args += ["--replicas", str(config.num_replicas)]
    for item in overrides:
        args += ["--set", item]
    with LOG_FILE.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tailwise.cli", "serve", *args],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    PID_FILE.write_text(str(process.pid))
    # for serving/demo_requests.sh and the monitoring loop; readable by this user only
    for path, key in ((KEY_FILE, generated), (ADMIN_KEY_FILE, admin)):
        if key:
            path.write_text(key)
            path.chmod(0o600)
    url = f"http://{config.host}:{config.port}"
    console.print(f"starting the server in the background (log: {LOG_FILE}) ...")
    wait_ready(url, timeout=300)
    console.print(f"[green]serving[/green] {url}  (API docs: {url}/docs; pid {process.pid})")
    if generated:
        console.print(f"API key for /events: [bold]{generated}[/bold]")
    if admin:
        console.print(f"admin key for /admin: [bold]{admin}[/bold] (also in {ADMIN_KEY_FILE})")
    console.print("stop it with: tailwise serve --stop")


def _stop_background() -> None:
    import os
    import signal

    if not PID_FILE.exists():
        console.print(f"no background server ({PID_FILE} not found)")
        return
    pid = int(PID_FILE.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        console.print(f"process {pid} had already exited")
    else:
        for _ in range(120):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        console.print(f"stopped the server (pid {pid})")
    PID_FILE.unlink(missing_ok=True)


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
