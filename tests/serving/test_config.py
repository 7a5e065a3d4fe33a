"""The serve config file is one Ray Serve accepts, and its args are a valid ServingConfig."""

from __future__ import annotations

from pathlib import Path

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
