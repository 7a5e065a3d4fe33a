"""When ingest stops instead of dropping rows quietly.

After every table is validated, each reason that removed rows (quarantine, or exclusion for
missing consent) is compared with params `ingest.max_quarantine_share` of the table's
input, and a table that keeps no row at all stops the run. The message names the table,
the reason, the count and what governs it: a parameter (`ingest.earliest_timestamp`,
`ingest.event_weights`, `ingest.consent_default`, ...) or the source column to fix.
"""

from __future__ import annotations

from tailwise.ingest.outcome import TableOutcome
from tailwise.params import IngestParams

_CONSENT = "column 'consent_personalization' of users (missing or unreadable means no consent)"
# (table, words in the reason, what governs it); first match wins.
_GOVERNED_BY: list[tuple[str, str, str]] = [
    ("events", "timestamp: before", "params ingest.earliest_timestamp"),
    ("events", "in the future", "params ingest.future_tolerance_hours"),
    (
        "events",
        "ingest.event_weights",
        "params ingest.event_weights (or the mapping's event_types)",
    ),
    (
        "events",
        "a rating needs a value",
        "column 'value' of events (a rating is weighted by its value), or params "
        "ingest.value_weighted_types and ingest.rating_scale_max",
    ),
    (
        "events",
        "user_id: not in the users table",
        "column 'user_id' of events (each must be a user_id of the users table)",
    ),
    (
        "events",
        "item_id: not in the items table",
        "column 'item_id' of events (each must be an item_id of the items table)",
    ),
    ("events", "user excluded", _CONSENT),
    ("users", "no personalization consent", _CONSENT),
]
# Honouring a person's erasure request is never a reason to stop.
_NEVER_STOPS = ("erased on request",)


def governed_by(table: str, reason: str, consent_in_source: bool) -> str:
    """The parameter or source column a person changes to keep rows removed for `reason`."""
    for name, words, what in _GOVERNED_BY:
        if name == table and words in reason:
            if what == _CONSENT and not consent_in_source:
                return (
                    "params ingest.consent_default (the users source has no "
                    "consent_personalization values, so the default applies)"
                )
            return what
    column = reason.split(":", 1)[0] if ":" in reason else "the rows"
    return f"column {column!r} of the {table} source (or its mapping)"


def _removals(outcome: TableOutcome) -> list[tuple[str, int]]:
    """(reason, rows) for every reason that kept rows out of the table, largest first."""
    found = [
        (reason, n)
        for bucket in ("quarantined", "excluded_no_consent")
        for reason, n in outcome.reasons.get(bucket, {}).items()
        if reason not in _NEVER_STOPS
    ]
    return sorted(found, key=lambda rn: -rn[1])


def violations(
    outcomes: dict[str, TableOutcome], p: IngestParams, consent_in_source: bool
) -> list[str]:
    """One sentence per table that keeps nothing or loses too much to one reason."""
    found: list[str] = []
    for table, o in outcomes.items():
        removals = _removals(o)
        if o.input and o.kept == 0:
            why = ""
            if removals:
                reason, n = removals[0]
                why = (
                    f"; the main reason, {reason!r} ({n:,} rows), is governed by "
                    f"{governed_by(table, reason, consent_in_source)}"
                )
            found.append(f"{table}: no row of {o.input:,} was kept{why}.")
            continue
        for reason, n in removals:
            if o.input and n / o.input > p.max_quarantine_share:
                found.append(
                    f"{table}: {n:,} of {o.input:,} rows ({n / o.input:.0%}) were removed for "
                    f"{reason!r}, more than ingest.max_quarantine_share "
                    f"({p.max_quarantine_share:g}); this is governed by "
                    f"{governed_by(table, reason, consent_in_source)}."
                )
    return found
