"""`tailwise content lint`: variables a template names that no request will ever have.

Walks pystache's parse tree: a name is known when it is a top-level variable
(tailwise.content.variables.TOP_LEVEL), `.` inside a list section, or an item field inside
an item section (`items`, `recent_items`). Dotted names are checked by their first part.
Partials are reported too: none are loaded, so `{{> name}}` always fails to render.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pystache
from pystache.common import PystacheError

from tailwise.content.render import Library
from tailwise.content.variables import ITEM_SECTIONS, ITEM_VARIABLES, TOP_LEVEL


@dataclass(frozen=True)
class Finding:
    slot: str
    template: str
    file: str
    name: str
    problem: str


def lint(library: Library) -> list[Finding]:
    """Every unknown variable, partial and parse error, per slot and template."""
    findings: list[Finding] = []
    for slot_name, slot in library.slots.items():
        for name, template in slot.templates.items():
            texts = {
                f"{template.file}": library.sources[template.file],
                "headline": template.headline,
                "cta_text": template.cta_text,
                "cta_url": template.cta_url,
            }
            for where, text in texts.items():
                for var, problem in unknown_names(text):
                    findings.append(Finding(slot_name, name, where, var, problem))
    return findings


def unknown_names(text: str) -> list[tuple[str, str]]:
    """(name, problem) for each unknown name in one template text."""
    try:
        parsed = pystache.parse(text)
    except (PystacheError, ValueError) as exc:
        return [("", f"does not parse: {exc}")]
    out: list[tuple[str, str]] = []
    _walk(parsed._parse_tree, (), out)
    return out


def _walk(nodes: list[Any], sections: tuple[str, ...], out: list[tuple[str, str]]) -> None:
    for node in nodes:
        if isinstance(node, str):
            continue
        kind = type(node).__name__
        key = getattr(node, "key", None)
        if kind == "_PartialNode":
            out.append((str(key), "partials are not supported (none are loaded)"))
            continue
        if kind == "_LiteralNode":
            out.append((str(key), "unescaped output is not allowed: use {{" + str(key) + "}}"))
        elif key is not None and not _known(str(key), sections):
            where = f" inside {{{{#{sections[-1]}}}}}" if sections else ""
            out.append((str(key), f"unknown variable{where}"))
        if kind == "_SectionNode":
            _walk(node.parsed._parse_tree, (*sections, str(key)), out)
        elif kind == "_InvertedNode":
            _walk(node.parsed_section._parse_tree, sections, out)


def _known(key: str, sections: tuple[str, ...]) -> bool:
    if key == ".":
        return bool(sections)
    first = key.split(".", 1)[0]
    if first in TOP_LEVEL:
        return True
    return any(s in ITEM_SECTIONS for s in sections) and first in ITEM_VARIABLES
