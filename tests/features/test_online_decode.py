"""The request path's Redis reads: Feast's keys, redis-py's packing, and ValueProto decoding
that returns what Feast's own conversion returns."""

from __future__ import annotations

from typing import Any

import pytest
from feast import Entity, FeatureView, Field, FileSource
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import (
    BoolList,
    DoubleList,
    FloatList,
    Int32List,
    Int64List,
    StringList,
    Value,
)
from feast.type_map import feast_value_type_to_python_type
from feast.types import String

from tailwise.features.online import OnlineFeatures, _decode_value

VALUES = [
    Value(int32_val=-3),
    Value(int64_val=2**40),
    Value(float_val=0.25),
    Value(double_val=float("nan")),
    Value(string_val=""),
    Value(string_val="Electronics/Phones"),
    Value(bool_val=False),
    Value(int32_list_val=Int32List(val=[1, 2])),
    Value(int64_list_val=Int64List(val=[])),
    Value(float_list_val=FloatList(val=[0.5, 0.25])),
    Value(double_list_val=DoubleList(val=[0.1, 0.2, 0.7])),
    Value(string_list_val=StringList(val=["i1", "i2"])),
    Value(bool_list_val=BoolList(val=[True, False])),
    Value(unix_timestamp_val=1_700_000_000),  # through Feast: a datetime
    Value(json_val='{"a": 1}'),  # through Feast: parsed
    Value(),  # no value set
]


def _same(a: Any, b: Any) -> bool:
    return a == b or (a != a and b != b)  # NaN equals NaN here


@pytest.mark.parametrize("value", VALUES, ids=lambda v: v.WhichOneof("val") or "unset")
def test_decode_value_equals_feast(value: Value) -> None:
    raw = value.SerializeToString()
    want = feast_value_type_to_python_type(value)
    for _ in range(2):  # decoded, then remembered by its bytes
        got = _decode_value(raw)
        assert type(got) is type(want)
        assert _same(got, want)


def test_remembered_lists_are_fresh_copies() -> None:
    raw = Value(string_list_val=StringList(val=["i1", "i2"])).SerializeToString()
    first = _decode_value(raw)
    first.append("changed by the caller")
    assert _decode_value(raw) == ["i1", "i2"]


def test_absent_field_is_none() -> None:
    assert _decode_value(None) is None


def _features(names: list[str]) -> OnlineFeatures:
    """OnlineFeatures over one view with string features `names` (no Redis needed)."""
    user = Entity(name="user", join_keys=["user_id"])
    source = FileSource(path="unused.parquet", timestamp_field="event_timestamp")
    view = FeatureView(
        name="profile",
        entities=[user],
        schema=[Field(name=n, dtype=String) for n in names],
        source=source,
    )
    return OnlineFeatures(None, "tw_decode", "user_id", [view])  # type: ignore[arg-type]


@pytest.mark.parametrize("user_id", ["u1", "", "Zoë-ünï", "x" * 300])
def test_key_is_feasts(user_id: str) -> None:
    proto = EntityKey(join_keys=["user_id"], entity_values=[Value(string_val=user_id)])
    want = serialize_entity_key(proto, entity_key_serialization_version=3) + b"tw_decode"
    assert _features(["a"]).key(user_id) == want


def test_queued_read_is_one_hmget_of_every_field() -> None:
    features = _features(["a", "b", "c"])

    class Pipe:
        def __init__(self) -> None:
            self.calls: list[tuple[str, object, object]] = []

        def hmget(self, key: object, fields: object) -> None:
            self.calls.append(("hmget", key, fields))

    pipe = Pipe()
    features.queue_read(pipe, "u1")
    assert pipe.calls == [("hmget", features.key("u1"), features._fields)]
    assert len(features._fields) == 4  # three features, then the view's _ts field


def test_decoded_row_equals_feast() -> None:
    names = [f"f{i}" for i in range(len(VALUES))]
    features = _features(names)
    raw: list[bytes | None] = [v.SerializeToString() for v in VALUES]
    raw.insert(len(names), b"ts")  # the view's _ts field follows its features
    raw[3] = None  # absent
    for _ in range(2):  # decoded, then remembered by their bytes
        row = features.decode(raw)
        assert list(row) == names
        for i, name in enumerate(names):
            want = None if i == 3 else feast_value_type_to_python_type(VALUES[i])
            assert type(row[name]) is type(want), name
            assert _same(row[name], want), name
    row["f11"].append("changed by the caller")
    assert features.decode(raw)["f11"] == ["i1", "i2"]
