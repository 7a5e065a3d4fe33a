"""Point-in-time user features from Feast's offline store, for training and monitoring.

    entity rows (user_id, event_timestamp, request_device, request_country, request_ts,
      row_id; built by `request_rows`)
      --Feast get_historical_features([view:feature, ...])--> the features as they were at
        each row's time, in the entity rows' order (`historical_user_features`)

Training builds its examples this way (training.dataset) and monitoring its reference
(monitoring.reference): both ask Feast the same question the same way.

    entity rows of a feature service (the ranker's examples) --historical_features(workers)-->
      workers 1: here, one get_historical_features call per entity of the service (user
      views, item views) over the distinct keys, joined back onto the rows; more: the rows
      split into shards
      by a stable hash of user_id (crc32), each shard's call in a Ray task with a
      FeatureStore of its own over the same config (RAY_ADDRESS joins a cluster, whose
      nodes then need the offline store's files at the same paths), the shards' frames
      concatenated: the same rows, each with its own point-in-time values, in shard order
"""

from __future__ import annotations

import os
import threading
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


# Feast's DuckDB offline store runs every retrieval of a process on one connection, and
# a DuckDB connection refuses a call while another runs: training fetches the ranker's
# examples while the two-tower, in a second thread, can be fetching its own.
_OFFLINE = threading.Lock()


def _retrieve(store: Any, **kwargs: Any) -> pd.DataFrame:
    """store.get_historical_features(**kwargs).to_df(), one call at a time per process."""
    with _OFFLINE:
        return store.get_historical_features(**kwargs).to_df()


def historical_user_features(
    store: Any, entity_rows: pd.DataFrame, features: list[UserFeature]
) -> pd.DataFrame:
    """Point-in-time user features for `entity_rows` (which carry a row_id column)."""
    if "row_id" not in entity_rows.columns:
        raise ValueError("entity_rows need a row_id column to restore their order")
    frame = _retrieve(
        store, entity_df=entity_rows, features=[f.ref for f in features], full_feature_names=False
    )
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
    """One get_historical_features call per entity of the service's views, each over the
    distinct (join keys, event_timestamp, request columns) rows, joined back onto every
    entity row. A view's point-in-time value depends only on its own join keys and the
    row's time (and an on-demand view only on its sources and the request columns), so
    this equals one call over all rows; a ranker's examples repeat each user's key for
    every candidate and each item's for every user, and the distinct keys are far fewer."""
    groups = entity_groups(store, service)
    if len(groups) < 2:
        features = store.get_feature_service(service)
        return _retrieve(store, entity_df=entity_rows, features=features)
    out = entity_rows.reset_index(drop=True)
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True).astype(
        "datetime64[ns, UTC]"
    )
    context = [c for c in REQUEST_COLUMNS if c in out.columns]
    for keys, refs in groups.items():
        on = [*keys, "event_timestamp", *context]
        missing = [c for c in keys if c not in out.columns]
        if missing:
            raise ValueError(f"entity rows lack join key(s) {missing} of service {service}")
        distinct = out[on].drop_duplicates(ignore_index=True)
        got = _retrieve(store, entity_df=distinct, features=refs, full_feature_names=False)
        names = [ref.split(":", 1)[1] for ref in refs]
        got = got[on + names].astype({c: distinct[c].dtype for c in on})
        out = out.merge(got, on=on, how="left", validate="many_to_one")
    return out


def entity_groups(store: Any, service: str) -> dict[tuple[str, ...], list[str]]:
    """The service's feature references ('view:feature') grouped by the join keys of
    their view (an on-demand view: the join keys of its source views), in service order."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for projection in store.get_feature_service(service).feature_view_projections:
        keys = tuple(sorted(_join_keys(store, projection.name)))
        refs = groups.setdefault(keys, [])
        refs.extend(f"{projection.name_to_use()}:{f.name}" for f in projection.features)
    return groups


def _join_keys(store: Any, view_name: str) -> set[str]:
    try:
        view = store.get_feature_view(view_name)
    except Exception:  # not a batch view: an on-demand or a stream view
        try:
            view = store.get_on_demand_feature_view(view_name)
        except Exception:
            view = store.get_stream_feature_view(view_name)
        else:
            keys: set[str] = set()
            for source in view.source_feature_view_projections.values():
                keys |= _join_keys(store, source.name)
            return keys
    return set(view.join_keys)


def _historical_shard(
    config: Any, features_dir: str | None, entity_rows: pd.DataFrame, service: str
) -> pd.DataFrame:
    """One Ray task: a FeatureStore over the driver's config, one shard's rows."""
    from feast import FeatureStore

    if features_dir:  # the feature sources' folder, as tailwise.features.store sets it
        os.environ["TAILWISE_FEATURES_DIR"] = features_dir
    return _historical(FeatureStore(config=config), entity_rows, service)
