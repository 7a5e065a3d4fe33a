"""Where features come from: Parquet tables written by `tailwise features build`.

Paths are absolute (the DuckDB offline store resolves relative paths against the working
directory, not this folder): TAILWISE_FEATURES_DIR, else data/features beside this repo.
Every source is tagged with the data version the tables were built from (their
data_version.json), so the registry says which data it serves.
"""

import json
import os
from pathlib import Path

from feast import Field, FileSource, PushSource, RequestSource
from feast.types import Int64, String

from tailwise.features.profiles import PROFILE_COLUMNS

FEATURES_DIR = Path(
    os.environ.get(
        "TAILWISE_FEATURES_DIR", Path(__file__).resolve().parent.parent / "data" / "features"
    )
).resolve()


def _declared_extras() -> list[tuple[str, str]]:
    """Extra user attributes declared in the ingest mapping, as the last build wrote them."""
    manifest = FEATURES_DIR / "features_manifest.json"
    if not manifest.exists():
        return []
    columns = json.loads(manifest.read_text())["tables"]["user_profile"]["columns"]
    return [(c["name"], c["type"]) for c in columns if c["name"] not in PROFILE_COLUMNS]


def _data_version() -> str:
    """The data version of the tables (tailwise.lineage), or "" for a build without one."""
    record = FEATURES_DIR / "data_version.json"
    return str(json.loads(record.read_text())["data_version"]) if record.exists() else ""


USER_EXTRA_COLUMNS = _declared_extras()
DATA_VERSION = _data_version()


def _table(name: str, description: str, field_mapping: dict[str, str] | None = None) -> FileSource:
    return FileSource(
        field_mapping=field_mapping,
        name=f"{name}_source",
        path=str(FEATURES_DIR / f"{name}.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
        description=description,
        owner="ml-platform@tailwise.dev",
        tags={"built_by": "tailwise features build", "data_version": DATA_VERSION},
    )


user_profile_source = _table("user_profile", "Demographics per user, valid from signup.")
user_daily_source = _table("user_daily", "Behavioural snapshots per user at UTC day ends.")
item_catalog_source = _table("item_catalog", "Catalogue attributes per item.")
# Item counters share their column names with the user's; the item_ prefix keeps them apart
# when one request reads both (ranking_v1).
ITEM_DAILY_COLUMNS = [
    *(f"{s}_{w}d" for s in ("views", "carts", "purchases") for w in (1, 7, 30)),
    "unique_users_7d",
    "conversion_7d",
    "conversion_30d",
    "popularity_rank_7d",
]
item_daily_source = _table(
    "item_daily",
    "Popularity and conversion snapshots per item.",
    field_mapping={c: f"item_{c}" for c in ITEM_DAILY_COLUMNS},
)
user_realtime_source = _table("user_realtime", "Session state after each event (history).")

user_realtime_push = PushSource(
    name="user_realtime_push",
    batch_source=user_realtime_source,
    description="Live session state, pushed by the serving app on every event.",
    owner="ml-platform@tailwise.dev",
    tags={"freshness": "milliseconds"},
)

request_context = RequestSource(
    name="request_context",
    schema=[
        Field(name="request_device", dtype=String),
        Field(name="request_country", dtype=String),
        Field(name="request_ts", dtype=Int64),
    ],
    description="Sent with each request: device, country and epoch seconds of the request "
    "(prefixed so they never clash with the user's profile country).",
    owner="ml-platform@tailwise.dev",
    tags={"kind": "contextual"},
)
