"""An experiment's report: JSON plus one self-contained HTML page, linked from the index.

    exposures.parquet, outcomes.parquet --read_tables--> tailwise.experiments.analysis.analyse
        --> <out>/experiments/<name>/report.json  (the analysis, for people and alerts)
        --> <out>/experiments/<name>/report.html  (tables + inline SVG plots: CTR and revenue
                                                   per exposure per variant per day, the
                                                   allocation over time)
        --> <out>/index.html lists every experiment report (monitoring.report.write_index)

Plots are matplotlib SVG inline (no pyplot, no CDN), like the monitoring index.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from monitoring.report import dated_axis, finished_svg
from tailwise.experiments.analysis import AnalysisConfig, analyse
from tailwise.experiments.stats import StatsError

EXPERIMENTS, REPORT_JSON, REPORT_HTML = "experiments", "report.json", "report.html"


def read_table(path: Path, what: str) -> pd.DataFrame:
    """A Parquet file or folder of Parquet files; a clear error when it is not one."""
    if not path.exists():
        raise StatsError(f"--{what} {path} does not exist")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise StatsError(f"--{what} {path}: not readable as Parquet ({exc})") from exc


def write_experiment_report(
    name: str, exposures: pd.DataFrame, outcomes: pd.DataFrame, cfg: AnalysisConfig, out: Path
) -> tuple[dict[str, Any], Path]:
    """Analyse experiment `name`; write its JSON and HTML under out/experiments/<name>/.
    Under a group-sequential plan the previous report.json's looks are read back first."""
    if not name or "/" in name or name.startswith("."):
        raise StatsError(f"experiment name {name!r} cannot name a folder")
    folder = out / EXPERIMENTS / name
    if cfg.sequential.group and cfg.previous is None:
        cfg = replace(cfg, previous=previous_looks(folder / REPORT_JSON))
    result = _finite_or_none(analyse(name, exposures, outcomes, cfg))
    folder.mkdir(parents=True, exist_ok=True)
    _atomic(folder / REPORT_JSON, json.dumps(result, indent=2, default=str, allow_nan=False) + "\n")
    _atomic(folder / REPORT_HTML, render(result))
    return result, folder


def previous_looks(path: Path) -> dict[str, Any] | None:
    """The `sequential` section of the experiment's last report (None: no report yet)."""
    if not path.exists():
        return None
    try:
        section = json.loads(path.read_text()).get("sequential")
    except (OSError, ValueError, AttributeError) as exc:
        raise StatsError(
            f"{path}: unreadable, so the earlier looks are unknown ({exc}); move it away to "
            "start the looks over"
        ) from exc
    return section if isinstance(section, dict) else None


def list_reports(out: Path) -> list[dict[str, Any]]:
    """Every experiment report under `out` (name, users, SRM flag, link), for the index."""
    reports = []
    for path in sorted((out / EXPERIMENTS).glob(f"*/{REPORT_JSON}")):
        try:
            data = json.loads(path.read_text())
            reports.append(
                {
                    "name": data["experiment"],
                    "users": data["users"],
                    "end": data["end"],
                    "srm": data["srm"]["flagged"],
                    "href": f"{EXPERIMENTS}/{path.parent.name}/{REPORT_HTML}",
                }
            )
        except (OSError, ValueError, KeyError):
            continue
    return reports


def index_section(out: Path) -> str:
    """The index page's list of experiment reports (empty text when there are none)."""
    reports = list_reports(out)
    if not reports:
        return ""
    rows = "".join(
        f'<li class="experiment"><a href="{html.escape(r["href"])}">{html.escape(r["name"])}</a>'
        f" ({r['users']:,} users, to {html.escape(r['end'][:16])})"
        + (' <strong class="srm">sample-ratio mismatch</strong>' if r["srm"] else "")
        + "</li>"
        for r in reports
    )
    return f'<h2>Experiments</h2><ul id="experiments">{rows}</ul>'


