"""Rendering a slot: choose a template, fill it, and fall back when anything goes wrong.

    Library.load(content/)  the manifest and every template parsed once
    Library.render(slot, variables, assignment)
        template = slots.choose(...)       experiment, else the slot's rules, else default
        its `requires` missing            --> the slot's fallback
        headline, call to action, HTML    pystache, strict about missing variables,
                                          HTML-escaped, partials limited to an empty set
        any error                         --> the fallback, the error kept in `errors`
        the fallback fails too            --> a fixed, empty block (never an exception)

pystache passes the Mustache spec and renders data only: no lambdas are ever put in the
context (serving.content builds it from plain values), no partial is read from disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystache
from pystache.common import PystacheError
from pystache.parsed import ParsedTemplate

from tailwise.content.manifest import Manifest, Slot, Template, load_manifest
from tailwise.content.slots import Assignment, choose

SAFE_URL = ("/", "https://", "http://")  # never javascript: or data: in a call to action
UNESCAPED = "unescaped output ({{{name}}} or {{& name}}) is not allowed: use {{name}}"
EMPTY_BLOCK = '<div class="tw-content tw-empty"></div>'
RENDER_ERRORS = (PystacheError, ValueError, TypeError, KeyError, AttributeError, IndexError)


@dataclass
class RenderError:
    template: str
    kind: str  # missing_data | missing_variable | template_error
    message: str


@dataclass
class Rendered:
    slot: str
    template: str
    html: str
    headline: str
    cta: dict[str, str]
    items: list[dict[str, Any]]
    fallback: bool = False
    chosen_by: str = "default"  # experiment | rule | default | fallback
    errors: list[RenderError] = field(default_factory=list)
    assignment: Assignment | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON part of the response: headline, call to action, items."""
        items = [{k: v for k, v in it.items() if k not in ("first", "last")} for it in self.items]
        return {"headline": self.headline, "cta": self.cta, "items": items}


class Library:
    """The content folder: manifest plus parsed templates, loaded once."""

    def __init__(self, folder: Path, manifest: Manifest, sources: dict[str, str]) -> None:
        self.folder, self.manifest, self.sources = Path(folder), manifest, sources
        self.parsed: dict[str, ParsedTemplate] = {}
        self.parse_errors: dict[str, str] = {}
        for file, text in sources.items():
            try:
                self.parsed[file] = pystache.parse(text)
            except RENDER_ERRORS as exc:  # kept: rendering it falls back, lint reports it
                self.parse_errors[file] = f"{type(exc).__name__}: {exc}"
                continue
            if unescaped(self.parsed[file]._parse_tree):
                self.parse_errors[file] = UNESCAPED
        self._html = pystache.Renderer(missing_tags="strict", partials={})
        self._text = pystache.Renderer(missing_tags="strict", partials={}, escape=lambda s: s)
        self._texts: dict[str, ParsedTemplate] = {}

    @classmethod
    def load(cls, folder: Path) -> Library:
        manifest = load_manifest(folder)
        files = {t.file for s in manifest.slots.values() for t in s.templates.values()}
        sources = {f: (Path(folder) / f).read_text(encoding="utf-8") for f in sorted(files)}
        return cls(folder, manifest, sources)

    @property
    def slots(self) -> dict[str, Slot]:
        return self.manifest.slots

    def slot(self, name: str) -> Slot:
        if name not in self.manifest.slots:
            raise KeyError(f"unknown slot {name!r}; known: {', '.join(sorted(self.slots))}")
        return self.manifest.slots[name]

    def render(
        self, slot_name: str, variables: dict[str, Any], assignment: Assignment | None = None
    ) -> Rendered:
        """The slot's chosen template filled with `variables`; the fallback on error."""
        slot = self.slot(slot_name)
        name, chosen_by = choose(slot, variables, assignment)
        errors: list[RenderError] = []
        missing = [need for need in slot.templates[name].requires if not variables.get(need)]
        if missing:
            errors.append(RenderError(name, "missing_data", f"no {', '.join(missing)}"))
        else:
            try:
                return self._fill(slot_name, name, chosen_by, variables, assignment)
            except RENDER_ERRORS as exc:
                errors.append(RenderError(name, _kind(exc), f"{type(exc).__name__}: {exc}"))
        return self.render_template(slot_name, slot.fallback, variables, assignment, errors)

    def render_template(
        self,
        slot_name: str,
        name: str,
        variables: dict[str, Any],
        assignment: Assignment | None = None,
        errors: list[RenderError] | None = None,
    ) -> Rendered:
        """One named template of the slot (the fallback's own failure is a fixed block)."""
        slot = self.slot(slot_name)
        errors = list(errors or [])
        fallback = name == slot.fallback
        try:
            out = self._fill(
                slot_name, name, "fallback" if fallback else "preview", variables, assignment
            )
            out.fallback, out.errors = fallback and bool(errors), errors
            return out
        except RENDER_ERRORS as exc:
            errors.append(RenderError(name, _kind(exc), f"{type(exc).__name__}: {exc}"))
        return Rendered(
            slot_name,
            name,
            EMPTY_BLOCK,
            "",
            {"text": "", "url": ""},
            list(variables.get("items") or []),
            fallback=True,
            chosen_by="fallback",
            errors=errors,
            assignment=assignment,
        )

    def _render_text(self, text: str, context: dict[str, Any]) -> str:
        """A headline or call-to-action text, parsed once (the manifest's texts only)."""
        if not text:
            return ""
        parsed = self._texts.get(text)
        if parsed is None:
            parsed = self._texts[text] = pystache.parse(text)
        return str(self._text.render(parsed, context))

    def _fill(
        self,
        slot_name: str,
        name: str,
        chosen_by: str,
        variables: dict[str, Any],
        assignment: Assignment | None,
    ) -> Rendered:
        template: Template = self.slot(slot_name).templates[name]
        if template.file in self.parse_errors:
            raise ValueError(f"{template.file} does not parse: {self.parse_errors[template.file]}")
        context = {**variables, "slot": slot_name, "template": name}
        # Headline and call to action are text for JSON: rendered unescaped here, escaped
        # by the HTML template where it shows them ({{headline}}, {{cta_url}}).
        headline = self._render_text(template.headline, context)
        cta = {
            "text": self._render_text(template.cta_text, context),
            "url": self._render_text(template.cta_url, context),
        }
        if cta["url"] and not cta["url"].startswith(SAFE_URL):
            raise ValueError(f"cta_url {cta['url']!r} must start with one of {SAFE_URL}")
        context.update(headline=headline, cta_text=cta["text"], cta_url=cta["url"])
        html = self._html.render(self.parsed[template.file], context)
        items = list(variables.get("items") or [])
        return Rendered(
            slot_name, name, html, headline, cta, items, chosen_by=chosen_by, assignment=assignment
        )


def unescaped(nodes: list[Any]) -> list[str]:
    """Names output without HTML escaping ({{{name}}} or {{& name}}) anywhere in a tree."""
    out: list[str] = []
    for node in nodes:
        kind = type(node).__name__
        if kind == "_LiteralNode":
            out.append(str(node.key))
        elif kind == "_SectionNode":
            out += unescaped(node.parsed._parse_tree)
        elif kind == "_InvertedNode":
            out += unescaped(node.parsed_section._parse_tree)
    return out


def _kind(exc: Exception) -> str:
    return "missing_variable" if type(exc).__name__ == "KeyNotFoundError" else "template_error"
