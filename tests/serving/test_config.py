"""The serve config file is one Ray Serve accepts, and its args are a valid ServingConfig."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from serving.app import app_builder
from serving.config import ServingConfig

CONFIG = Path(__file__).resolve().parents[2] / "serving" / "serve_config.yaml"


def test_serve_config_validates_and_builds_the_app() -> None:
    raw = yaml.safe_load(CONFIG.read_text())
    schema = ServeDeploySchema.model_validate(raw)
    (application,) = schema.applications
    assert application.import_path == "serving.app:app_builder"
    config = ServingConfig.model_validate(application.args)
    assert config.rules.max_per_category == 3
    built = app_builder(application.args)
    assert type(built).__name__ == "Application"


def test_unknown_config_keys_are_refused_with_their_name() -> None:
    with pytest.raises(ValueError, match="cache_ttl"):
        ServingConfig.model_validate({"cache_ttl": 5})


def test_serve_set_overrides_reach_nested_fields_and_name_bad_items() -> None:
    import typer

    from serving.commands.serve import parse_overrides
    from serving.config import ServingConfig

    fields = parse_overrides(
        {"port": 8000}, ["log_feature_sample=1", "rules.max_per_category=2", "port=8100"]
    )
    config = ServingConfig.model_validate(fields)
    assert (config.port, config.log_feature_sample, config.rules.max_per_category) == (
        8100,
        1.0,
        2,
    )
    with pytest.raises(typer.BadParameter, match="expected KEY=VALUE"):
        parse_overrides({}, ["log_feature_sample"])


def test_autoscaling_and_spread_reach_the_deployment() -> None:
    from serving.config import AutoscalingConfig

    config = ServingConfig(
        max_replicas_per_node=1,
        autoscaling=AutoscalingConfig(min_replicas=2, max_replicas=3, target_ongoing_requests=4),
    )
    deployment: Any = app_builder(config.model_dump(mode="json"))._bound_deployment
    scaling = deployment._deployment_config.autoscaling_config
    assert (scaling.min_replicas, scaling.max_replicas, scaling.target_ongoing_requests) == (
        2,
        3,
        4.0,
    )
    assert deployment._replica_config.max_replicas_per_node == 1


def test_standing_limit_follows_a_lower_max_in_flight_unless_set() -> None:
    assert ServingConfig().standing_limit == 8
    assert ServingConfig(max_in_flight=4).standing_limit == 4
    assert ServingConfig(max_in_flight=12, standing_in_flight=5).standing_limit == 5


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"num_replicas": 2, "autoscaling": {"max_replicas": 3, "target_ongoing_requests": 4}},
            "num_replicas .2. and autoscaling are exclusive",
        ),
        (
            {"autoscaling": {"min_replicas": 4, "max_replicas": 2, "target_ongoing_requests": 4}},
            r"autoscaling.min_replicas \(4\) must not exceed autoscaling.max_replicas \(2\)",
        ),
        (
            {"max_in_flight": 8, "autoscaling": {"max_replicas": 2, "target_ongoing_requests": 9}},
            r"autoscaling.target_ongoing_requests \(9\) must not exceed max_in_flight \(8\)",
        ),
        ({"autoscaling": {"max_replicas": 2}}, "target_ongoing_requests"),
        ({"autoscaling": {"max_replicas": 2, "target_ongoing_requests": 0}}, "greater than 0"),
        (
            {"max_in_flight": 4, "standing_in_flight": 6},
            r"standing_in_flight \(6\) must not exceed max_in_flight \(4\)",
        ),
        ({"max_replicas_per_node": 0}, "max_replicas_per_node"),
        ({"proxy_location": "Everywhere"}, "proxy_location"),
    ],
)
def test_bad_scaling_settings_are_refused_naming_the_field(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ServingConfig.model_validate(fields)


def test_serve_address_flag_reaches_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.commands.serve import serve

    seen: list[ServingConfig] = []
    monkeypatch.setattr("serving.server.run_until_stopped", lambda ready, c: seen.append(c))
    serve(address="ray://head:10001", settings=["autoscaling.max_replicas=3",
                  "autoscaling.target_ongoing_requests=4"])  # fmt: skip
    (config,) = seen
    assert config.ray_address == "ray://head:10001"
    assert config.autoscaling is not None and config.autoscaling.max_replicas == 3


def test_keys_from_the_environment_travel_in_the_config_only_to_a_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from serving.server import ensure_admin_key, ensure_api_key

    monkeypatch.setenv("TAILWISE_API_KEYS", "w1, w2")
    monkeypatch.setenv("TAILWISE_ADMIN_KEYS", "a1")
    local, generated = ensure_api_key(ServingConfig())
    assert (local.api_keys, generated) == ([], None)  # the local replicas read the variable
    remote = ServingConfig(ray_address="auto")
    remote, generated = ensure_api_key(remote)
    remote, admin = ensure_admin_key(remote)
    assert (remote.api_keys, remote.admin_keys, generated, admin) == (
        ["w1", "w2"],
        ["a1"],
        None,
        None,
    )
    monkeypatch.delenv("TAILWISE_API_KEYS")
    fresh, generated = ensure_api_key(ServingConfig(ray_address="auto"))
    assert generated is not None and fresh.api_keys == [generated]