def render(result: dict[str, Any]) -> str:
    days = pd.DataFrame(result["daily"])
    plots = [
        ("plot-ctr", "CTR per exposure, by day", _plot(days, "ctr", percent=True)),
        ("plot-revenue", "Revenue per exposure, by day", _plot(days, "revenue_per_exposure")),
        ("plot-allocation", "Allocation: share of exposures (line) and mean propensity "
         "(dashed), by day", _plot(days, "share", percent=True, dashed="propensity")),
    ]  # fmt: skip
    srm = result["srm"]
    srm_text = (
        f'<p id="srm" class="{"bad" if srm["flagged"] else "ok"}">Sample-ratio check: '
        f"chi-squared {srm['chi2']:.2f}, p = {srm['p_value']:.3g} "
        f"({'MISMATCH' if srm['flagged'] else 'no mismatch'} at p &lt; {srm['threshold']:g}); "
        + ", ".join(
            f"{html.escape(v)} {n:,} observed / {srm['expected'][v]:,.0f} expected"
            for v, n in srm["observed"].items()
        )
        + "</p>"
    )
    return _TEMPLATE.format(
        name=html.escape(result["experiment"]),
        control=html.escape(result["control"]),
        users=result["users"],
        start=html.escape(result["start"][:16]),
        end=html.escape(result["end"][:16]),
        alpha=result["alpha"],
        notes="".join(f"<li>{html.escape(n)}</li>" for n in result["notes"]),
        srm=srm_text,
        variants=_variants_table(result["variants"], result["control"]),
        comparisons=_comparisons_table(
            result["comparisons"], (result.get("sequential") or {}).get("method", "")
        ),
        sequential=_sequential_text(result.get("sequential")),
        guardrails=_guardrails_table(result["guardrails"]),
        declines=_declines_list(result.get("declines") or []),
        plots="\n".join(
            f'<figure class="plot" id="{pid}"><figcaption>{html.escape(t)}</figcaption>{svg}</figure>'
            for pid, t, svg in plots
        ),
    )


def _declines_list(found: list[dict[str, Any]]) -> str:
    if not found:
        return '<p id="declines" class="ok">No KPI decline on any variant.</p>'
    items = "".join(f"<li>{html.escape(d['message'])}</li>" for d in found)
    return f'<ul id="declines" class="bad">{items}</ul>'


def _variants_table(variants: dict[str, dict[str, float]], control: str) -> str:
    cols = [
        "users",
        "exposures",
        "clicks",
        "orders",
        "ctr",
        "conversion",
        "aov",
        "revenue_per_user",
    ]
    head = "".join(f"<th>{c}</th>" for c in ["variant", *cols])
    rows = "".join(
        f'<tr class="variant"><td>{html.escape(v)}</td>'
        + "".join(f"<td>{_fmt(m[c])}</td>" for c in cols)
        + "</tr>"
        for v, m in sorted(variants.items(), key=lambda vm: (vm[0] != control, vm[0]))
    )
    return f'<table id="variants"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _comparisons_table(comparisons: dict[str, Any], method: str) -> str:
    group = method == "group_sequential"
    head = (
        "<th>variant</th><th>metric</th><th>control</th><th>treatment</th><th>difference</th>"
        "<th>95% CI</th><th>p</th><th>p (Holm)</th>"
        + ("<th>repeated CI</th><th>|z| / boundary (Holm)</th>" if group else
           "<th>sequential CI</th><th>sequential p (Holm)</th>")
        + "<th>test</th>"
    )  # fmt: skip
    rows = []
    for variant, metrics in comparisons.items():
        if "error" in metrics:
            rows.append(
                f"<tr><td>{html.escape(variant)}</td><td colspan='10'>{html.escape(metrics['error'])}</td></tr>"
            )
            continue
        for metric, r in metrics.items():
            s = r["sequential"]
            mark = " significant" if r["significant"] else ""
            rows.append(
                f'<tr class="comparison{mark}"><td>{html.escape(variant)}</td><td>{metric}</td>'
                f"<td>{_fmt(r['control'])}</td><td>{_fmt(r['treatment'])}</td>"
                f"<td>{_fmt(r['difference'])} ({_fmt(r['relative'], pct=True)})</td>"
                f"<td>[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]</td>"
                f"<td>{r['p_value']:.3g}</td><td>{r['p_holm']:.3g}</td>"
                f"<td>[{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}]</td><td>{_seq_cell(s)}</td>"
                f"<td>{html.escape(r['test'])}</td></tr>"
            )
    return f'<table id="comparisons"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _seq_cell(s: dict[str, Any]) -> str:
    """The sequential decision: the confidence sequence's p, or z against the boundary."""
    if s.get("method") != "group_sequential":
        return f"{s['p_holm']:.3g}"
    z = "&infin;" if s["z"] is None else f"{abs(s['z']):.2f}"  # no variance, a difference
    if s["after_final"]:
        return f"{z} / - (after the final look)"
    if s["boundary"] is None:
        return f"{z} / &infin; (nothing spent yet)"
    return f"{z} / {s['boundary']:.3f} " + (
        "<strong>crossed</strong>" if s["crossed"] else "not crossed"
    )


