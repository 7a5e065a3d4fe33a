"""`tailwise content lint`: unknown variables per template."""

from __future__ import annotations

from pathlib import Path

from tailwise.content.lint import lint, unknown_names
from tailwise.content.render import Library


def test_the_shipped_templates_lint_clean() -> None:
    assert lint(Library.load(Path(__file__).resolve().parents[2] / "content")) == []


def test_unknown_variables_are_listed_with_their_template(content_dir: Path) -> None:
    path = content_dir / "pdp_cross_sell" / "default.mustache"
    path.write_text("{{#items}}{{title}}{{colour}}{{/items}}{{price}}{{{segment}}}{{> footer}}")
    found = [(f.slot, f.template, f.file, f.name) for f in lint(Library.load(content_dir))]
    file = "pdp_cross_sell/default.mustache"
    assert found == [
        ("pdp_cross_sell", "default", file, "colour"),
        ("pdp_cross_sell", "default", file, "price"),  # an item field outside {{#items}}
        ("pdp_cross_sell", "default", file, "segment"),  # unescaped
        ("pdp_cross_sell", "default", file, "footer"),  # partial
    ]


def test_names_inside_sections() -> None:
    assert (
        unknown_names(
            "{{#top_brands}}{{.}}{{/top_brands}}{{#recent_items}}{{brand}}{{/recent_items}}"
        )
        == []
    )
    assert unknown_names("{{.}}") == [(".", "unknown variable")]
    assert unknown_names("{{^has_items}}{{nothing}}{{/has_items}}") == [
        ("nothing", "unknown variable")
    ]
    assert unknown_names("{{cta_text}} {{headline}} {{segment}} {{daypart}} {{device}}") == []
