"""Point-in-time user features from Feast's offline store, for training and monitoring.

    entity rows (user_id, event_timestamp, request_device, request_country, request_ts,
      row_id; built by `request_rows`)
      --Feast get_historical_features([view:feature, ...])--> the features as they were at
        each row's time, in the entity rows' order (`historical_user_features`)

Training builds its examples this way (training.dataset) and monitoring its reference
(monitoring.reference): both ask Feast the same question the same way.

    entity rows of a feature service (the ranker's examples) --historical_features(workers)-->
      workers 1: one get_historical_features call here; more: the rows split into shards
      by a stable hash of user_id (crc32), each shard's call in a Ray task with a
      FeatureStore of its own over the same config (RAY_ADDRESS joins a cluster, whose
      nodes then need the offline store's files at the same paths), the shards' frames
      concatenated: the same rows, each with its own point-in-time values, in shard order
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tailwise.ray_jobs import connected, shard_of

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


def historical_features(
    store: Any, entity_rows: pd.DataFrame, service: str, workers: int = 1
) -> pd.DataFrame:
    """Feast's get_historical_features for `entity_rows` (with a user_id column) over the
    feature service `service`, in this process or in `workers` Ray tasks over user shards.
    The row order is the engine's: callers restore theirs from a row key they carry."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1 or len(entity_rows) == 0:
        return _historical(store, entity_rows, service)
    import ray

    shard = shard_of(pa.array(entity_rows["user_id"].astype(str)), workers)
    parts = [entity_rows[shard == n] for n in range(workers) if (shard == n).any()]
    with connected(workers):
        task = ray.remote(num_cpus=1, max_retries=1)(_historical_shard)
        features_dir = os.environ.get("TAILWISE_FEATURES_DIR")
        frames = ray.get([task.remote(store.config, features_dir, p, service) for p in parts])
    return pd.concat(frames, ignore_index=True)


def _historical(store: Any, entity_rows: pd.DataFrame, service: str) -> pd.DataFrame:
    features = store.get_feature_service(service)
    return store.get_historical_features(entity_df=entity_rows, features=features).to_df()


def _historical_shard(
    config: Any, features_dir: str | None, entity_rows: pd.DataFrame, service: str
) -> pd.DataFrame:
    """One Ray task: a FeatureStore over the driver's config, one shard's rows."""
    from feast import FeatureStore

    if features_dir:  # the feature sources' folder, as tailwise.features.store sets it
        os.environ["TAILWISE_FEATURES_DIR"] = features_dir
    return _historical(FeatureStore(config=config), entity_rows, service)
