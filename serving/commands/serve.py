"""`tailwise serve`: the HTTP API (Ray Serve) in the foreground, or a detached one.

flags + repeated --set KEY=VALUE --parse_overrides--> ServingConfig --> run until
Ctrl-C (serving.server), or start / stop a detached server (background.py)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from serving.commands.background import LOG_FILE, start_background, stop_background
from tailwise.console import EXIT_SERVICE, console, errors, fail


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
    address: Annotated[
        str | None,
        typer.Option(
            help="Serve on an existing Ray cluster: 'auto', its head's host:port or "
            "ray://host:port (default: start Ray on this machine). Autoscale with "
            "--set autoscaling.max_replicas=4 --set autoscaling.target_ongoing_requests=8.",
        ),
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
    """Serve the HTTP API (Ray Serve) on this machine or a Ray cluster; Ctrl-C stops it
    cleanly (on a cluster: deletes the app, the cluster stays up)."""
    if stop:
        stop_background()
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
            "ray_address": address,
        }
        config = ServingConfig.model_validate(parse_overrides(fields, settings or []))
        config, generated = ensure_api_key(config)
        config, admin = ensure_admin_key(config)
        if background:
            try:
                start_background(config, generated, settings or [], admin)
            except ServeError as exc:  # not ready in time: stop what was started, say where to look
                stop_background()
                fail(f"{exc} (the server's log: {LOG_FILE})", EXIT_SERVICE)
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


def parse_overrides(fields: dict[str, Any], items: list[str]) -> dict[str, Any]:
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
