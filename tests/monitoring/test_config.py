"""The monitoring: section of params.yaml, typed; bad values are errors naming the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitoring.config import (
    WEBHOOK_ENV,
    MonitoringConfigError,
    MonitoringParams,
    load_monitoring_params,
    parse_duration,
)
from tailwise.params import ParamsError
from tests.feast_project import ROOT


def test_the_repository_params_parse() -> None:
    params = load_monitoring_params(ROOT / "params.yaml", env={})
    assert params.window_length == timedelta(days=1)
    assert params.retrain.kpi == "ctr@10" and params.alert_webhook is None


def test_the_environment_webhook_wins_and_options_override(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("monitoring:\n  alert_webhook: http://a.example/x\n  window: 1d\n")
    params = load_monitoring_params(path, env={WEBHOOK_ENV: "http://127.0.0.1:9/y"}, window="6h")
    assert params.alert_webhook == "http://127.0.0.1:9/y"
    assert params.window_length == timedelta(hours=6)
    assert load_monitoring_params(tmp_path / "absent.yaml", env={}) == MonitoringParams()


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("  retrain:\n    kpi: ctr10\n", "monitoring.retrain.kpi"),
        ("  window: tomorrow\n", "monitoring.window"),
        ("  drift_share: 0.3\n", "monitoring.drift_share: Extra inputs are not permitted"),
        ("  alert_webhook: ftp://x\n", "monitoring.alert_webhook"),
        ("  retrain:\n    drift_share: 1.5\n", "monitoring.retrain.drift_share"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, yaml: str, message: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("monitoring:\n" + yaml)
    with pytest.raises(ParamsError, match=message.replace(".", r"\.")):
        load_monitoring_params(path, env={})


def test_durations() -> None:
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("2w") == timedelta(days=14)
    with pytest.raises(MonitoringConfigError, match="--window: expected a positive duration"):
        parse_duration("0d", "--window")
