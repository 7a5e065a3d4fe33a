"""Training examples of the two-tower retriever: positive events + point-in-time features.

    clean events --positives (weight > 0)--> entity rows (user_id, event time, device, country)
        |                                         |
        |            Feast get_historical_features(retrieval_v1's user views, minus the
        |            real-time session view) --> user features as of each event
        v                                         v
    item attributes (clean items) ----join----> one row per positive interaction:
                                                example_id, user_id, item_id, event_timestamp,
                                                weight, <user features>, <item attributes>

Which user features exist and what type they are comes from the feature service
definition (`user_features`), so the towers and serving read one list. The real-time
session view is left out: its offline history is per event, and training on it would
teach the model what only serving can see at request time with a different lag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

SERVICE = "retrieval_v1"
EXCLUDED_VIEWS = ("user_realtime_session",)
ITEM_COLUMNS = ("category", "category_l1", "brand", "price")
REQUEST_COLUMNS = ("request_device", "request_country", "request_ts")


@dataclass(frozen=True)
class UserFeature:
    """One user feature of the service: its view, name and tower kind.

    kind: 'categorical' (string), 'numeric' (int, float, bool), 'string_list',
    'float_list'."""

    view: str
    name: str
    kind: str

    @property
    def ref(self) -> str:
        return f"{self.view}:{self.name}"


def user_features(
    store: Any, service: str = SERVICE, exclude_views: tuple[str, ...] = EXCLUDED_VIEWS
) -> list[UserFeature]:
    """The user features `service` declares, in its order, without `exclude_views`."""
    definition = store.get_feature_service(service)
    out = []
    for projection in definition.feature_view_projections:
        if projection.name in exclude_views:
            continue
        for field in projection.features:
            out.append(UserFeature(projection.name, field.name, _kind(field.dtype)))
    if not out:
        raise ValueError(f"feature service {service!r} has no user features left")
    return out


def _kind(dtype: Any) -> str:
    from feast.types import Array, PrimitiveFeastType

    if isinstance(dtype, Array):
        base = dtype.base_type
        return "string_list" if base == PrimitiveFeastType.STRING else "float_list"
    if dtype == PrimitiveFeastType.STRING:
        return "categorical"
    return "numeric"


def positive_events(events: pd.DataFrame) -> pd.DataFrame:
    """Events that say the user wanted the item (weight > 0), with a stable example_id."""
    for column in ("user_id", "item_id", "timestamp", "weight"):
        if column not in events.columns:
            raise ValueError(f"events lack column {column!r}; got {list(events.columns)}")
    positive = events[(events["weight"] > 0) & events["item_id"].notna()]
    return positive.reset_index(drop=True).assign(example_id=lambda f: np.arange(len(f)))


def request_rows(
    user_ids: pd.Series,
    when: pd.Series,
    device: pd.Series | None = None,
    country: pd.Series | None = None,
) -> pd.DataFrame:
    """Feast entity rows: who, as of when, and the request context the ODFV needs."""
    stamps = pd.to_datetime(pd.Series(when).reset_index(drop=True), utc=True)
    blank = np.full(len(stamps), "", dtype=object)
    return pd.DataFrame(
        {
            "user_id": pd.Series(user_ids).astype(str).to_numpy(),
            "event_timestamp": stamps,
            "request_device": blank if device is None else device.fillna("").to_numpy(object),
            "request_country": blank if country is None else country.fillna("").to_numpy(object),
            "request_ts": (stamps.astype("datetime64[ns, UTC]").astype("int64") // 10**9),
        }
    )


def historical_user_features(
    store: Any, entity_rows: pd.DataFrame, features: list[UserFeature]
) -> pd.DataFrame:
    """Point-in-time user features for `entity_rows` (which carry a row_id column)."""
    if "row_id" not in entity_rows.columns:
        raise ValueError("entity_rows need a row_id column to restore their order")
    job = store.get_historical_features(
        entity_df=entity_rows, features=[f.ref for f in features], full_feature_names=False
    )
    frame = job.to_df()
    frame = frame.sort_values("row_id").reset_index(drop=True)
    if len(frame) != len(entity_rows):
        raise ValueError(
            f"Feast returned {len(frame)} rows for {len(entity_rows)} entity rows; the offline "
            "store must keep rows without features (use the duckdb store, not file)"
        )
    return frame


def retrieval_examples(
    store: Any, events: pd.DataFrame, items: pd.DataFrame, service: str = SERVICE
) -> pd.DataFrame:
    """One row per positive interaction with user features as of the event and item attributes."""
    if "item_id" not in items.columns:
        raise ValueError(f"items lack column 'item_id'; got {list(items.columns)}")
    # Optional attributes the catalogue does not have are missing (the towers drop them).
    items = items.assign(**{c: None for c in ITEM_COLUMNS if c not in items.columns})
    positive = positive_events(events)
    entity = request_rows(
        positive["user_id"],
        positive["timestamp"],
        positive.get("device"),
        positive.get("country"),
    ).assign(row_id=positive["example_id"].to_numpy())
    features = user_features(store, service)
    users = historical_user_features(store, entity, features)
    catalogue = items[["item_id", *ITEM_COLUMNS]].drop_duplicates("item_id")
    examples = pd.DataFrame(
        {
            "example_id": positive["example_id"].to_numpy(),
            "user_id": positive["user_id"].astype(str).to_numpy(),
            "item_id": positive["item_id"].astype(str).to_numpy(),
            "event_timestamp": pd.to_datetime(positive["timestamp"], utc=True),
            "weight": positive["weight"].astype(float).to_numpy(),
        }
    )
    for feature in features:
        examples[feature.name] = users[feature.name].to_numpy()
    examples = examples.merge(catalogue, on="item_id", how="left")
    return examples.sort_values("example_id").reset_index(drop=True)
