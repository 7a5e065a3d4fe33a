"""The serving application, composed from a typed builder.

    build(ServingConfig, Settings) -> Application: the FastAPI ingress deployment
    (serving.ingress.Ingress), which runs features -> retrieval -> ranking -> rules in
    process, with the replica count (fixed, or autoscaling on ongoing requests), the
    replicas per node and the concurrency from the config. Ray Serve spreads replicas
    over the cluster's nodes by default.

`app_builder` is the entry for Ray Serve's own tools: `serve run serving.app:app_builder`
or a `serve deploy` config file (serving/serve_config.yaml) whose `args` are ServingConfig
fields.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application
from ray.serve.config import BackpressureConfig

from serving.config import ServingConfig
from serving.ingress import Ingress
from tailwise.settings import Settings

# Every replica process: Keras 2 for TFRS models, one thread per library (2 cores).
REPLICA_ENV = {
    "TF_USE_LEGACY_KERAS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "OMP_NUM_THREADS": "1",
}


def build(config: ServingConfig | None = None, settings: Settings | None = None) -> Application:
    config = (config or ServingConfig()).resolved()
    settings = (settings or Settings()).resolved()
    options: dict[str, Any] = {
        "max_ongoing_requests": config.max_ongoing_requests,
        "max_queued_requests": config.max_queued_requests,
        "backpressure_config": BackpressureConfig(retry_after_s=config.retry_after_seconds),
        "ray_actor_options": {"num_cpus": 0, "runtime_env": {"env_vars": REPLICA_ENV}},
    }
    if config.num_replicas is not None:  # else a serve config may autoscale
        options["num_replicas"] = config.num_replicas
    if config.autoscaling is not None:
        options["autoscaling_config"] = config.autoscaling.model_dump()
    if config.max_replicas_per_node is not None:
        options["max_replicas_per_node"] = config.max_replicas_per_node
    plain = settings.model_dump(mode="json", exclude={"hmac_key", "hmac_key_file"})
    deployment: Any = Ingress  # a Ray Serve Deployment (the decorator hides the type)
    return deployment.options(**options).bind(config.model_dump(mode="json"), plain)


def app_builder(args: dict[str, Any]) -> Application:
    """`serve run serving.app:app_builder key=value ...` / serve config `args:`."""
    return build(ServingConfig.model_validate(args or {}))
