"""A serving replica's metrics: per-request counts and latencies under the names the README
and dashboards use; garbage-collection pauses are measured; and a model switch frees the
replaced model and freezes the new one out of the collections while serving."""

from __future__ import annotations

import gc
import uuid
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.lifecycle import settle_heap
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


def _values(metrics: ServingMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_requests_and_stages_are_counted_by_route_status_and_stage() -> None:
    metrics = ServingMetrics()
    # Names of this test's own: once Feast is imported first, prometheus_client keeps values
    # per process and metric name (PROMETHEUS_MULTIPROC_DIR), shared by every
    # ServingMetrics in a process, so routes another test counted would show here.
    rec, events = f"/recommend-{uuid.uuid4().hex}", f"/events-{uuid.uuid4().hex}"
    features, total_ = f"features-{uuid.uuid4().hex}", f"total-{uuid.uuid4().hex}"
    # On a bucket's bound, between bounds, past the last one, and zero.
    observations = [0.0005, 0.0007, 0.001, 0.0031, 3.0, 0.0, 0.02]
    for n, seconds in enumerate(observations):
        route, status = (rec, 200) if n % 3 else (events, 202)
        metrics.count(route, status, seconds)
        metrics.observe_stages({features: seconds / 2, total_: seconds})
    got = _values(metrics)
    recommend = (("route", rec),)
    assert got[("tailwise_requests_total", (*recommend, ("status", "200")))] == 4
    assert got[("tailwise_requests_total", (("route", events), ("status", "202")))] == 3
    assert got[("tailwise_request_seconds_count", recommend)] == 4
    assert got[("tailwise_request_seconds_sum", recommend)] == pytest.approx(3.0017)
    assert got[("tailwise_request_seconds_bucket", (("le", "0.001"), *recommend))] == 3
    assert got[("tailwise_request_seconds_bucket", (("le", "2.5"), *recommend))] == 3
    assert got[("tailwise_request_seconds_bucket", (("le", "+Inf"), *recommend))] == 4
    total = (("stage", total_),)
    assert got[("tailwise_stage_seconds_count", total)] == len(observations)
    assert got[("tailwise_stage_seconds_bucket", (("le", "0.0005"), ("stage", features)))] == 4


def test_full_collections_are_counted_with_their_pause() -> None:
    metrics = ServingMetrics()
    before = _count(metrics, "2")
    gc.collect()
    gc.collect()
    assert _count(metrics, "2") >= before + 2
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
    settle_heap()  # at start-up Ray Serve's freeze does the same
    assert gc.get_freeze_count() > 0
    del model  # replaced: only its own cycle holds it now
    gc.collect()
    assert gone() is not None  # frozen: collections while serving do not walk it
    settle_heap()  # after a model switch
    assert gone() is None


def test_known_users_answered_cold_or_without_features_are_counted() -> None:
    metrics = ServingMetrics()
    cold = "tailwise_known_user_cold_start_responses_total"
    before = _values(metrics)
    assert (cold, (("reason", "model_error"),)) in before  # shown before the first one
    metrics.answered("degraded", without_features=False, tower=False)
    metrics.answered(None, without_features=True, tower=True)
    metrics.answered(None, without_features=True, tower=False)
    after = _values(metrics)
    got = {key: value - before.get(key, 0.0) for key, value in after.items()}
    assert got[(cold, (("reason", "degraded"),))] == 1
    assert got[(cold, (("reason", "model_error"),))] == 0
    assert got[("tailwise_known_user_without_features_responses_total", ())] == 2
    assert got[("tailwise_query_tower_fallback_responses_total", ())] == 1
