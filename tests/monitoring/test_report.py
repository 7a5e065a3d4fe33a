"""The index page from hand-made run summaries: table, links, inline plots, baseline."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitoring.report import INDEX, SUMMARY, kpi_baseline, load_runs, run_id, write_index
from monitoring.summary import (
    ColumnDrift,
    Decision,
    FeatureDrift,
    Quality,
    RunSummary,
)
from monitoring.windows import Window

END = datetime(2026, 11, 5, tzinfo=UTC)


def run(days_back: int, ctr: float, drifted: int, version: str = "v1") -> RunSummary:
    end = END - timedelta(days=days_back)
    window = Window(end - timedelta(days=1), end)
    return RunSummary(
        run_id=run_id(window, "1d"),
        created_at=end,
        window="1d",
        window_start=window.start,
        window_end=end,
        model_version=version,
        requests=1000,
        feature_drift=FeatureDrift(
            measured=True,
            rows_current=900,
            rows_reference=1000,
            columns=[
                ColumnDrift(
                    column=f"f{i}", method="m", score=0.0, threshold=0.1, drifted=i < drifted
                )
                for i in range(4)
            ],
        ),
        quality=Quality(
            measured=True,
            requests=800,
            kpis={"ctr@10": ctr, "ndcg@10": ctr / 2, "precision@10": 0.05, "conversion@10": 0.02},
        ),
        decision=Decision(retrain=drifted > 1, reasons=["because"], signals=[]),
    )


def write(out: Path, summary: RunSummary) -> None:
    folder = out / summary.run_id
    folder.mkdir(parents=True)
    (folder / SUMMARY).write_text(summary.model_dump_json())


def test_the_index_lists_runs_newest_first_with_links_and_three_inline_plots(
    tmp_path: Path,
) -> None:
    for back, ctr, drifted in [(2, 0.30, 0), (1, 0.28, 1), (0, 0.20, 2)]:
        write(tmp_path, run(back, ctr, drifted))
    page = write_index(tmp_path, "ctr@10", drift_limit=0.3).read_text()
    rows = re.findall(r'<tr class="run">.*?</tr>', page)
    assert len(rows) == 3
    assert '<a class="report" href="20261105T000000Z-1d/report.html">' in rows[0]
    assert '<a class="summary" href="20261103T000000Z-1d/summary.json">' in rows[2]
    assert "0.2000" in rows[0] and "50% (2/4)" in rows[0] and "retrain" in rows[0]
    for plot in ("plot-drift", "plot-kpis", "plot-quality"):
        assert re.search(rf'<figure class="plot" id="{plot}">.*?<svg', page, re.S)
    assert page.count("<svg") == 3
    assert "<script" not in page and "<link" not in page  # self-contained: nothing to fetch


def test_an_empty_index_says_how_to_start(tmp_path: Path) -> None:
    page = write_index(tmp_path / "reports").read_text()
    assert "No monitoring runs yet" in page and "no measured runs yet" in page
    assert (tmp_path / "reports" / INDEX).exists()


def test_the_kpi_baseline_is_the_median_of_earlier_runs_of_the_same_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for back, ctr in [(4, 0.5), (3, 0.1), (2, 0.3), (1, 0.2)]:
        write(tmp_path, run(back, ctr, 0))
    write(tmp_path, run(0, 0.9, 0, version="v2"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / SUMMARY).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        runs = load_runs(tmp_path)
    assert len(runs) == 5 and "skipping" in caplog.text
    assert kpi_baseline(runs, "v1", END, n=3) == pytest.approx(
        {"ctr@10": 0.2, "ndcg@10": 0.1, "precision@10": 0.05, "conversion@10": 0.02}
    )
    assert kpi_baseline(runs, "v1", END - timedelta(days=3), n=3)["ctr@10"] == 0.5
    assert kpi_baseline(runs, "v2", END, n=3) == {}
