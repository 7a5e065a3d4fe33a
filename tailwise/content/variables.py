"""The variables a template sees, built from the profile, the request and the items.

Only what is listed here reaches a template: the pseudonymised user id, the segment, top
categories and brands, recent items, the request's device and daypart, and the
recommended items with their catalogue fields. Demographics, country and every other
profile feature stay out. Values are plain built-ins (str, bool, list, dict): pystache
looks up attributes and calls methods only on other objects, so a template can read data
but never run code. A missing value is "" or [] (falsy), so `{{#brand}}...{{/brand}}`
renders only when there is one; lists come with a `has_<name>` flag for headers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tailwise.features.timezones import COUNTRY_ZONES, DAY_PARTS

# Catalogue fields of an item (the item table's names) a template may read.
ITEM_FIELDS = ("item_id", "title", "brand", "category", "category_l1", "price", "price_band")
ITEM_VARIABLES = (*ITEM_FIELDS, "reason", "position", "first", "last")
TOP_LEVEL = (
    "user_id",
    "slot",
    "template",
    "segment",
    "top_categories",
    "top_brands",
    "recent_items",
    "items",
    "device",
    "daypart",
    "headline",
    "cta_text",
    "cta_url",
    "has_items",
    "has_recent_items",
    "has_top_categories",
    "has_top_brands",
)
# Sections whose entries are items: inside them the item's variables are known too.
ITEM_SECTIONS = ("items", "recent_items")
MAX_LIST = 10


@dataclass
class Inputs:
    """What the caller read for one user and request (all optional)."""

    user_id: str
    profile: Mapping[str, Any] = field(default_factory=dict)  # online user features
    device: str | None = None
    country: str | None = None  # for the local daypart only; never shown
    timestamp: datetime | None = None
    items: Sequence[Mapping[str, Any]] = ()  # recommended: item_id, reason + catalogue
    recent: Sequence[Mapping[str, Any]] = ()  # recent items with catalogue fields
    daypart: str | None = None  # given by the caller, else from timestamp and country


def daypart(timestamp: datetime | None, country: str | None) -> str:
    """morning / afternoon / evening / night in the country's time (UTC if unknown)."""
    ts = timestamp or datetime.now(UTC)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    local = ts.astimezone(ZoneInfo(COUNTRY_ZONES.get((country or "").upper(), "UTC")))
    return next(p for p, (start, end) in DAY_PARTS.items() if start <= local.hour < end)


def build_variables(inputs: Inputs) -> dict[str, Any]:
    """The render context of one request (before headline and call to action)."""
    profile = inputs.profile
    items = [_item(it, n) for n, it in enumerate(inputs.items[:MAX_LIST], start=1)]
    recent = [_item(it, n) for n, it in enumerate(inputs.recent[:MAX_LIST], start=1)]
    _mark_ends(items)
    _mark_ends(recent)
    categories = _strings(profile.get("top_categories"))
    brands = _strings(profile.get("top_brands"))
    return {
        "user_id": _text(inputs.user_id),
        "segment": _text(profile.get("segment_name")),
        "top_categories": categories,
        "top_brands": brands,
        "recent_items": recent,
        "items": items,
        "device": _text(inputs.device).lower(),
        "daypart": _text(inputs.daypart) or daypart(inputs.timestamp, inputs.country),
        "has_items": bool(items),
        "has_recent_items": bool(recent),
        "has_top_categories": bool(categories),
        "has_top_brands": bool(brands),
        "headline": "",
        "cta_text": "",
        "cta_url": "",
        "slot": "",
        "template": "",
    }


def recent_item_ids(profile: Mapping[str, Any]) -> list[str]:
    return _strings(profile.get("recent_items"))[:MAX_LIST]


def _item(raw: Mapping[str, Any], position: int) -> dict[str, Any]:
    out: dict[str, Any] = {name: _text(raw.get(name)) for name in ITEM_FIELDS}
    out["price"] = _price(raw.get("price"))
    out["reason"] = _text(raw.get("reason"))
    out["position"] = str(position)
    return out


def _mark_ends(entries: list[dict[str, Any]]) -> None:
    for n, entry in enumerate(entries):
        entry["first"], entry["last"] = n == 0, n == len(entries) - 1


def _price(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return f"{number:.2f}" if math.isfinite(number) else ""


def _text(value: Any) -> str:
    """A plain str: None and NaN become "" (falsy in a section); numpy scalars and the
    like become their text, so no object with methods reaches pystache."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)


def _strings(values: Any) -> list[str]:
    if values is None or isinstance(values, (str, bytes)):
        return [_text(values)] if values else []
    try:
        return [t for t in (_text(v) for v in list(values)[:MAX_LIST]) if t]
    except TypeError:
        return []
