"""The request path's feature reads and writes, in Feast's own Redis layout.

Reading the hash directly instead of through Feast's SDK is the measured gain in
bench/results/online_lookup.md. `OnlineFeatures` reads and writes the exact hash layout Feast's Redis online store uses
(key = serialised entity key + project; field = murmur3 of "view:feature"; value =
ValueProto; `_ts:<view>` = event time), built with Feast's own encoders, so
`get_online_features` and this class always see the same values (a parity test holds
them together). Item features change only on materialisation, so `ItemTable` keeps them
in process memory as arrays and reloads them when the materialisation stamp moves.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import redis
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from google.protobuf.timestamp_pb2 import Timestamp

KEY_VERSION = 3


def materialized_stamp_key(project: str) -> str:
    """Redis key holding when features of `project` were last materialised."""
    return f"tailwise:{project}:materialized_at"


@dataclass(frozen=True)
class ViewLayout:
    name: str
    features: tuple[str, ...]
    value_types: tuple[Any, ...]  # feast ValueType per feature, for writes
    fields: tuple[bytes, ...]  # hash fields per feature, then the _ts field

    @classmethod
    def of(cls, view: Any) -> ViewLayout:
        names = tuple(f.name for f in view.features)
        types = tuple(f.dtype.to_value_type() for f in view.features)
        fields = (*tuple(_mmh3(f"{view.name}:{n}") for n in names), f"_ts:{view.name}".encode())
        return cls(view.name, names, types, fields)


class OnlineFeatures:
    """Direct reads/writes of one entity's feature views in Feast's Redis layout."""

    def __init__(self, client: redis.Redis, project: str, join_key: str, views: Sequence[Any]):
        self.client, self.project, self.join_key = client, project, join_key
        self.layouts = [ViewLayout.of(v) for v in views]
        self._fields = [f for layout in self.layouts for f in layout.fields]
        # Feast's key for a one-string-join-key entity is a fixed head, the value's length
        # (uint32 little-endian), the value and the project; test_online_decode.py holds
        # `key` to serialize_entity_key.
        empty = _feast_key(join_key, "")
        self._key_head, self._key_tail = empty[:-4], project.encode()
        # (feature, position of its field in `_fields`): every field but the _ts ones
        self._slots: list[tuple[str, int]] = []
        position = 0
        for layout in self.layouts:
            self._slots += [(name, position + i) for i, name in enumerate(layout.features)]
            position += len(layout.fields)  # the view's features, then its _ts field

    def key(self, entity_id: str) -> bytes:
        value = entity_id.encode()
        return b"".join((self._key_head, _LENGTH.pack(len(value)), value, self._key_tail))

    def read(self, entity_id: str) -> dict[str, Any]:
        """All features of all views for one entity (None where absent), one round trip."""
        raw = self.client.hmget(self.key(entity_id), self._fields)  # type: ignore[arg-type]
        return self._decode(raw)  # type: ignore[arg-type]

    def queue_read(self, pipe: Any, entity_id: str) -> None:
        """Queue this entity's read on a redis-py pipeline (sync or `redis.asyncio`), to go
        out with other commands in one round trip; `decode` its reply."""
        pipe.hmget(self.key(entity_id), self._fields)

    def decode(self, raw: list[bytes | None]) -> dict[str, Any]:
        return self._decode(raw)

    def read_many(self, entity_ids: Iterable[str]) -> list[dict[str, Any]]:
        pipe = self.client.pipeline(transaction=False)
        for entity_id in entity_ids:
            pipe.hmget(self.key(entity_id), self._fields)  # type: ignore[arg-type]
        return [self._decode(raw) for raw in pipe.execute()]

    def _decode(self, raw: list[bytes | None]) -> dict[str, Any]:
        # _decode_value, with its table lookup inlined: one Python call per new value only.
        known = _DECODED.get
        out: dict[str, Any] = {}
        for name, i in self._slots:
            value: Any = raw[i]
            if value is not None:
                value = known(value, _NEW)
                if value is _NEW:
                    value = _decode_value(raw[i])
                elif value.__class__ is tuple:
                    value = list(value)
            out[name] = value
        return out

    def write(self, entity_id: str, view: str, values: dict[str, Any], at: datetime) -> None:
        """Write one view's features for one entity, as Feast's push would."""
        layout = next((v for v in self.layouts if v.name == view), None)
        if layout is None:
            raise KeyError(f"view {view!r} is not one of {[v.name for v in self.layouts]}")
        ts = Timestamp()
        ts.FromDatetime(at.astimezone(UTC))
        mapping: dict[bytes, bytes] = {layout.fields[-1]: ts.SerializeToString()}
        for name, vtype, field in zip(
            layout.features, layout.value_types, layout.fields, strict=False
        ):
            proto = python_values_to_proto_values([values.get(name)], vtype)[0]
            mapping[field] = proto.SerializeToString()
        self.client.hset(self.key(entity_id), mapping=mapping)  # type: ignore[arg-type]


def _feast_key(join_key: str, entity_id: str) -> bytes:
    """Feast's serialised entity key (without the project) for one string join key."""
    proto = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=entity_id)])
    return serialize_entity_key(proto, entity_key_serialization_version=KEY_VERSION)


_LENGTH = struct.Struct("<I")


