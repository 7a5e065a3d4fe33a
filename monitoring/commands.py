"""The monitoring stage's commands: `tailwise monitor run` and `tailwise monitor watch`.

Registered into the `tailwise` CLI through the `tailwise.commands` entry point (the
shared package never imports monitoring). The command builds the typed parameters and
the Feast source once, runs monitoring/run.py with a progress line, and prints the
summary table and where the report is. It exits 0 whatever the decision says: the
decision is data (summary.json) for the retraining loop, not a failure; bad input exits 3
with a message naming the file or key.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tailwise.console import console, errors

monitor_app = typer.Typer(help="Drift, data quality and outcome KPIs of served traffic.")

OUT, MODELS, SERVED = Path("monitoring/reports"), Path("data/models"), Path("data/served")
CLEAN, FEATURES, PARAMS = Path("data/clean"), Path("data/features"), Path("params.yaml")


def register(app: typer.Typer) -> None:
    from monitoring.experiment_commands import report
    from tailwise.experiments.commands import app as experiments_app

    app.add_typer(monitor_app, name="monitor")
    experiments_app.command("report")(report)


@monitor_app.command("run")
def run(
    window: Annotated[
        str | None, typer.Option(help="Length of the current window: 30m, 12h, 1d, 2w.")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="End of the window, ISO time in UTC (default: now).")
    ] = None,
    models: Annotated[Path, typer.Option(help="Published model versions.")] = MODELS,
    model: Annotated[
        str | None, typer.Option(help="Model version (default: the most served in the window).")
    ] = None,
    served: Annotated[
        Path, typer.Option(help="Served log (tailwise events consume --out).")
    ] = SERVED,
    clean: Annotated[Path, typer.Option(help="Clean data (the training window's events).")] = CLEAN,
    features: Annotated[Path, typer.Option(help="Feature tables Feast reads.")] = FEATURES,
    out: Annotated[Path, typer.Option(help="Reports, index and reference cache.")] = OUT,
    params: Annotated[Path, typer.Option(help="params.yaml (monitoring:, ingest:).")] = PARAMS,
) -> None:
    """Compare a window of served traffic with the model's reference; write the report."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from monitoring.config import load_monitoring_params, parse_duration
    from monitoring.run import RunPaths, run_monitor
    from tailwise.params import load_params

    with _monitoring_errors():
        if window is not None:
            parse_duration(window, "--window")
        cfg = load_monitoring_params(params, os.environ, window=window)
        known_types = load_params(params).ingest.event_weights.keys()
        paths = RunPaths(models=models, served=served, clean=clean, out=out)
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
        ) as bar:
            task = bar.add_task("monitor", total=None)
            result = run_monitor(
                cfg,
                paths,
                _end(end),
                _feast_source(features),
                known_types,
                model_version=model,
                step=lambda text: bar.update(task, description=f"monitor: {text}"),
            )
    print_summary(result.summary)
    console.print(f"[green]report[/green] {result.report}")
    console.print(f"[green]index[/green]  {result.index}")


@monitor_app.command("watch")
def watch(
    root: Annotated[
        Path, typer.Option(help="The deployment's folder (dvc.yaml, params.yaml, data/).")
    ] = Path("."),
    every: Annotated[str, typer.Option(help="Time between passes: 30m, 6h, 1d.")] = "6h",
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    window: Annotated[
        str | None, typer.Option(help="Monitoring window (default: params.yaml monitoring.window).")
    ] = None,
    serve_url: Annotated[
        str | None,
        typer.Option(help="The serving app to switch after a promotion (POST /admin/reload)."),
    ] = "http://127.0.0.1:8000",
) -> None:
    """Run the loop on a schedule: consume served traffic, monitor, and when the policy
    asks, retrain with `dvc repro`, challenge the champion and switch the serving app."""
    from monitoring.config import parse_duration
    from monitoring.loop import LoopConfig, LoopError, run_pass

    with _monitoring_errors():
        pause = parse_duration(every, "--every").total_seconds()
        if window is not None:
            parse_duration(window, "--window")
    cfg = LoopConfig(root=root, window=window, serve_url=serve_url or None)
    while True:
        try:
            with console.status("loop") as status:
                outcome = run_pass(cfg, lambda name: status.update(f"loop: {name}"))
        except LoopError as exc:
            console.print(f"[red]loop pass failed:[/red] {exc}")
            if once:
                raise typer.Exit(1) from exc
        else:
            print_pass(outcome)
        if once:
            return
        console.print(f"next pass in {every} (Ctrl-C stops)")
        time.sleep(pause)


