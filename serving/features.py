"""Online features for one request: the user's views from Redis, items from memory, context.

    ranking feature service (Feast registry, read once)
      user views   --OnlineFeatures.read (one HMGET)--> user dict
      item views   --ItemTable (in memory; reloaded when materialisation moves)--> columns
      on-demand views: the registered Python UDFs themselves, called on the request's
      context (user_request_context) and on the candidates (item_request_freshness)

The on-demand views are not re-implemented: the functions Feast stored in the registry run
here, so `get_online_features` and this path compute the same values (a parity test feeds
both). Why not Feast's SDK on the request path: bench/results/online_lookup.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis

from serving.bundle import BundleError, ModelBundle
from tailwise.features.cross import CROSS_FEATURES
from tailwise.features.online import ItemTable, OnlineFeatures, materialized_stamp_key
from tailwise.repeats import HISTORY_FEATURES

USER_KEY, ITEM_KEY = "user_id", "item_id"
REQUEST_FIELDS = ("request_device", "request_country", "request_ts")


@dataclass(frozen=True)
class OnDemand:
    name: str
    udf: Any
    per_item: bool  # one of its sources is an item view: evaluated over candidates
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]  # features of its source views it reads


class FeatureReader:
    """Reads everything the ranking service (a superset of retrieval's) names."""

    def __init__(
        self, store: Any, client: redis.Redis, service: str, item_ids: Sequence[str]
    ) -> None:
        self.client, self.project = client, store.project
        from feast.errors import FeatureViewNotFoundException

        user_views: list[Any] = []
        item_views: list[Any] = []
        on_demand: list[Any] = []
        for projection in store.get_feature_service(service).feature_view_projections:
            try:
                view = store.get_feature_view(projection.name)
            except FeatureViewNotFoundException:  # an on-demand view has its own getter
                odfv = store.get_on_demand_feature_view(projection.name)
                on_demand.append(odfv)
                continue
            keys = {c.name for c in view.entity_columns}
            (item_views if ITEM_KEY in keys else user_views).append(view)
        self.user_views, self.item_views = user_views, item_views
        item_view_names = {v.name for v in item_views}
        self.on_demand = [
            OnDemand(
                odfv.name,
                odfv.feature_transformation.udf,
                any(p in item_view_names for p in odfv.source_feature_view_projections),
                tuple(f.name for f in odfv.features),
                tuple(
                    f.name
                    for p in odfv.source_feature_view_projections.values()
                    for f in p.features
                ),
            )
            for odfv in on_demand
        ]
        self.users = OnlineFeatures(client, self.project, USER_KEY, user_views)
        self.item_ids = list(item_ids)
        self.items = ItemTable.from_online(client, self.project, item_views, self.item_ids)
        self.user_feature_names = [f for layout in self.users.layouts for f in layout.features]
        self._on_demand_cache: tuple[Any, dict[str, np.ndarray]] | None = None

    @property
    def request_item_features(self) -> set[str]:
        """Item features computed per request: the per-item on-demand views' outputs."""
        return {name for odfv in self.on_demand if odfv.per_item for name in odfv.outputs}

    def user(self, user_id: str) -> dict[str, Any]:
        """The user's features (None where absent); raises redis errors to the caller."""
        return self.users.read(user_id)

    def with_context(
        self, user: dict[str, Any], device: str | None, country: str | None, ts: int
    ) -> dict[str, Any]:
        """`user` plus the request fields and the per-user on-demand features."""
        row = {**user, "request_device": device, "request_country": country, "request_ts": ts}
        for odfv in self.on_demand:
            if not odfv.per_item:  # given what Feast would give it: its sources' features
                inputs = {k: [row.get(k)] for k in (*odfv.inputs, *REQUEST_FIELDS)}
                row.update({k: v[0] for k, v in odfv.udf(inputs).items()})
        return row

    def catalogue_on_demand(self, ts: int) -> dict[str, np.ndarray]:
        """The per-item on-demand features of every item in the item table at `ts`.

        They depend only on the item and the request time, so they run once per second
        over the whole catalogue (the same dict until `ts` or the table moves)."""
        key = (ts, self.items.stamp, id(self.items))
        if self._on_demand_cache is not None and self._on_demand_cache[0] == key:
            return self._on_demand_cache[1]
        n = len(self.items.frame)
        inputs: dict[str, list[Any]] = {k: list(v) for k, v in self.items.columns.items()}
        inputs["request_ts"] = [ts] * n
        out: dict[str, np.ndarray] = {}
        for odfv in self.on_demand:
            if odfv.per_item:
                for name, values in odfv.udf(inputs).items():
                    out[name] = _numbers_or_objects(values)
        self._on_demand_cache = (key, out)
        return out

    def refresh_items(self) -> bool:
        """Reload item features when materialisation moved; True when reloaded."""
        stamp = self.client.get(materialized_stamp_key(self.project))
        current = stamp.decode() if isinstance(stamp, bytes) else None
        if current == self.items.stamp:
            return False
        self.items = ItemTable.from_online(
            self.client, self.project, self.item_views, self.item_ids
        )
        return True


def _numbers_or_objects(values: Any) -> np.ndarray:
    """float64 (NaN for missing) when every value is a number or missing, else objects:
    numeric on-demand features then index and encode without a per-item Python step."""
    array = np.asarray(values, dtype=object)
    if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in array):
        return np.array([np.nan if v is None else v for v in array], dtype=np.float64)
    return array


def check_features(bundle: ModelBundle, reader: FeatureReader) -> None:
    """The model's inputs must all be features Feast serves, or computed here (cross,
    retrieval and history features, a union version's source features, the query tower's
    latest items), or ones training dropped (the manifest's
    `dropped_features`: the model reads them as missing). Features Feast serves that the
    model does not use are fine."""
    available = set(reader.user_feature_names) | set(reader.items.columns)
    available |= {o for odfv in reader.on_demand for o in odfv.outputs}
    available |= bundle.dropped_features
    ranker_extra = {*CROSS_FEATURES, *HISTORY_FEATURES, "retrieval_score", "retrieval_rank"}
    ranker_extra |= bundle.union_features  # computed from the version's own sources
    missing_ranker = [f for f in bundle.ranker_features if f not in available | ranker_extra]
    missing_tower = [
        s.name
        for s in bundle.inputs
        # the user's latest items come from the history in Redis (serving.history)
        if s.kind != "item_history" and s.name not in available | {USER_KEY}
    ]
    if missing_ranker or missing_tower:
        raise BundleError(
            f"model {bundle.version} needs features Feast does not serve: ranker "
            f"{missing_ranker}, query tower {missing_tower} (run `tailwise features apply`)"
        )
