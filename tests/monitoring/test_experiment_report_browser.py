"""The experiment report in a real headless Chromium (the `browser` fixture of conftest):
it opens, its tables and three plots are drawn, and the index links to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from monitoring.experiments import write_experiment_report
from monitoring.report import write_index
from tailwise.experiments.analysis import AnalysisConfig
from tests.experiments.tables import experiment_tables


def test_the_report_opens_draws_plots_and_is_linked_from_the_index(
    browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    exp, out = experiment_tables(
        np.random.default_rng(4), 2000, {"control": 0.5, "b": 0.5}, {"control": 0.05, "b": 0.1}
    )
    write_experiment_report("exp", exp, out, AnalysisConfig(), tmp_path)
    index = write_index(tmp_path)
    browser.get(index.resolve().as_uri())
    browser.find_element(By.CSS_SELECTOR, "#experiments li.experiment a").click()
    WebDriverWait(browser, 60).until(lambda d: d.title == "Tailwise experiment exp")
    rows = browser.find_elements(By.CSS_SELECTOR, "#variants tr.variant")
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == ["control", "b"]
    assert browser.find_elements(By.CSS_SELECTOR, "#comparisons tr.comparison.significant")
    for plot in ("plot-ctr", "plot-revenue", "plot-allocation"):
        svg = browser.find_element(By.CSS_SELECTOR, f"#{plot} svg")
        assert svg.is_displayed() and svg.size["width"] > 200 and svg.size["height"] > 80
        assert svg.find_elements(By.CSS_SELECTOR, "path"), f"{plot} has nothing drawn"
    assert "no mismatch" in browser.find_element(By.ID, "srm").text
