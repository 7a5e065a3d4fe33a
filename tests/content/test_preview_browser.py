"""The preview page in a real headless Chromium: every variant is shown, the served one
outlined, script in the data stays text and never runs.

The browser is tests/conftest.py's `browser` fixture: Debian's `chromium` and
`chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver; TAILWISE_CHROMIUM /
TAILWISE_CHROMEDRIVER point elsewhere) and the `selenium` package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tailwise.content.preview import preview_page, render_variants
from tailwise.content.render import Library
from tailwise.content.variables import Inputs, build_variables

EVIL = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


def test_the_preview_shows_every_variant_and_runs_no_script(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    library = Library.load(Path(__file__).resolve().parents[2] / "content")
    items = [{"item_id": f"i{k}", "title": EVIL if k == 0 else f"Item {k}"} for k in range(3)]
    profile = {"segment_name": "lapsed", "recent_items": ["i1"], "top_brands": ["Acme"]}
    variables = build_variables(
        Inputs("u0000030", profile, items=items, recent=[{"item_id": "i1", "title": "Seen"}])
    )
    served, renders = render_variants(library, "home_hero", variables)
    page = tmp_path / "preview.html"
    page.write_text(preview_page("u0000030", "home_hero", served, renders))

    browser.get(page.as_uri())
    assert browser.title == "Preview: home_hero for u0000030"
    sections = browser.find_elements(By.CSS_SELECTOR, "section.variant")
    names = [s.get_attribute("data-template") for s in sections]
    assert names == list(library.slot("home_hero").templates)
    for section in sections:
        assert section.is_displayed() and section.size["height"] > 40
        block = section.find_element(By.CSS_SELECTOR, ".render > *")
        assert block.get_attribute("data-template") == section.get_attribute("data-template")
    (chosen,) = browser.find_elements(By.CSS_SELECTOR, "section.variant.chosen")
    assert chosen.get_attribute("data-template") == "lapsed"
    assert "Seen" in chosen.text  # the recent-items section renders with data
    lapsed_items = chosen.find_elements(By.CSS_SELECTOR, ".tw-items li")
    assert lapsed_items[0].text == EVIL  # shown as text
    assert browser.execute_script("return window.pwned === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, ".render script, .render img")
    fallback = browser.find_element(By.ID, "variant-fallback")
    assert "Discover this week's favourites" in fallback.text
