"""Point-in-time user features from Feast's offline store, for training and monitoring.

    entity rows (user_id, event_timestamp, request_device, request_country, request_ts,
      row_id; built by `request_rows`)
      --Feast get_historical_features([view:feature, ...])--> the features as they were at
        each row's time, in the entity rows' order (`historical_user_features`)

Training builds its examples this way (training.dataset) and monitoring its reference
(monitoring.reference): both ask Feast the same question the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

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
