"""What a run leaves behind, and the index page over all runs.

    <out>/<run id>/report.html   one Evidently page: the run's notes, feature drift,
                                 prediction drift, incoming events (their snapshots
                                 combined through Evidently's own snapshot model)
    <out>/<run id>/summary.json  RunSummary (monitoring/summary.py), for people, the index
                                 and the retraining loop
    <out>/index.html             every run (newest first) linking to its report, and
                                 trend plots (drift share; CTR@K and conversion@K;
                                 Precision@K and NDCG@K) drawn by matplotlib as inline
                                 SVG: one self-contained file, no CDN, opens offline

The run id is the window's end and length ("20261101T000000Z-1d"), so monitoring the
same window again replaces that run instead of adding a second row.
"""

from __future__ import annotations

import html
import io
import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from monitoring.summary import ColumnDrift, RunSummary
from monitoring.windows import Window

logger = logging.getLogger(__name__)
REPORT, SUMMARY, INDEX = "report.html", "summary.json", "index.html"


@dataclass
class Section:
    """One part of the run's report: an Evidently snapshot, or why there is none."""

    title: str
    snapshot: Any | None
    text: str = ""
    header: list[Any] = field(default_factory=list)  # widgets shown before the snapshot's


def drift_table(title: str, columns: Sequence[ColumnDrift]) -> Any:
    """An overview widget: one line per column, drifted ones first."""
    from evidently.legacy.renderers.html_widgets import table_data

    rows = sorted(columns, key=lambda c: (not c.drifted, c.column))
    return table_data(
        title=title,
        column_names=["column", "drift", "method", "score", "threshold"],
        data=[
            [
                c.column,
                "DETECTED" if c.drifted else "no",
                c.method,
                f"{c.score:.4g}",
                f"{c.threshold:g}",
            ]
            for c in rows
        ],
    )


def run_id(window: Window, label: str) -> str:
    return f"{window.end:%Y%m%dT%H%M%SZ}-{label}"


def write_run(out: Path, summary: RunSummary, sections: Sequence[Section]) -> Path:
    """report.html and summary.json into out/<run id>/; returns that folder."""
    folder = out / summary.run_id
    folder.mkdir(parents=True, exist_ok=True)
    write_report_html(folder / REPORT, summary, sections)
    _atomic(folder / SUMMARY, summary.model_dump_json(indent=2) + "\n")
    return folder


def write_report_html(path: Path, summary: RunSummary, sections: Sequence[Section]) -> None:
    """One Evidently HTML page holding every section's widgets, under a notes header."""
    from evidently import Run
    from evidently.core.serialization import ReportModel, SnapshotModel
    from evidently.legacy.renderers.html_widgets import group_widget, text_widget

    widgets = [text_widget(title="Tailwise monitoring run", text=_notes_markdown(summary))]
    metric_results: dict[Any, Any] = {}
    top_level: list[Any] = []
    for section in sections:
        if section.snapshot is None:
            widgets.append(text_widget(title=section.title, text=section.text or "not measured"))
            continue
        model = section.snapshot.to_snapshot_model()
        metric_results.update(model.metric_results)
        top_level += model.top_level_metrics
        inner = [*section.header, *model.widgets, *model.tests_widgets]
        if section.text:
            inner.insert(0, text_widget(title="", text=section.text))
        widgets.append(group_widget(title=section.title, widgets=inner))
    combined = SnapshotModel(
        report=ReportModel(items=[]),
        name=f"Tailwise monitoring {summary.run_id}",
        timestamp=summary.created_at,
        metadata={"model_version": summary.model_version, "window": summary.window},
        tags=["tailwise", "monitoring"],
        metric_results=metric_results,
        top_level_metrics=top_level,
        widgets=widgets,
        tests_widgets=[],
    )
    tmp = path.with_name(f".{path.name}.tmp")
    Run.load_model(combined).save_html(str(tmp))
    tmp.replace(path)


def load_runs(out: Path) -> list[RunSummary]:
    """Every run's summary under `out`, oldest window first; unreadable ones are skipped."""
    runs = []
    for path in sorted(out.glob(f"*/{SUMMARY}")):
        try:
            runs.append(RunSummary.model_validate_json(path.read_text()))
        except (OSError, ValidationError, ValueError) as exc:
            logger.warning("skipping %s: not a readable run summary (%s)", path, exc)
    return sorted(runs, key=lambda r: (r.window_end, r.created_at))


