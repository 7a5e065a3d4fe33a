"""Garbage collection in a serving replica: pauses are measured, and a model switch frees the
replaced model and freezes the new one out of the collections while serving."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from serving.ingress import _settle_heap
from serving.metrics import ServingMetrics


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def _count(metrics: ServingMetrics, generation: str) -> float:
    for line in metrics.render().decode().splitlines():
        if line.startswith(f'tailwise_gc_pause_seconds_count{{generation="{generation}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_full_collections_are_counted_with_their_pause() -> None:
    metrics = ServingMetrics()
    before = _count(metrics, "2")
    gc.collect()
    gc.collect()
    assert _count(metrics, "2") == before + 2
    sums = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.render().decode().splitlines()
        if line.startswith('tailwise_gc_pause_seconds_sum{generation="2"}')
    ]
    assert sums and sums[0] > 0


class _Model:
    """Stands for a loaded model: objects in a reference cycle, as TensorFlow's are."""

    def __init__(self) -> None:
        self.me = self


def test_settled_objects_leave_collections_until_the_next_settle(unfrozen: None) -> None:
    model = _Model()
    gone = weakref.ref(model)
    _settle_heap()  # at start-up Ray Serve's freeze does the same
    assert gc.get_freeze_count() > 0
    del model  # replaced: only its own cycle holds it now
    gc.collect()
    assert gone() is not None  # frozen: collections while serving do not walk it
    _settle_heap()  # after a model switch
    assert gone() is None
