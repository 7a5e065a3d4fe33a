"""Hand-made raw tables with one instance of every defect kind, written in all three formats."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tailwise.params import IngestParams

KEY = b"k" * 40

USERS = [
    # user_id, age, gender, country, region, income_band, signup_at, consent_p, consent_t, email, full_name, phone, marketing_source
    [
        "u1",
        "34",
        "female",
        "DE",
        "Berlin",
        "high",
        "2026-01-01T10:00:00+01:00",
        "true",
        "true",
        "anna@example.com",
        "Anna Müller",
        "+49 151 2345678",
        "ads",
    ],
    [
        "u2",
        "250",
        "male",
        "FR",
        "Paris",
        "low",
        "2026-02-01",
        "true",
        "false",
        "bob@example.com",
        "Bob Martin",
        "+33 612345678",
        "seo",
    ],
    [
        "u3",
        "",
        "female",
        "DE",
        "Hamburg",
        "upper_mid",
        "1767225600",
        "true",
        "true",
        " ANNA@example.com ",
        "Müller, Anna",
        "0049-151-2345678",
        "ads",
    ],
    [
        "u4",
        "40",
        "male",
        "XX1",
        "",
        "lower_mid",
        "not a date",
        "false",
        "true",
        "carl@example.com",
        "Carl Kim",
        "+1 202 5550101",
        "ads",
    ],
    [
        "",
        "30",
        "male",
        "US",
        "",
        "low",
        "2026-01-01",
        "true",
        "true",
        "nobody@example.com",
        "No Body",
        "+1 202 5550199",
        "ads",
    ],
    [
        "u5",
        "28",
        "",
        "GB",
        "",
        "",
        "2026-03-01T00:00:00Z",
        "maybe",
        "yes",
        "dora@example.com",
        "Dora Lee",
        "+44 7700 900123",
        "ads",
    ],
    [
        "u6",
        "51",
        "female",
        "",
        "",
        "high",
        "2026-01-05",
        "true",
        "true",
        "eve@example.com",
        "Eve Stone",
        "+49 160 1111111",
        "ads",
    ],
]
USER_COLUMNS = [
    "user_id",
    "age",
    "gender",
    "country",
    "region",
    "income_band",
    "signup_at",
    "consent_personalization",
    "consent_tracking",
    "email",
    "full_name",
    "phone",
    "marketing_source",
]

ITEMS = [
    ["i1", "Phone X", "", "Electronics/Phones", "Acme", "299.0", "2026-01-01"],
    ["i2", "Pan", "", "home > kitchen", "acme", "-5", "2026-01-01"],
    ["i3", "Shoe", "", "Fashion/Shoes|Sports/Running", "Bolt", "80", "2026-01-01"],
    ["", "Ghost", "", "Home/Kitchen", "Acme", "10", "2026-01-01"],
    ["i4", "Pot", "", " Home / Kitchen ", "Acme", "abc", "2026-01-01"],
    ["i5", "Lid", "", "Home/Kitchen", "Acme", "12", "2026-01-01"],
]
ITEM_COLUMNS = ["item_id", "title", "description", "category", "brand", "price", "created_at"]

EVENTS = [
    {
        "event_id": "e1",
        "user_id": "u1",
        "item_id": "i1",
        "event_type": "product_view",
        "timestamp": "2026-03-01T10:00:00+02:00",
        "device": "Mobile",
        "country": "DE",
    },
    {
        "event_id": "e1",
        "user_id": "u1",
        "item_id": "i1",
        "event_type": "product_view",
        "timestamp": "2026-03-01T10:00:00+02:00",
        "device": "Mobile",
        "country": "DE",
    },
    {
        "event_id": "e2",
        "user_id": "u3",
        "item_id": "i2",
        "event_type": "purchase",
        "timestamp": "1772366400",
        "value": 1,
        "price": -3,
        "device": "desktop",
        "country": "DE",
    },
    {
        "event_id": "e3",
        "user_id": "u2",
        "item_id": "i3",
        "event_type": "rating",
        "timestamp": "2026-03-02 12:00:00",
        "value": 4,
        "device": "tablet",
        "session_id": "s1",
    },
    {
        "event_id": "e4",
        "user_id": "u4",
        "item_id": "i1",
        "event_type": "product_view",
        "timestamp": "2026-03-02T12:00:00Z",
    },
    {
        "event_id": "e5",
        "user_id": "u9",
        "item_id": "i1",
        "event_type": "product_view",
        "timestamp": "2026-03-02T12:00:00Z",
    },
    {
        "event_id": "e6",
        "user_id": "u1",
        "item_id": "i9",
        "event_type": "product_view",
        "timestamp": "2026-03-02T12:00:00Z",
    },
    {
        "event_id": "e7",
        "user_id": "u1",
        "item_id": "i1",
        "event_type": "product_view",
        "timestamp": "yesterday",
    },
    {
        "event_id": "e8",
        "user_id": "u1",
        "item_id": "i1",
        "event_type": "clik",
        "timestamp": "2026-03-02T12:00:00Z",
    },
    {
        "event_id": "e9",
        "user_id": "u1",
        "item_id": "i1",
        "event_type": "rating",
        "timestamp": "2026-03-02T12:00:00Z",
        "value": 9,
    },
    {
        "event_id": "e10",
        "user_id": "u5",
        "item_id": "i4",
        "event_type": "add_to_cart",
        "timestamp": "2026-03-03T12:00:00Z",
        "value": "two",
    },
    {
        "event_id": "e11",
        "user_id": "u6",
        "item_id": "i5",
        "event_type": "add_to_cart",
        "timestamp": "2026-03-03T12:00:00Z",
        "value": 2,
        "price": 12.5,
        "country": "PL",
    },
    {
        "event_id": "e12",
        "user_id": "u6",
        "item_id": "i5",
        "event_type": "purchase",
        "timestamp": "2031-01-01T00:00:00Z",
    },
]


def write_raw(folder: Path, fmt: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    users = pd.DataFrame(USERS, columns=USER_COLUMNS)
    items = pd.DataFrame(ITEMS, columns=ITEM_COLUMNS)
    if fmt == "csv":
        users.to_csv(folder / "users.csv", index=False)
        items.to_csv(folder / "items.csv", index=False)
    elif fmt == "parquet":
        users.to_parquet(folder / "users.parquet", index=False)
        items.to_parquet(folder / "items.parquet", index=False)
    else:
        users.to_json(folder / "users.jsonl", orient="records", lines=True)
        items.to_json(folder / "items.jsonl", orient="records", lines=True)
    (folder / "events.jsonl").write_text("\n".join(json.dumps(e) for e in EVENTS) + "\n")
    return folder


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return write_raw(tmp_path / "raw", "csv")


@pytest.fixture
def params() -> IngestParams:
    return IngestParams(duckdb_memory_limit="1GB")