def _sequential_text(section: dict[str, Any] | None) -> str:
    """What the sequential columns mean for this report: the method, and for a
    group-sequential plan the look, its boundary and the looks so far."""
    if not section or section.get("method") != "group_sequential":
        return (
            '<p id="sequential">Sequential test: the confidence sequence; its interval and '
            "p-value stay valid however often the report is read.</p>"
        )
    looks = ", ".join(
        f"{lk['number']}: {lk['users']:,} users (t = {lk['fraction']:.3f})"
        for lk in section["looks"]
    )
    state = (
        "after the final look: later data is not tested"
        if section["after_final"]
        else ("the final look" if section["final"] else "an interim look")
    )
    return (
        f'<p id="sequential">Sequential test: group sequential, {html.escape(section["spending"])} '
        f"spending of alpha {section['alpha']} over {section['planned_users']:,} planned users; "
        f"this report is look <strong>{section['look']}</strong> ({state}). Looks so far: "
        f"{html.escape(looks)}. A metric is significant when |z| crosses its boundary "
        "(Holm's step-down across the metrics); the repeated interval uses the boundary "
        "at alpha.</p>"
    )


def _guardrails_table(guardrails: dict[str, Any]) -> str:
    if not guardrails:
        return "<p>No guardrail columns (latency_ms, error, coverage) in the exposures.</p>"
    rows = []
    for column, entry in guardrails.items():
        per = ", ".join(f"{html.escape(v)} {_fmt(x)}" for v, x in entry["per_variant"].items())
        tests = "; ".join(
            f"{html.escape(v)}: {_fmt(t['difference'])} (p = {t['p_value']:.3g})"
            for v, t in entry.get("tests", {}).items()
        )
        rows.append(f"<tr><td>{column}</td><td>{per}</td><td>{tests}</td></tr>")
    return (
        '<table id="guardrails"><thead><tr><th>guardrail</th><th>per variant</th>'
        f"<th>against control</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _plot(days: pd.DataFrame, column: str, percent: bool = False, dashed: str | None = None) -> str:
    """Inline SVG: one line per variant of `column` over the days."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 2.8), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    if days.empty:
        ax.text(0.5, 0.5, "no days yet", ha="center", va="center", transform=ax.transAxes)
    else:
        when = pd.to_datetime(days["day"])
        for k, (variant, g) in enumerate(days.assign(when=when).groupby("variant")):
            colour = f"C{k}"
            ax.plot(g["when"], g[column], marker="o", color=colour, label=str(variant))
            if dashed is not None:
                ax.plot(g["when"], g[dashed], linestyle="--", color=colour)
        dated_axis(ax)
    return finished_svg(fig, ax, percent)


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if pct:
        return f"{value:+.1%}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def _finite_or_none(value: Any) -> Any:
    """The analysis with NaN and infinities (an AOV without orders) as None: valid JSON."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Tailwise experiment {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
figure.plot {{ margin: 0; border: 1px solid #ddd; padding: .5rem; }}
figure.plot svg {{ width: 480px; height: auto; }}
figcaption {{ font-weight: 600; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: .9rem; }}
th, td {{ border: 1px solid #ddd; padding: .3rem .5rem; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
tr.significant {{ background: #eef8ee; }}
p.bad, ul.bad {{ color: #a00; font-weight: 600; }}
</style>
</head>
<body>
<h1>Experiment {name}</h1>
<p><a href="../../index.html">monitoring index</a> · <a href="report.json">json</a></p>
<p>{users:,} users from {start} to {end} UTC; control <strong>{control}</strong>; alpha {alpha};
p-values Holm-adjusted across the metrics of each variant.</p>
{sequential}
{srm}
<ul id="notes">{notes}</ul>
<h2>KPI declines</h2>
{declines}
<h2>Variants</h2>
{variants}
<h2>Against the control</h2>
{comparisons}
<h2>Guardrails</h2>
{guardrails}
<h2>Over time</h2>
<div class="plots">
{plots}
</div>
</body>
</html>
"""
