"""`tailwise experiments report NAME`: an experiment's statistics as JSON and HTML.

Reads the exposures and outcomes tables (Parquet files or folders with the columns of
tailwise.experiments); by default the consumer's tables under --served (exposures/, and
outcomes attributed from its events/ with params.yaml's attribution window), writes <out>/experiments/<NAME>/report.{json,html}, refreshes the
monitoring index so it links the report, and prints the comparison. The sequential test is
the one the experiment's definition plans (params.yaml experiments.dir; a group-sequential
report is a look, counted from the previous report.json). Exits 0 whatever the
result (a sample-ratio mismatch is printed in red and recorded); bad input exits 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tailwise.console import console, errors

if TYPE_CHECKING:
    from tailwise.experiments.group_sequential import SequentialPlan


def report(
    name: Annotated[str, typer.Argument(help="The experiment's name.")],
    exposures: Annotated[
        Path | None, typer.Option(help="Exposures: Parquet file or folder (default: SERVED).")
    ] = None,
    outcomes: Annotated[
        Path | None,
        typer.Option(help="Attributed outcomes: Parquet (default: attributed from SERVED)."),
    ] = None,
    served: Annotated[
        Path, typer.Option(help="The consumer's tables (tailwise events consume --out).")
    ] = Path("data/served"),
    params: Annotated[Path, typer.Option(help="params.yaml (experiments.attribution_hours).")] = (
        Path("params.yaml")
    ),
    out: Annotated[Path, typer.Option(help="Monitoring reports folder.")] = Path(
        "monitoring/reports"
    ),
    control: Annotated[str | None, typer.Option(help="Control variant.")] = None,
    weights: Annotated[
        str | None,
        typer.Option(help="Configured weights, 'control=0.5,b=0.5' (default: propensities)."),
    ] = None,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
) -> None:
    """Per variant KPIs, tests with Holm and sequential intervals, SRM; JSON + HTML."""
    from monitoring.experiments import read_table, write_experiment_report
    from monitoring.report import write_index
    from tailwise.experiments.analysis import AnalysisConfig
    from tailwise.experiments.definitions import DefinitionError, load_experiments_params
    from tailwise.experiments.stats import StatsError
    from tailwise.params import ParamsError

    with errors(StatsError, ParamsError, DefinitionError):
        settings = load_experiments_params(params)
        plan, stopped = sequential_plan(settings.dir, name)
        cfg = AnalysisConfig(
            control=control, alpha=alpha, weights=parse_weights(weights),
            declines=settings.declines, sequential=plan, stopped=stopped,
        )  # fmt: skip
        exp = read_table(exposures or served / "exposures", "exposures")
        if outcomes is not None:
            outc = read_table(outcomes, "outcomes")
        else:
            import pandas as pd

            from tailwise.experiments.attribution import attribute_served

            outc = attribute_served(served, pd.Timedelta(hours=settings.attribution_hours))
        with console.status(f"analysing {name}"):
            result, folder = write_experiment_report(name, exp, outc, cfg, out)
            index = write_index(out)
    print_result(result)
    console.print(f"[green]report[/green] {folder / 'report.html'}")
    console.print(f"[green]index[/green]  {index}")
    if result.get("declines"):
        alert_declines(result, folder / "report.html", params)


def sequential_plan(folder: Path, name: str) -> tuple[SequentialPlan, bool]:
    """The experiment definition's sequential plan and whether it has stopped; an
    experiment without a definition (any more) gets the confidence sequence."""
    from datetime import UTC, datetime

    from tailwise.experiments.definitions import load_definitions
    from tailwise.experiments.group_sequential import SequentialPlan

    found = [e for e in load_definitions(folder).experiments if e.name == name]
    if not found:
        return SequentialPlan(), False
    e = found[0]
    return e.sequential, e.stop is not None and datetime.now(UTC) >= e.stop


def alert_declines(result: dict[str, Any], report: Path, params: Path) -> bool:
    """Post the report's KPI declines to the monitoring webhook (params.yaml
    monitoring.alert_webhook or its environment variable); False when not delivered."""
    import os

    from monitoring.alerts import experiment_payload, post_alert
    from monitoring.config import load_monitoring_params
    from tailwise.params import ParamsError

    with errors(ParamsError):
        monitoring = load_monitoring_params(params, os.environ)
    return post_alert(
        monitoring.alert_webhook,
        experiment_payload(result, str(report)),
        monitoring.alert_timeout_seconds,
    )


def parse_weights(text: str | None) -> dict[str, float] | None:
    from tailwise.experiments.stats import StatsError

    if text is None:
        return None
    weights = {}
    for part in text.split(","):
        variant, _, value = part.partition("=")
        try:
            weights[variant.strip()] = float(value)
        except ValueError:
            raise StatsError(f"--weights: {part!r} is not variant=number") from None
    if len(weights) < 2 or any(w <= 0 for w in weights.values()) or "" in weights:
        raise StatsError(f"--weights: need 2+ variants with positive weights, got {text!r}")
    return weights


def sequential_cell(s: dict[str, Any]) -> str:
    if s.get("method") != "group_sequential":
        return f"{s['p_holm']:.3g}"
    z = "inf" if s["z"] is None else f"{abs(s['z']):.2f}"  # no variance, a difference
    if s["after_final"]:
        return "after final"
    if s["boundary"] is None:
        return f"{z} / inf"
    return f"{z} / {s['boundary']:.2f}" + (" *" if s["crossed"] else "")


def print_result(result: dict[str, Any]) -> None:
    from rich.table import Table

    srm = result["srm"]
    colour = "red" if srm["flagged"] else "green"
    console.print(
        f"[{colour}]SRM p = {srm['p_value']:.3g}[/{colour}] "
        + ("MISMATCH" if srm["flagged"] else "no mismatch")
    )
    table = Table(title=f"{result['experiment']}: against {result['control']}")
    section = result.get("sequential") or {}
    last = "seq. |z| / bound" if section.get("method") == "group_sequential" else "seq. p"
    for col in ("variant", "metric", "control", "treatment", "difference", "p (Holm)", last):
        table.add_column(col, justify="left" if col in ("variant", "metric") else "right")
    for variant, metrics in result["comparisons"].items():
        for metric, r in metrics.items():
            if metric == "error":
                continue
            table.add_row(
                variant, metric, f"{r['control']:.4g}", f"{r['treatment']:.4g}",
                f"{r['difference']:+.4g}", f"{r['p_holm']:.3g}" + (" *" if r["significant"] else ""),
                sequential_cell(r["sequential"]),
            )  # fmt: skip
    console.print(table)
    if section.get("method") == "group_sequential":
        console.print(
            f"group sequential ({section['spending']}): look {section['look']}"
            + (" (final)" if section["final"] else "")
            + f", {section['looks'][-1]['users']:,} of {section['planned_users']:,} planned users"
        )
    for note in result["notes"]:
        console.print(f"- {note}")
