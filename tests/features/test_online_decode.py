"""The request path's ValueProto decoding returns what Feast's own conversion returns."""

from __future__ import annotations

from typing import Any

import pytest
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

from tailwise.features.online import _decode_value

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
