"""Experiments on the request path: assign, apply the variant's change, log the exposure.

    experiments/*.yaml (tailwise.experiments.definitions), checked at replica start
    request --assign (salted hashes of the user id; the bandit's weights when stored)-->
        one assignment per layer the user is in; the response names the one whose
        change is applied (a holdout in any layer, else the first layer's by name), and
        every one is logged
      holdout variant    --> the popular list for the context (no personalisation)
      treatment variant  --> the graph of its model version and rules: a version's bundle
                             loaded once per replica at start, a rules override built on
                             the served bundle when first asked for, both cached
    response + {experiment, variant, propensity}
    after the response --> one entry per assignment in the `exposures` stream (bounded),
        read by `tailwise events consume` into the exposures table

The bandit's weights come from Redis (tailwise.experiments.posteriors), read by the
replica's background thread every `allocation_refresh_seconds`, never per request.
A variant's candidate-source mix restricts the sources a union version unions for its
users (serving.union; checked against the version's sources at start, `check_sources`);
a version that ranks the query tower's candidates has none to mix, so there it is logged
and not applied. Content templates are content's to apply.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
from prometheus_client import Counter
from pydantic import ValidationError

from serving.config import RulesConfig, ServingConfig
from serving.graph import Answer, RecommendGraph, Request
from serving.keys import Keys
from serving.response_cache import ResponseCache
from tailwise.experiments.assignment import Assignment, assign
from tailwise.experiments.definitions import (
    Definitions,
    Experiment,
    ExperimentsParams,
    Variant,
    load_definitions,
    load_experiments_params,
)
from tailwise.experiments.posteriors import PosteriorStore

logger = logging.getLogger("tailwise.serving")
EXPOSURES_MAXLEN = 1_000_000
RULE_GRAPHS = 32  # rules-override graphs kept per replica (a reload makes new ones)
GraphLoader = Callable[[str], RecommendGraph]  # a model version's graph (Replica.load)


@dataclass(frozen=True)
class Routed:
    """The assignments of one request and the variant whose change is applied."""

    assignments: list[Assignment]
    variant: Variant
    applied: Assignment  # the assignment whose variant's change the answer has

    @property
    def fields(self) -> dict[str, Any]:
        return {
            "experiment": self.applied.experiment,
            "variant": self.applied.variant,
            "propensity": self.applied.propensity,
        }


def experiments_params(config: ServingConfig) -> ExperimentsParams:
    """params.yaml `experiments:`; the folder relative to the params file."""
    params = load_experiments_params(config.params_path)
    folder = params.dir if params.dir.is_absolute() else config.params_path.parent / params.dir
    return params.model_copy(update={"dir": folder})


def check_definitions(config: ServingConfig) -> Definitions:
    """The definitions of the configured folder, with model versions and rules checked
    (`tailwise experiments validate`, and every replica at start)."""
    params = experiments_params(config)

    def rules_ok(_: Experiment, variant: Variant) -> None:
        rules_for(config.rules, variant)

    return load_definitions(params.dir, config.models_dir, rules_ok)


def rules_for(base: RulesConfig, variant: Variant) -> RulesConfig | None:
    """The served rules with the variant's overrides (None: no override); ValueError
    naming the bad rule field."""
    if not variant.rules:
        return None
    try:
        return RulesConfig.model_validate({**base.model_dump(), **variant.rules})
    except ValidationError as exc:
        raise ValueError(
            "; ".join(
                f"rules.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
        ) from None


class ExperimentRouter:
    """Assignment, variant graphs and exposure logging for one replica."""

    def __init__(
        self,
        definitions: Definitions,
        params: ExperimentsParams,
        keys: Keys,
        config: ServingConfig,
        load: GraphLoader,
        store: PosteriorStore | None,
        metrics_registry: Any = None,
    ) -> None:
        self.definitions, self.params, self.keys, self.config = definitions, params, keys, config
        self.load, self.store = load, store
        self.weights: dict[str, dict[str, float]] = {}
        self._read_at = float("-inf")
        self._versions: dict[str, RecommendGraph] = {}
        self._rules: OrderedDict[tuple[str, str, str], RecommendGraph] = OrderedDict()
        self.exposures = Counter(
            "tailwise_experiment_exposures",
            "Exposures logged by experiment and variant",
            ["experiment", "variant"],
            registry=metrics_registry,
        )

    def check_sources(self, served: RecommendGraph) -> None:
        """Every variant's candidate-source mix against the sources of the version it runs
        on: SourceMixError naming the field when a union version lacks one; a warning
        when the version ranks two-tower candidates (no sources to mix: not applied)."""
        for e in self.definitions.experiments:
            for n, v in enumerate(e.variants):
                if not v.sources:
                    continue
                graph = self._versions.get(v.model_version or "", served)
                union = getattr(graph.pipeline, "union", None)
                if union is not None:
                    union.mix(v.sources, f"experiment {e.name}: variants[{n}].sources")
                    continue
                logger.warning(
                    "experiment %s variant %s: candidate sources %s are not applied: version "
                    "%s ranks the query tower's candidates (training.ranker.candidates: "
                    "two_tower), it has no sources to mix",
                    e.name,
                    v.name,
                    v.sources,
                    graph.bundle.version,
                )

    def load_versions(self) -> None:
        """Load every variant's model version once (before traffic)."""
        for e in self.definitions.experiments:
            for v in e.variants:
                if v.model_version and v.model_version not in self._versions:
                    self._versions[v.model_version] = self.load(v.model_version)

    def refresh(self, now: float) -> None:
        """Read the bandits' weights when `allocation_refresh_seconds` have passed."""
        if self.store is None or now - self._read_at < self.params.allocation_refresh_seconds:
            return
        self._read_at = now
        bandits = [e.name for e in self.definitions.experiments if e.bandit is not None]
        stored = self.store.read_allocations(bandits)
        self.weights = {
            name: w
            for name, w in stored.items()
            if set(w) == set(self.definitions.by_name(name).weights)
        }

    def route(self, user_id: str, now: datetime) -> Routed | None:
        found = assign(self.definitions.experiments, user_id, now, self.weights)
        if not found:
            return None
        found.sort(key=lambda a: self.definitions.by_name(a.experiment).layer)
        variants = [self.definitions.by_name(a.experiment).variant(a.variant) for a in found]
        # A holdout in any layer wins (no personalisation at all); else the first layer's.
        pick = next((n for n, v in enumerate(variants) if v.type == "holdout"), 0)
        return Routed(found, variants[pick], found[pick])

    def graph_for(self, variant: Variant, served: RecommendGraph) -> RecommendGraph:
        graph = self._versions.get(variant.model_version or "", served)
        rules = rules_for(self.config.rules, variant)
        if rules is None:
            return graph
        key = (graph.bundle.version, str(id(graph)), json.dumps(variant.rules, sort_keys=True))
        found = self._rules.get(key)
        if found is None:
            found = self._rules[key] = self._with_rules(graph, rules, key[2])
            if len(self._rules) > RULE_GRAPHS:
                self._rules.popitem(last=False)
        return found

    async def recommend(
        self, served: RecommendGraph, req: Request, log_features: bool
    ) -> tuple[Answer, RecommendGraph | None, Routed | None]:
        """The answer, the graph to record it with (None: not recorded) and the routing."""
        routed = self.route(req.user_id, req.timestamp or datetime.now(UTC))
        if routed is None:
            return await served.recommend(req, log_features), served, None
        if routed.variant.type == "holdout":
            started = time.perf_counter()
            answer = served.pipeline.cold_start(req, set(req.exclude))
            answer.stages["total"] = time.perf_counter() - started
            recorder = None  # not cached: the user's personal answers stay theirs
        else:
            recorder = self.graph_for(routed.variant, served)
            if routed.variant.sources and getattr(recorder.pipeline, "union", None) is not None:
                req = replace(req, sources=tuple(routed.variant.sources))
            answer = await recorder.recommend(req, log_features)
        answer.body.update(routed.fields)
        return answer, recorder, routed

    async def log(self, client: redis.asyncio.Redis, req: Request, routed: Routed) -> None:
        """One exposures-stream entry per assignment (after the response is out), stamped
        with the request's context time when it has one (the clock its events carry, so
        attribution's window and the report's days agree with them), else now."""
        at = _utc(req.timestamp).isoformat() if req.timestamp else datetime.now(UTC).isoformat()
        pipe = client.pipeline(transaction=False)
        for a in routed.assignments:
            entry = {
                "request_id": req.request_id,
                "user_id": req.user_id,
                "experiment": a.experiment,
                "variant": a.variant,
                "propensity": a.propensity,
                "slot": getattr(req, "slot", None),
                "timestamp": at,
            }
            pipe.xadd(
                self.keys.exposures,
                {"x": json.dumps(entry)},
                maxlen=EXPOSURES_MAXLEN,
                approximate=True,
            )
            self.exposures.labels(experiment=a.experiment, variant=a.variant).inc()
        try:
            await pipe.execute()
        except redis.RedisError as exc:
            logger.warning("exposure log write failed: %s", exc)

    def _with_rules(self, graph: RecommendGraph, rules: RulesConfig, tag: str) -> RecommendGraph:
        config = self.config.model_copy(update={"rules": rules})
        made = RecommendGraph(graph.bundle, graph.reader, graph.client, self.keys, config)
        # Its own cache entries: the same user and request under other rules differ.
        digest = hashlib.sha1(tag.encode()).hexdigest()[:8]
        made.cache = ResponseCache(
            self.keys, f"{graph.bundle.version}+{digest}", config.cache_ttl_seconds
        )
        return made


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def build_router(
    config: ServingConfig,
    keys: Keys,
    client: redis.Redis,
    load: GraphLoader,
    metrics_registry: Any = None,
    served: RecommendGraph | None = None,
) -> ExperimentRouter | None:
    """The replica's router, or None when no experiment is defined; the variants' source
    mixes checked against `served` (and their own versions) when given."""
    params = experiments_params(config)
    if not Path(params.dir).is_dir():
        return None
    definitions = check_definitions(config)
    if not definitions.experiments:
        return None
    store = PosteriorStore(client, keys.prefix)
    router = ExperimentRouter(definitions, params, keys, config, load, store, metrics_registry)
    router.load_versions()
    if served is not None:
        router.check_sources(served)
    return router
