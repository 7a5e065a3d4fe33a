"""Rendering: slot rules, the experiment hook, fallbacks, missing and malicious input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tailwise.content.manifest import ManifestError
from tailwise.content.render import EMPTY_BLOCK, Library
from tailwise.content.slots import Assignment, assignment_from_answer
from tailwise.content.variables import Inputs, build_variables, daypart

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def items(n: int = 3, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"item_id": f"i{k}", "title": f"Item {k}", "brand": "Acme", "price": 10 + k, **extra}
        for k in range(n)
    ]


def variables(segment: str | None = "occasional", **kw: Any) -> dict[str, Any]:
    profile = {"segment_name": segment, "top_categories": ["shoes", "bags"], "top_brands": ["Acme"]}
    return build_variables(Inputs("u1", profile, items=kw.pop("items", items()), **kw))


def edit(folder: Path, change: Any) -> Library:
    manifest = yaml.safe_load((folder / "slots.yaml").read_text())
    change(manifest)
    (folder / "slots.yaml").write_text(yaml.safe_dump(manifest))
    return Library.load(folder)


@pytest.fixture
def library(content_dir: Path) -> Library:
    return Library.load(content_dir)


@pytest.mark.parametrize(
    ("segment", "device", "part", "template", "by"),
    [
        ("frequent buyers", "desktop", "morning", "frequent_buyers", "rule"),
        ("Lapsed", "desktop", "morning", "lapsed", "rule"),  # case-insensitive
        ("occasional", "mobile", "evening", "evening", "rule"),
        ("occasional", "desktop", "evening", "default", "default"),  # the rule wants mobile
        (None, None, "morning", "default", "default"),
    ],
)
def test_slot_rules_pick_by_segment_device_and_daypart(
    library: Library, segment: str | None, device: str | None, part: str, template: str, by: str
) -> None:
    out = library.render("home_hero", variables(segment, device=device, daypart=part))
    assert (out.template, out.chosen_by, out.fallback, out.errors) == (template, by, False, [])
    assert f'data-template="{template}"' in out.html


def test_the_experiment_picks_the_template_and_rules_decide_without_one(library: Library) -> None:
    v = variables("frequent buyers")
    chosen = library.render("home_hero", v, Assignment("hero_test", "b", 0.5, "lapsed"))
    assert (chosen.template, chosen.chosen_by) == ("lapsed", "experiment")
    unknown = library.render("home_hero", v, Assignment("hero_test", "c", 0.5, "no_such"))
    assert (unknown.template, unknown.chosen_by) == ("frequent_buyers", "rule")
    assert unknown.assignment is not None and unknown.assignment.variant == "c"
    slot = library.slot("home_hero")
    body = {"experiment": "hero_test", "variant": "evening", "propensity": 0.25}
    assert assignment_from_answer(body, slot) == Assignment("hero_test", "evening", 0.25, "evening")
    assert assignment_from_answer({"items": []}, slot) is None


def test_html_in_catalogue_fields_and_profile_is_escaped(library: Library) -> None:
    v = build_variables(
        Inputs(
            "u1",
            {"segment_name": "frequent buyers", "top_brands": [EVIL]},
            items=items(2, title=EVIL, brand=EVIL),
        )
    )
    for slot in library.slots:
        out = library.render(slot, v)
        assert "<script" not in out.html and "<img" not in out.html, slot
        assert "&lt;script&gt;" in out.html
    assert library.render("home_hero", v).payload()["items"][0]["title"] == EVIL  # JSON: raw


@pytest.mark.parametrize(
    "attack",
    [
        "{{#segment}}{{upper}}{{/segment}}",  # a method of the str
        "{{__class__}}",
        "{{segment.__class__.__mro__}}",
        "{{#items}}{{__init__.__globals__}}{{/items}}",
        "{{> ../../../etc/passwd}}",  # a partial read from disk
        "{{{segment}}}",  # unescaped output
        "{{& segment}}",
    ],
)
def test_a_template_cannot_run_code_read_files_or_skip_escaping(
    content_dir: Path, attack: str
) -> None:
    (content_dir / "home_hero" / "default.mustache").write_text(f"<p>{attack}</p>")
    library = Library.load(content_dir)
    out = library.render("home_hero", variables("occasional"))
    assert out.fallback and out.template == "fallback" and out.errors
    assert out.errors[0].template == "default"
    for leak in ("root:", "OCCASIONAL", "<class", "mro", "function", "<p>"):
        assert leak not in out.html


def test_missing_data_renders_the_fallback_and_sections_only_with_data(library: Library) -> None:
    empty = library.render("home_hero", variables(items=[]))
    assert empty.fallback and empty.template == "fallback"
    assert [(e.template, e.kind, e.message) for e in empty.errors] == [
        ("default", "missing_data", "no items")
    ]
    assert "<ul" not in empty.html and "Browse the shop" in empty.html
    bare = build_variables(Inputs("u2", {}, items=[{"item_id": "i9"}]))
    out = library.render("home_hero", bare)
    assert not out.fallback and out.headline == "Picked for you"
    assert "tw-tastes" not in out.html and 'class="brand"' not in out.html
    assert 'class="price"' not in out.html and 'data-item="i9"' in out.html


def test_a_missing_variable_renders_the_fallback(content_dir: Path) -> None:
    path = content_dir / "home_hero" / "default.mustache"
    path.write_text(path.read_text().replace("{{title}}", "{{titel}}"))
    out = Library.load(content_dir).render("home_hero", variables())
    assert out.fallback and out.errors[0].kind == "missing_variable"
    assert "titel" in out.errors[0].message


def test_a_broken_fallback_still_gives_a_block(content_dir: Path) -> None:
    for name in ("default", "fallback"):
        (content_dir / "home_hero" / f"{name}.mustache").write_text("{{nope}}")
    out = Library.load(content_dir).render("home_hero", variables())
    assert out.html == EMPTY_BLOCK and out.fallback and len(out.errors) == 2


def test_a_dangerous_call_to_action_url_falls_back(content_dir: Path) -> None:
    def bad(m: dict[str, Any]) -> None:
        m["slots"]["home_hero"]["templates"]["default"]["cta_url"] = "javascript:alert(1)"

    out = edit(content_dir, bad).render("home_hero", variables())
    assert out.template == "fallback" and "cta_url" in out.errors[0].message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda m: m["slots"]["home_hero"].update(default="nope"),
            "slots.home_hero: Value error, default: 'nope'",
        ),
        (
            lambda m: m["slots"]["home_hero"]["rules"][0].update(template="x"),
            "rules.0.template: 'x'",
        ),
        (lambda m: m["slots"]["home_hero"].update(items=-1), "slots.home_hero.items"),
        (
            lambda m: m["slots"]["home_hero"]["templates"]["default"].update(requires=["age"]),
            "requires.0",
        ),
        (
            lambda m: m["slots"]["home_hero"]["rules"][0]["when"].update(daypart=["noon"]),
            "when.daypart.0",
        ),
        (lambda m: m["slots"]["home_hero"].update(colour="red"), "slots.home_hero.colour"),
        (
            lambda m: m["slots"]["home_hero"]["templates"]["default"].update(file="../x.mustache"),
            "templates.default.file",
        ),
        (
            lambda m: m["slots"]["home_hero"]["templates"]["fallback"].update(requires=["items"]),
            "fallback",
        ),
    ],
)
def test_manifest_errors_name_the_field(content_dir: Path, change: Any, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        edit(content_dir, change)
    assert message in str(caught.value)


def test_a_missing_or_unreadable_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        Library.load(tmp_path)
    (tmp_path / "slots.yaml").write_text("slots: [")
    with pytest.raises(ManifestError, match="not valid YAML"):
        Library.load(tmp_path)


def test_variables_hold_no_personal_data_and_only_plain_values() -> None:
    import numpy as np

    profile = {
        "segment_name": np.str_("browsers"),
        "age": 41,
        "gender": "f",
        "country": "DE",
        "income_band": "high",
        "top_categories": np.array(["shoes", None], dtype=object),
        "recent_items": ["i1"],
    }
    v = build_variables(
        Inputs("u1", profile, country="DE", items=[{"item_id": "i1", "price": np.float64("nan")}])
    )
    flat = repr(v)
    for personal in ("age", "gender", "income", "DE", "'f'"):
        assert personal not in flat
    assert v["segment"] == "browsers" and type(v["segment"]) is str
    assert v["top_categories"] == ["shoes"] and v["items"][0]["price"] == ""

    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(plain(x) for x in value.values())
        if isinstance(value, list):
            return all(plain(x) for x in value)
        return type(value) in (str, bool)

    assert plain(v)


def test_daypart_uses_the_country_time() -> None:
    from datetime import UTC, datetime

    ts = datetime(2026, 12, 3, 19, 30, tzinfo=UTC)
    assert daypart(ts, None) == "evening"
    assert daypart(ts, "JP") == "night"  # 04:30 in Tokyo
