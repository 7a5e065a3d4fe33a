"""Training examples of the two-tower retriever: positive events + point-in-time features.

    clean events --positives (weight > 0)--> entity rows (user_id, event time, device, country)
        |                                         |
        |            Feast get_historical_features(retrieval_v1's user views, minus the
        |            real-time session view) --> user features as of each event
        v                                         v
    item attributes (clean items) ----join----> one row per positive interaction:
                                                example_id, user_id, item_id, event_timestamp,
                                                weight, first_touch, <user features>,
                                                [history_items], <item attributes>

first_touch: the user had no earlier event (of any type) with the item. history_items
(when asked for): the user's last M distinct items strictly before the event, from the
events themselves (tailwise.features.tower_inputs.items_before, the definition serving
applies to the user's history in Redis).

Which user features exist and what type they are comes from the feature service
definition (`user_features`), so the towers and serving read one list; the Feast
point-in-time read itself is shared with monitoring (tailwise.features.point_in_time).
The real-time session view is left out: its offline history is per event, and training
on it would teach the model what only serving can see at request time with a different
lag.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tailwise.features.point_in_time import UserFeature, historical_user_features, request_rows
from tailwise.features.tower_inputs import items_before

SERVICE = "retrieval_v1"
EXCLUDED_VIEWS = ("user_realtime_session",)
ITEM_COLUMNS = ("category", "category_l1", "brand", "price")
HISTORY_COLUMN = "history_items"  # training.towers.HISTORY_ITEMS


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


def retrieval_examples(
    store: Any,
    events: pd.DataFrame,
    items: pd.DataFrame,
    service: str = SERVICE,
    history_items: int = 0,
) -> pd.DataFrame:
    """One row per positive interaction with user features as of the event and item
    attributes; with `history_items` > 0 also the user's last that many items before it."""
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
    examples["first_touch"] = _first_touch(events, positive)
    if history_items > 0:
        at = pd.DataFrame(
            {"user_id": examples["user_id"], "timestamp": examples["event_timestamp"]}
        )
        examples[HISTORY_COLUMN] = items_before(events, at, history_items)
    examples = examples.merge(catalogue, on="item_id", how="left")
    return examples.sort_values("example_id").reset_index(drop=True)


def _first_touch(events: pd.DataFrame, positive: pd.DataFrame) -> np.ndarray:
    """Per positive event: no event of the same user and item happened before it."""
    keys = ["user_id", "item_id"]
    log = events[[*keys, "timestamp"]].astype({"user_id": str, "item_id": str})
    first = log.assign(timestamp=pd.to_datetime(log["timestamp"], utc=True))
    first = first.groupby(keys, sort=False)["timestamp"].min().rename("first").reset_index()
    asked = positive[keys].astype(str).assign(at=pd.to_datetime(positive["timestamp"], utc=True))
    merged = asked.merge(first, on=keys, how="left")
    return (merged["first"].isna() | (merged["first"] >= merged["at"])).to_numpy()
