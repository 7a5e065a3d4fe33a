"""Local time of an event: the event's country picks an IANA zone, UTC when unknown.

One representative zone per country (the most populous one for countries spanning
several), which is enough for morning/afternoon/evening/night buckets. The table is
exposed to SQL as a VALUES list so DuckDB converts each event's timestamp itself.
"""

from __future__ import annotations

COUNTRY_ZONES: dict[str, str] = {
    "AR": "America/Argentina/Buenos_Aires",
    "AT": "Europe/Vienna",
    "AU": "Australia/Sydney",
    "BE": "Europe/Brussels",
    "BR": "America/Sao_Paulo",
    "CA": "America/Toronto",
    "CH": "Europe/Zurich",
    "CL": "America/Santiago",
    "CN": "Asia/Shanghai",
    "CO": "America/Bogota",
    "CZ": "Europe/Prague",
    "DE": "Europe/Berlin",
    "DK": "Europe/Copenhagen",
    "EG": "Africa/Cairo",
    "ES": "Europe/Madrid",
    "FI": "Europe/Helsinki",
    "FR": "Europe/Paris",
    "GB": "Europe/London",
    "GR": "Europe/Athens",
    "HU": "Europe/Budapest",
    "ID": "Asia/Jakarta",
    "IE": "Europe/Dublin",
    "IL": "Asia/Jerusalem",
    "IN": "Asia/Kolkata",
    "IT": "Europe/Rome",
    "JP": "Asia/Tokyo",
    "KR": "Asia/Seoul",
    "MX": "America/Mexico_City",
    "NG": "Africa/Lagos",
    "NL": "Europe/Amsterdam",
    "NO": "Europe/Oslo",
    "NZ": "Pacific/Auckland",
    "PL": "Europe/Warsaw",
    "PT": "Europe/Lisbon",
    "RO": "Europe/Bucharest",
    "RU": "Europe/Moscow",
    "SA": "Asia/Riyadh",
    "SE": "Europe/Stockholm",
    "SG": "Asia/Singapore",
    "TR": "Europe/Istanbul",
    "UA": "Europe/Kyiv",
    "US": "America/New_York",
    "ZA": "Africa/Johannesburg",
}

# Local hour ranges [start, end) of the day-part buckets.
DAY_PARTS: dict[str, tuple[int, int]] = {
    "morning": (6, 12),
    "afternoon": (12, 18),
    "evening": (18, 24),
    "night": (0, 6),
}


def zones_sql() -> str:
    """A `(country, zone)` relation for joining onto events."""
    rows = ", ".join(f"('{c}', '{z}')" for c, z in COUNTRY_ZONES.items())
    return f"(SELECT * FROM (VALUES {rows}) AS z(country, zone))"