def kpi_baseline(
    runs: Sequence[RunSummary], model_version: str, before: datetime, n: int
) -> dict[str, float]:
    """Median of each KPI over the last `n` earlier runs of the same model."""
    earlier = [
        r
        for r in runs
        if r.model_version == model_version and r.window_end < before and r.quality.measured
    ][-n:]
    names = sorted({k for r in earlier for k in r.quality.kpis})
    baseline = {}
    for name in names:
        values = [r.quality.kpis[name] for r in earlier if _finite(r.quality.kpis.get(name))]
        if values:
            baseline[name] = float(statistics.median(values))
    return baseline


def write_index(out: Path, kpi: str = "ctr@10", drift_limit: float | None = None) -> Path:
    """Regenerate out/index.html from every run's summary.json."""
    runs = load_runs(out)
    k = kpi.partition("@")[2] or "10"
    plots = [
        (
            "plot-drift",
            "Feature drift share",
            _plot(runs, [("share of drifted features", _share)], limit=drift_limit, percent=True),
        ),
        (
            "plot-kpis",
            f"KPIs: CTR@{k} and conversion@{k}",
            _plot(
                runs, [(f"ctr@{k}", _kpi(f"ctr@{k}")), (f"conversion@{k}", _kpi(f"conversion@{k}"))]
            ),
        ),
        (
            "plot-quality",
            f"Quality: Precision@{k} and NDCG@{k}",
            _plot(
                runs, [(f"precision@{k}", _kpi(f"precision@{k}")), (f"ndcg@{k}", _kpi(f"ndcg@{k}"))]
            ),
        ),
    ]
    from monitoring.experiments import index_section

    page = _INDEX_TEMPLATE.format(
        experiments=index_section(out),
        count=len(runs),
        latest=_latest(runs),
        plots="\n".join(
            f'<figure class="plot" id="{pid}"><figcaption>{html.escape(title)}</figcaption>'
            f"{svg}</figure>"
            for pid, title, svg in plots
        ),
        rows="\n".join(_row(r, k) for r in reversed(runs)) or _NO_RUNS,
        k=k,
    )
    path = out / INDEX
    out.mkdir(parents=True, exist_ok=True)
    _atomic(path, page)
    return path


def _notes_markdown(summary: RunSummary) -> str:
    lines = [
        f"**Model** {summary.model_version} (data {summary.data_version}), "
        f"**window** {summary.window}: {summary.window_start:%Y-%m-%d %H:%M} .. "
        f"{summary.window_end:%Y-%m-%d %H:%M} UTC, {summary.requests:,} requests "
        f"({summary.personalised_requests:,} personalised).",
    ]
    if summary.decision is not None:
        verdict = "retrain" if summary.decision.retrain else "no retraining"
        lines.append(
            f"**Decision:** {verdict}. " + " ".join(f"{r}." for r in summary.decision.reasons)
        )
    lines += [f"- {note}" for note in summary.notes]
    return "\n\n".join(lines)


def _share(run: RunSummary) -> float | None:
    return run.feature_drift.share if run.feature_drift.measured else None


def _kpi(name: str) -> Any:
    def value(run: RunSummary) -> float | None:
        v = run.quality.kpis.get(name)
        return v if run.quality.measured and _finite(v) else None

    return value


def _plot(
    runs: Sequence[RunSummary],
    series: Sequence[tuple[str, Any]],
    limit: float | None = None,
    percent: bool = False,
) -> str:
    """An inline SVG line chart over the runs' window ends (no pyplot: no global state)."""
    from matplotlib.dates import date2num
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 2.8), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    drawn: list[float] = []
    for label, get in series:
        points = [(r.window_end, get(r)) for r in runs]
        points = [(t, v) for t, v in points if v is not None]
        if points:
            when = date2num([t for t, _ in points])
            ax.plot(when, [v for _, v in points], marker="o", label=label)
            drawn += list(when)
    if limit is not None:
        ax.axhline(limit, color="tab:red", linestyle="--", linewidth=1, label="retrain above")
    if not drawn:
        ax.text(0.5, 0.5, "no measured runs yet", ha="center", va="center", transform=ax.transAxes)
    else:
        pad = max((max(drawn) - min(drawn)) * 0.05, 0.5)  # days: one run is not a decade
        ax.set_xlim(min(drawn) - pad, max(drawn) + pad)
        dated_axis(ax)
    return finished_svg(fig, ax, percent)