def _decode_value(raw: bytes | None) -> Any:
    """A stored ValueProto as `feast_value_type_to_python_type` returns it: plain numbers,
    strings, bools and their lists here (a cheaper path for the common kinds); every
    other kind (timestamps, sets, maps, JSON, ...) through Feast itself.

    Plain values repeat across people (bands, flags, counts, category lists), so they are
    remembered by their stored bytes (a bounded table; lists kept as tuples and copied)."""
    if raw is None:
        return None
    known = _DECODED.get(raw)
    if known is not None:
        return list(known) if known.__class__ is tuple else known
    proto = Value.FromString(raw)
    kind = proto.WhichOneof("val")
    if kind in _PLAIN:
        value = getattr(proto, kind)
        _remember(raw, value)
        return value
    if kind in _PLAIN_LISTS:
        values = tuple(getattr(proto, kind).val)
        _remember(raw, values)
        return list(values)
    return feast_value_type_to_python_type(proto)


_DECODED: dict[bytes, Any] = {}
_NEW = object()  # not in _DECODED
_DECODED_MAX = 50_000


def _remember(raw: bytes, value: Any) -> None:
    if len(_DECODED) >= _DECODED_MAX:
        _DECODED.clear()
    _DECODED[raw] = value


_PLAIN = frozenset({"int32_val", "int64_val", "float_val", "double_val", "string_val", "bool_val"})
_PLAIN_LISTS = frozenset(
    {
        "int32_list_val",
        "int64_list_val",
        "float_list_val",
        "double_list_val",
        "string_list_val",
        "bool_list_val",
    }
)


class ItemTable:
    """Item features as in-memory columns, looked up by position in microseconds.

    Filled from Redis with the same reader as the user path (Feast's names, None where a
    value is missing), so it holds exactly what was materialised; reload it when the
    materialisation stamp (`materialized_stamp_key`) moves.
    """

    def __init__(self, frame: pd.DataFrame, stamp: str | None = None):
        self.frame = frame.reset_index(drop=True)
        # A dict, not pd.Index.get_indexer: a request looks up a handful of ids (/content
        # twice per request), where the index's fixed cost per call dominated the lookup.
        self.positions = {k: n for n, k in enumerate(self.frame["item_id"].tolist())}
        self.columns = {c: self.frame[c].to_numpy() for c in self.frame.columns}
        self.stamp = stamp

    @classmethod
    def from_online(
        cls, client: redis.Redis, project: str, views: Sequence[Any], item_ids: Sequence[str]
    ) -> ItemTable:
        stamp = client.get(materialized_stamp_key(project))
        reader = OnlineFeatures(client, project, "item_id", views)
        frame = pd.DataFrame(reader.read_many(item_ids))
        frame.insert(0, "item_id", list(item_ids))
        return cls(frame, stamp.decode() if isinstance(stamp, bytes) else None)

    def lookup(
        self, item_ids: Sequence[str], names: Iterable[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Columns (all, or those of `names` that exist) of `item_ids`; None if unknown."""
        get = self.positions.get
        pos = np.fromiter((get(i, -1) for i in item_ids), dtype=np.intp, count=len(item_ids))
        found = pos >= 0
        out = {}
        wanted = (
            self.columns
            if names is None
            else {n: self.columns[n] for n in names if n in self.columns}
        )
        for name, col in wanted.items():
            values = col[np.where(found, pos, 0)]
            if not found.all():
                values = values.astype(object)
                values[~found] = None
            out[name] = values
        return out


def stamp_now(client: redis.Redis, project: str) -> str:
    stamp = datetime.now(UTC).isoformat()
    client.set(materialized_stamp_key(project), stamp)
    return stamp


# The Redis streams whose entries name a user (JSON with "user_id"), erased entry by entry.
# A new store of per-user entries (experiment exposures, say) is added here.
USER_STREAMS = ("events", "served")


def erase_online(
    client: redis.Redis,
    project: str,
    user_ids: Sequence[str],
    partitions: int = 1,
) -> int:
    """Remove people from the online side: their Feast feature hash, every per-user key of
    the serving app (`tailwise:<project>:<kind>:<user_id>`, or `...:{<user_id>}` with the
    hash tag a Redis Cluster uses) and their entries in its event and request streams
    (the events in `partitions` stream keys, tailwise.ingest.streams.partition_streams).
    Returns the number of keys and stream entries removed."""
    from tailwise.ingest.streams import partition_streams

    removed = 0
    for user_id in user_ids:
        reader = OnlineFeatures(client, project, "user_id", [])
        removed += int(client.delete(reader.key(user_id)))  # type: ignore[arg-type]
        plain = f"tailwise:{project}:*:{_glob(user_id)}"
        for pattern in (plain, f"tailwise:{project}:*:\\{{{_glob(user_id)}\\}}"):
            for key in client.scan_iter(match=pattern, count=1000):
                removed += int(client.delete(key))  # type: ignore[arg-type]
    wanted = set(user_ids)
    names = [f"tailwise:{project}:{name}" for name in USER_STREAMS]
    names = [s for n in names for s in partition_streams(n, partitions if "events" in n else 1)]
    for stream in names:
        for entry_id, fields in client.xrange(stream):  # type: ignore[union-attr]
            for raw in fields.values():
                if (
                    isinstance(raw, bytes)
                    and b'"user_id"' in raw
                    and json.loads(raw).get("user_id") in wanted
                ):
                    removed += int(client.xdel(stream, entry_id))  # type: ignore[arg-type]
    return removed


def _glob(text: str) -> str:
    """`text` with Redis glob characters escaped."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