def print_pass(outcome: Any) -> None:
    """One loop pass as a few lines a person can act on."""
    console.print(f"report {outcome.report}")
    verdict = "retrain" if outcome.retrain else "no retraining"
    console.print(f"[bold]{verdict}[/bold]: " + "; ".join(outcome.reasons))
    if outcome.decision:
        colour = "green" if outcome.decision == "promoted" else "yellow"
        console.print(
            f"[{colour}]{outcome.decision}[/{colour}] {outcome.challenger} "
            f"(champion was {outcome.champion})"
        )
        for reason in outcome.decision_reasons:
            console.print(f"  - {reason}")
    if outcome.reloaded:
        console.print(f"serving switched to {outcome.serving_version}")
    steps = ", ".join(f"{k} {v:.0f}s" for k, v in outcome.seconds.items())
    console.print(f"steps: {steps}")


def print_summary(summary: Any) -> None:
    """The run's figures as a table on stdout."""
    from rich.table import Table

    drift, pred, quality, events = (
        summary.feature_drift,
        summary.prediction_drift,
        summary.quality,
        summary.events,
    )
    table = Table(title=f"Monitoring {summary.run_id} (model {summary.model_version})")
    table.add_column("check")
    table.add_column("result")
    table.add_column("sample", justify="right")
    table.add_row("feature drift", *_drift_cells(drift))
    table.add_row(
        "prediction drift",
        ("drift" if pred.drifted else "no drift") if pred.measured else pred.note,
        f"{pred.rows_current:,} vs {pred.rows_reference:,}",
    )
    table.add_row(
        "incoming events",
        "; ".join(events.issues) or "no issues",
        f"{events.rows:,}",
    )
    table.add_row("event drift", *_drift_cells(events.drift))
    kpis = ", ".join(f"{k} {v:.4f}" for k, v in quality.kpis.items())
    table.add_row(
        "outcome KPIs",
        kpis if quality.measured else f"not measured: {quality.note}",
        f"{quality.requests:,} requests",
    )
    if summary.decision is not None:
        table.add_row(
            "decision",
            ("retrain: " if summary.decision.retrain else "no retraining: ")
            + "; ".join(summary.decision.reasons),
            "",
        )
    Console().print(table)


def _drift_cells(drift: Any) -> tuple[str, str]:
    """(verdict, sample sizes) of a FeatureDrift."""
    if not drift.measured:
        return f"not measured: {drift.note}", f"{drift.rows_current:,} vs {drift.rows_reference:,}"
    named = f": {', '.join(drift.drifted[:6])}" if drift.drifted else ""
    verdict = f"{drift.share:.0%} drifted ({len(drift.drifted)}/{len(drift.columns)}){named}"
    return verdict, f"{drift.rows_current:,} vs {drift.rows_reference:,}"


def _end(text: str | None) -> datetime:
    from monitoring.config import MonitoringConfigError

    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise MonitoringConfigError(f"--end: not an ISO time: {text!r}") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _feast_source(features: Path) -> Any:
    """Opens the feature store only when a reference must be built."""

    def make(model: Any) -> Any:
        from monitoring.reference import FeastFeatures
        from tailwise.features.store import open_store
        from tailwise.settings import Settings

        settings = Settings().model_copy(update={"features_dir": features})
        return FeastFeatures(open_store(settings), model.ranking_service, model.ranker_features)

    return make


@contextmanager
def _monitoring_errors() -> Iterator[None]:
    """The CLI's errors, plus the monitoring ones a person fixes (exit 3, message names it)."""
    from monitoring.config import MonitoringConfigError
    from monitoring.reference import ReferenceBuildError
    from monitoring.windows import WindowDataError

    with errors(MonitoringConfigError, ReferenceBuildError, WindowDataError):
        yield