def dated_axis(ax: Any) -> None:
    """Concise date ticks on the x axis and a legend."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.legend(loc="best", fontsize="small")


def finished_svg(fig: Any, ax: Any, percent: bool) -> str:
    """The figure as inline SVG, y from 0 (as a percentage when `percent`), light grid."""
    from matplotlib.ticker import PercentFormatter

    if percent:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _latest(runs: Sequence[RunSummary]) -> str:
    if not runs:
        return "<p>No monitoring runs yet: run <code>tailwise monitor run</code>.</p>"
    last = runs[-1]
    decision = last.decision
    verdict = "retraining requested" if decision and decision.retrain else "no retraining"
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in (decision.reasons if decision else []))
    return (
        f'<p id="latest">Latest run <a href="{_href(last)}">{html.escape(last.run_id)}</a>: '
        f"model {html.escape(last.model_version)}, <strong>{verdict}</strong>.</p>"
        f"<ul>{reasons}</ul>"
    )


def _row(run: RunSummary, k: str) -> str:
    drift, pred, quality = run.feature_drift, run.prediction_drift, run.quality
    decision = run.decision
    cells = [
        f'<a class="report" href="{_href(run)}">{html.escape(run.run_id)}</a> '
        f'<a class="summary" href="{html.escape(run.run_id)}/{SUMMARY}">json</a>',
        f"{run.window_start:%Y-%m-%d %H:%M} .. {run.window_end:%Y-%m-%d %H:%M}",
        html.escape(run.model_version),
        f"{run.requests:,}",
        f"{drift.share:.0%} ({len(drift.drifted)}/{len(drift.columns)})" if drift.measured else "-",
        ("drift" if pred.drifted else "ok") if pred.measured else "-",
        _number(quality.kpis.get(f"ctr@{k}"), quality.measured),
        _number(quality.kpis.get(f"conversion@{k}"), quality.measured),
        _number(quality.kpis.get(f"precision@{k}"), quality.measured),
        _number(quality.kpis.get(f"ndcg@{k}"), quality.measured),
        f"{run.events.rows:,}"
        + (f" ({len(run.events.issues)} issues)" if run.events.issues else "")
        + (
            f"; drift {run.events.drift.share:.0%} ({len(run.events.drift.drifted)}/"
            f"{len(run.events.drift.columns)})"
            if run.events.drift.measured
            else ""
        ),
        ("retrain" if decision.retrain else "no") if decision else "-",
    ]
    return '<tr class="run">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _href(run: RunSummary) -> str:
    return f"{html.escape(run.run_id)}/{REPORT}"


def _number(value: float | None, measured: bool) -> str:
    return f"{value:.4f}" if measured and _finite(value) else "-"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


_NO_RUNS = '<tr><td colspan="12">no runs yet</td></tr>'
_INDEX_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Tailwise monitoring</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
figure.plot {{ margin: 0; border: 1px solid #ddd; padding: .5rem; }}
figure.plot svg {{ width: 480px; height: auto; }}
figcaption {{ font-weight: 600; }}
table {{ border-collapse: collapse; margin-top: 1rem; font-size: .9rem; }}
th, td {{ border: 1px solid #ddd; padding: .3rem .5rem; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
</style>
</head>
<body>
<h1>Tailwise monitoring</h1>
<p>{count} runs. Each report compares a window of served traffic with the model's
reference: feature drift, prediction drift, incoming events, and outcome KPIs of the
requests whose attribution window has closed.</p>
{latest}
{experiments}
<div class="plots">
{plots}
</div>
<table id="runs">
<thead><tr><th>run</th><th>window (UTC)</th><th>model</th><th>requests</th>
<th>drifted features</th><th>prediction</th><th>CTR@{k}</th><th>conversion@{k}</th>
<th>precision@{k}</th><th>NDCG@{k}</th><th>events</th><th>retrain</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""
