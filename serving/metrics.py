"""Prometheus metrics of one serving replica, exposed at GET /metrics.

prometheus_client's own metric types in a registry per replica (not the process-global
one), rendered by `generate_latest`. Feast sets PROMETHEUS_MULTIPROC_DIR when it is imported
before prometheus_client; values are then kept per process and metric name, so one
ServingMetrics per process (a replica) is what these counts assume. With several replicas each answers for itself; scrape every replica or read Ray
Serve's own aggregated metrics (see the README's scaling section).
"""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# The request path's stages take fractions of a millisecond to milliseconds.
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._declare_requests(self.registry)
        self._declare_answers(self.registry)
        self._declare_replica(self.registry)
        self._declare_content(self.registry)
        _GC_WATCHERS.add(self)
        for reason in ("degraded", "model_error"):  # shown at 0 before the first one
            self.known_cold_start.labels(reason=reason)
        self._cache = {
            True: self.cache.labels(outcome="hit"),
            False: self.cache.labels(outcome="miss"),
        }

    def _declare_requests(self, r: CollectorRegistry) -> None:
        self.requests = Counter(
            "tailwise_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "tailwise_request_seconds",
            "Handler latency by route",
            ["route"],
            buckets=BUCKETS,
            registry=r,
        )
        self.stages = Histogram(
            "tailwise_stage_seconds",
            "Recommendation graph latency by stage (features, retrieval, ranking, rules, total)",
            ["stage"],
            buckets=BUCKETS,
            registry=r,
        )

        self.shed = Counter(
            "tailwise_shed_requests",
            "Requests refused with 503 because max_in_flight were in flight, by route",
            ["route"],
            registry=r,
        )
        self.disconnects = Counter(
            "tailwise_client_disconnects",
            "Requests whose client went away before the answer (not errors), by route",
            ["route"],
            registry=r,
        )
        self.in_flight = Gauge(
            "tailwise_in_flight_requests", "Requests the replica is working on", registry=r
        )

    def _declare_answers(self, r: CollectorRegistry) -> None:
        self.cache = Counter(
            "tailwise_cache", "Recommendation cache lookups by outcome", ["outcome"], registry=r
        )
        self.degraded = Counter(
            "tailwise_degraded_responses",
            "Responses served from the in-memory fallback",
            registry=r,
        )
        self.cold_start = Counter(
            "tailwise_cold_start_responses",
            "Responses for users the model does not know",
            registry=r,
        )
        self.known_cold_start = Counter(
            "tailwise_known_user_cold_start_responses",
            "Cold-start lists served to users the platform knows (should stay 0), by reason"
            " (degraded: Redis down and no earlier answer; model_error: the model path failed)",
            ["reason"],
            registry=r,
        )
        self.known_without_features = Counter(
            "tailwise_known_user_without_features_responses",
            "Model answers for known users (history or a learned id) without any online"
            " feature: materialisation is missing or stale for them",
            registry=r,
        )
        self.tower_fallback = Counter(
            "tailwise_query_tower_fallback_responses",
            "Model answers whose query vector came from the SavedModel itself rather than"
            " the serving tower (see the log)",
            registry=r,
        )

    def _declare_replica(self, r: CollectorRegistry) -> None:
        self.events = Counter(
            "tailwise_events",
            "Events by outcome (accepted, spilled, rejected)",
            ["outcome"],
            registry=r,
        )
        self.model = Gauge(
            "tailwise_model_info",
            "The model version being served (value 1)",
            ["version"],
            registry=r,
        )
        self.reloads = Counter("tailwise_model_reloads", "Model version switches", registry=r)
        self.gc_pause = Histogram(
            "tailwise_gc_pause_seconds",
            "Python garbage-collection pauses of the process, generations 1 and 2 (the"
            " request path waits them out)",
            ["generation"],
            buckets=BUCKETS,
            registry=r,
        )

    def _declare_content(self, r: CollectorRegistry) -> None:
        self.content = Counter(
            "tailwise_content_responses",
            "/content answers by slot and outcome (template: the chosen one rendered;"
            " fallback: the slot's fallback did)",
            ["slot", "outcome"],
            registry=r,
        )
        self.content_errors = Counter(
            "tailwise_content_errors",
            "Template failures answered with the fallback, by slot, template and kind"
            " (missing_data, missing_variable, template_error)",
            ["slot", "template", "kind"],
            registry=r,
        )

    def observe_stages(self, stages: dict[str, float]) -> None:
        for stage, seconds in stages.items():
            self.stages.labels(stage=stage).observe(seconds)

    def answered(self, known_cold_start: str | None, without_features: bool, tower: bool) -> None:
        """What a recommendation answer says about known users and the query tower."""
        if known_cold_start is not None:
            self.known_cold_start.labels(reason=known_cold_start).inc()
        if without_features:
            self.known_without_features.inc()
        if tower:
            self.tower_fallback.inc()

    def cache_outcome(self, hit: bool) -> None:
        self._cache[hit].inc()

    def count(self, route: str, status: int, seconds: float) -> None:
        """One answered request: the counter by route and status, the latency by route."""
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def set_model(self, version: str) -> None:
        self.model.clear()
        self.model.labels(version=version).set(1)

    def watch_streams(self, client: Any, streams: dict[str, str]) -> None:
        """Show the streams' length, pending entries and consumer lag (read from Redis at
        each scrape; nothing is shown while Redis does not answer)."""
        self.registry.register(_StreamCollector(client, streams))

    def render(self) -> bytes:
        """The metrics text (reads Redis for the streams: call it off the event loop)."""
        return generate_latest(self.registry)


class _StreamCollector(Collector):
    def __init__(self, client: Any, streams: dict[str, str]) -> None:
        self.client, self.streams = client, streams

    def collect(self) -> Iterator[GaugeMetricFamily]:
        import redis

        from tailwise.ingest.streams import stream_state

        length = GaugeMetricFamily(
            "tailwise_stream_entries", "Entries in a Redis stream", labels=["stream"]
        )
        pending = GaugeMetricFamily(
            "tailwise_stream_pending",
            "Entries the offline consumer read but has not committed yet",
            labels=["stream"],
        )
        lag = GaugeMetricFamily(
            "tailwise_consumer_lag",
            "Entries the offline consumer has not read yet (tailwise events consume)",
            labels=["stream"],
        )
        try:
            for label, stream in self.streams.items():
                state = stream_state(self.client, stream)
                length.add_metric([label], state.length)
                pending.add_metric([label], state.pending)
                if state.lag is not None:
                    lag.add_metric([label], state.lag)
        except redis.RedisError:
            return
        yield from (length, pending, lag)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


# Every live ServingMetrics gets the process's collection pauses; one callback for all.
_GC_WATCHERS: weakref.WeakSet[ServingMetrics] = weakref.WeakSet()
_GC_STARTED = [0.0]


def _gc_pause(phase: str, info: dict[str, Any]) -> None:
    generation = info["generation"]
    if generation == 0:  # every few hundred allocations: not worth a clock read
        return
    if phase == "start":
        _GC_STARTED[0] = time.perf_counter()
        return
    seconds = time.perf_counter() - _GC_STARTED[0]
    for metrics in list(_GC_WATCHERS):
        metrics.gc_pause.labels(generation=str(generation)).observe(seconds)


gc.callbacks.append(_gc_pause)
