"""A serving replica's metrics: the per-request counts render as prometheus_client would
render them; garbage-collection pauses are measured; and a model switch frees the replaced
model and freezes the new one out of the collections while serving."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from serving.ingress import _settle_heap
from serving.metrics import BUCKETS, ServingMetrics


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def _count(metrics: ServingMetrics, generation: str) -> float:
    for line in metrics.render().decode().splitlines():
        if line.startswith(f'tailwise_gc_pause_seconds_count{{generation="{generation}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _samples(text: bytes, prefix: str) -> list[str]:
    return sorted(
        line
        for line in text.decode().splitlines()
        if line.startswith(prefix) and "_created" not in line
    )


def test_per_request_counts_render_as_prometheus_client_would() -> None:
    registry = CollectorRegistry()
    requests = Counter("tailwise_requests", "x", ["route", "status"], registry=registry)
    latency = Histogram(
        "tailwise_request_seconds", "x", ["route"], buckets=BUCKETS, registry=registry
    )
    stage = Histogram("tailwise_stage_seconds", "x", ["stage"], buckets=BUCKETS, registry=registry)
    metrics = ServingMetrics()
    # On a bucket's bound, between bounds, past the last one, and zero.
    observations = [0.0005, 0.0007, 0.001, 0.0031, 3.0, 0.0, 0.02]
    for n, seconds in enumerate(observations):
        route, status = ("/recommend", 200) if n % 3 else ("/events", 202)
        metrics.count(route, status, seconds)
        requests.labels(route=route, status=str(status)).inc()
        latency.labels(route=route).observe(seconds)
        metrics.observe_stages({"features": seconds / 2, "total": seconds})
        stage.labels(stage="features").observe(seconds / 2)
        stage.labels(stage="total").observe(seconds)
    for prefix in ("tailwise_requests", "tailwise_request_seconds", "tailwise_stage_seconds"):
        got, want = _samples(metrics.render(), prefix), _samples(generate_latest(registry), prefix)
        assert got == want and got, prefix


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


def test_known_users_answered_cold_or_without_features_are_counted() -> None:
    metrics = ServingMetrics()
    text = metrics.render().decode()
    assert 'tailwise_known_user_cold_start_responses_total{reason="model_error"} 0.0' in text
    metrics.answered("degraded", without_features=False, tower=False)
    metrics.answered(None, without_features=True, tower=True)
    metrics.answered(None, without_features=True, tower=False)
    text = metrics.render().decode()
    assert 'tailwise_known_user_cold_start_responses_total{reason="degraded"} 1.0' in text
    assert "tailwise_known_user_without_features_responses_total 2.0" in text
    assert "tailwise_query_tower_fallback_responses_total 1.0" in text
