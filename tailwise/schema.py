"""The canonical data contract: the three tables every dataset is mapped onto.

This module is the one definition of the contract. Ingestion validates against it,
`data/README.md` documents it (a test checks the two agree), and the clean tables that
later stages read are described by `CLEAN_*` column lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DType = Literal["string", "int", "float", "bool", "timestamp", "categories"]
Kind = Literal["key", "demographic", "consent", "pii", "attribute", "behaviour", "context"]


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DType
    required: bool
    kind: Kind
    description: str


@dataclass(frozen=True)
class Table:
    name: str
    key: str | None
    columns: tuple[Column, ...]
    description: str

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.name!r} has no contract column {name!r}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


USERS = Table(
    "users",
    "user_id",
    (
        Column("user_id", "string", True, "key", "Stable id the application uses for the user."),
        Column(
            "age",
            "int",
            False,
            "demographic",
            "Age in years; outside params ingest.age_min..age_max is impossible.",
        ),
        Column(
            "gender",
            "string",
            False,
            "demographic",
            "Free text, lower-cased (e.g. female, male, non_binary).",
        ),
        Column("country", "string", False, "demographic", "ISO-3166 alpha-2 code, upper-cased."),
        Column("region", "string", False, "demographic", "Region or state within the country."),
        Column(
            "income_band",
            "string",
            False,
            "demographic",
            "Ordinal band: low, lower_mid, upper_mid, high.",
        ),
        Column("signup_at", "timestamp", False, "demographic", "When the account was created."),
        Column(
            "consent_personalization",
            "bool",
            False,
            "consent",
            "May the user's data train and drive personalization? Missing means no.",
        ),
        Column(
            "consent_tracking",
            "bool",
            False,
            "consent",
            "May contextual tracking (device, channel, session) be kept? Missing means no.",
        ),
        Column(
            "email",
            "string",
            False,
            "pii",
            "Personal data: used to match duplicates, then kept only as a keyed hash.",
        ),
        Column(
            "full_name",
            "string",
            False,
            "pii",
            "Personal data: used to match duplicates, then kept only as a keyed hash.",
        ),
        Column(
            "phone",
            "string",
            False,
            "pii",
            "Personal data: used to match duplicates, then kept only as a keyed hash.",
        ),
    ),
    "One row per user account (demographic data).",
)

ITEMS = Table(
    "items",
    "item_id",
    (
        Column("item_id", "string", True, "key", "Stable id of the catalogue item."),
        Column("title", "string", False, "attribute", "Display title."),
        Column("description", "string", False, "attribute", "Free-text description."),
        Column(
            "category",
            "categories",
            False,
            "attribute",
            "One or more categories separated by '|'; each may be a path ('Home/Kitchen' or 'Home > Kitchen').",
        ),
        Column("brand", "string", False, "attribute", "Brand or maker."),
        Column("price", "float", False, "attribute", "List price, >= 0."),
        Column(
            "created_at", "timestamp", False, "attribute", "When the item entered the catalogue."
        ),
    ),
    "One row per catalogue item.",
)

EVENTS = Table(
    "events",
    "event_id",
    (
        Column("user_id", "string", True, "key", "Who acted; must exist in users."),
        Column("item_id", "string", True, "key", "On what; must exist in items."),
        Column(
            "event_type",
            "string",
            True,
            "behaviour",
            "Open set; each type needs a weight in params ingest.event_weights.",
        ),
        Column("timestamp", "timestamp", True, "behaviour", "When it happened."),
        Column("event_id", "string", False, "key", "Unique id; makes replays idempotent."),
        Column("value", "float", False, "behaviour", "Rating or quantity, >= 0."),
        Column("price", "float", False, "behaviour", "Unit price paid or shown, >= 0."),
        Column("session_id", "string", False, "context", "Session the event belongs to."),
        Column("device", "string", False, "context", "mobile, desktop, tablet, ... (lower-cased)."),
        Column("channel", "string", False, "context", "Acquisition channel (lower-cased)."),
        Column("country", "string", False, "context", "ISO-3166 alpha-2 country of the request."),
    ),
    "One row per interaction (behavioural and contextual data).",
)

PII_COLUMNS = ("email", "full_name", "phone")
CONTEXT_COLUMNS = ("session_id", "device", "channel", "country")

TABLES: dict[str, Table] = {t.name: t for t in (USERS, ITEMS, EVENTS)}

# The clean tables ingest writes, column by column with their type. Every column is always
# there with this type, even when the dataset has no value for it (then it is all null),
# so no later stage meets a column of Arrow's `null` type or a missing one.
CLEAN_USERS: dict[str, DType] = {
    "user_id": "string",
    "age": "int",
    "age_imputed": "bool",
    "gender": "string",
    "gender_imputed": "bool",
    "country": "string",
    "country_imputed": "bool",
    "region": "string",
    "income_band": "string",
    "income_band_imputed": "bool",
    "region_imputed": "bool",
    "signup_at": "timestamp",
    "consent_tracking": "bool",
    "email_hmac": "string",
    "full_name_hmac": "string",
    "phone_hmac": "string",
    "source_records": "int",
}
CLEAN_ITEMS: dict[str, DType] = {
    "item_id": "string",
    "title": "string",
    "description": "string",
    "category": "string",
    "category_l1": "string",
    "brand": "string",
    "price": "float",
    "price_imputed": "bool",
    "created_at": "timestamp",
}
CLEAN_EVENTS: dict[str, DType] = {
    "event_id": "string",
    "user_id": "string",
    "item_id": "string",
    "event_type": "string",
    "timestamp": "timestamp",
    "value": "float",
    "price": "float",
    "weight": "float",
    **dict.fromkeys(CONTEXT_COLUMNS, "string"),
}
USER_MERGES: dict[str, DType] = {
    "user_id": "string",
    "canonical_user_id": "string",
    "rule": "string",
    "score": "float",
}


TIMESTAMP_RULE = (
    "Timestamps are read as ISO-8601 with any UTC offset ('2026-10-01T12:34:56+02:00', "
    "'...Z'), as ISO-8601 without an offset (taken as UTC), or as epoch seconds "
    "('1790000000' or a number). They are stored as UTC. Anything else, and anything "
    "before params ingest.earliest_timestamp or more than future_tolerance_hours ahead, "
    "is invalid."
)


def contract_markdown() -> str:
    """The contract as Markdown tables (embedded in data/README.md)."""
    parts: list[str] = []
    for table in TABLES.values():
        parts.append(f"### {table.name}\n\n{table.description}\n")
        parts.append("| column | type | required | kind | meaning |")
        parts.append("|---|---|---|---|---|")
        for c in table.columns:
            req = "yes" if c.required else "no"
            parts.append(f"| `{c.name}` | {c.dtype} | {req} | {c.kind} | {c.description} |")
        parts.append("")
    return "\n".join(parts)
