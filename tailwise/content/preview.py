"""`tailwise content preview`: one HTML page with every template of a slot for one user.

Each variant is rendered with the same variables (serving.content reads them as /content
does) and shown in its own section with what the slot's rules would pick, its headline,
call to action and any render error. The page allows no script at all (its
Content-Security-Policy), so a preview can be opened safely whatever the data holds.
"""

from __future__ import annotations

import html
from typing import Any

from tailwise.content.render import Library, Rendered
from tailwise.content.slots import Assignment

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
.variant { border: 1px solid #ccc; border-radius: 6px; margin: 1rem 0; padding: 1rem; }
.variant.chosen { border: 2px solid #2a7; }
.variant header { font-size: .9rem; color: #555; margin-bottom: .5rem; }
.errors { color: #b22; } .render { background: #fafafa; padding: .5rem; }
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src * data:"


def render_variants(
    library: Library,
    slot_name: str,
    variables: dict[str, Any],
    assignment: Assignment | None = None,
) -> tuple[str, list[Rendered]]:
    """(the template this user is served, fallback included; every template rendered)."""
    slot = library.slot(slot_name)
    served = library.render(slot_name, variables, assignment).template
    return served, [library.render_template(slot_name, name, variables) for name in slot.templates]


def preview_page(user_id: str, slot_name: str, served: str, renders: list[Rendered]) -> str:
    esc = html.escape
    sections = []
    for r in renders:
        errors = "".join(f"<li>{esc(e.kind)}: {esc(e.message)}</li>" for e in r.errors)
        sections.append(
            f'<section class="variant{" chosen" if r.template == served else ""}" '
            f'id="variant-{esc(r.template)}" data-template="{esc(r.template)}">'
            f"<header><strong>{esc(r.template)}</strong>"
            f"{' — served to this user' if r.template == served else ''}"
            f' · headline: <q class="headline">{esc(r.headline)}</q>'
            f' · call to action: <q class="cta">{esc(r.cta["text"])}</q> → {esc(r.cta["url"])}'
            f"</header>"
            + (f'<ul class="errors">{errors}</ul>' if errors else "")
            + f'<div class="render">{r.html}</div></section>'
        )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>Preview: {esc(slot_name)} for {esc(user_id)}</title><style>{STYLE}</style>"
        f"</head><body><h1>Slot <code>{esc(slot_name)}</code> for user "
        f'<code id="user">{esc(user_id)}</code></h1>'
        f"<p>{len(renders)} variants; the one this user is served is outlined.</p>"
        + "\n".join(sections)
        + "</body></html>\n"
    )
