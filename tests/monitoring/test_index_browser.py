"""The index page in a real headless Chromium: it opens, lists the runs, its plots are
drawn, and its links lead to the Evidently report and the JSON summary.

Needs Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver;
TAILWISE_CHROMIUM / TAILWISE_CHROMEDRIVER point elsewhere) and the `selenium` package.
"""

from __future__ import annotations

from typing import Any

from tests.monitoring.conftest import Monitored

WAIT_S = 60


def test_the_index_opens_lists_runs_draws_plots_and_links_work(
    browser: Any, monitored: Monitored
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    index = (monitored.world.out / "index.html").resolve()
    browser.get(index.as_uri())
    assert browser.title == "Tailwise monitoring"
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs tr.run")
    assert [r.find_element(By.CSS_SELECTOR, "a.report").text for r in rows] == [
        "20261103T000000Z-1d",
        "20261102T000000Z-1d",
    ]
    assert "retrain" in rows[0].text
    for plot in ("plot-drift", "plot-kpis", "plot-quality"):
        svg = browser.find_element(By.CSS_SELECTOR, f"#{plot} svg")
        assert svg.is_displayed() and svg.size["width"] > 200 and svg.size["height"] > 80
        assert svg.find_elements(By.CSS_SELECTOR, "path"), f"{plot} has nothing drawn"

    rows[0].find_element(By.CSS_SELECTOR, "a.report").click()
    WebDriverWait(browser, WAIT_S).until(lambda d: d.current_url.endswith("/report.html"))
    # Evidently draws the report in the page's script: wait for its widgets' text.
    WebDriverWait(browser, WAIT_S).until(
        lambda d: (
            "Feature drift (logged feature vectors" in d.find_element(By.TAG_NAME, "body").text
        )
    )
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Tailwise monitoring run" in body and "Prediction drift (served scores)" in body
    assert "Drift in column 'views_7d'" in body

    browser.back()
    WebDriverWait(browser, WAIT_S).until(lambda d: d.title == "Tailwise monitoring")
    browser.find_elements(By.CSS_SELECTOR, "#runs tr.run a.summary")[1].click()
    WebDriverWait(browser, WAIT_S).until(lambda d: d.current_url.endswith("/summary.json"))
    assert '"run_id": "20261102T000000Z-1d"' in browser.find_element(By.TAG_NAME, "body").text
