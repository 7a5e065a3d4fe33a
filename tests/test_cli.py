"""The CLI: help on every command, the demo path, and exit codes that mean something."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailwise.cli import app
from tailwise.console import EXIT_BAD_INPUT, EXIT_PRIVACY

runner = CliRunner()
COMMANDS = [
    "generate",
    "ingest",
    "forget",
    "contract",
    "report",
    "redis",
    "features",
    "features build",
    "features apply",
    "features materialize",
    "features get",
]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("TAILWISE_HMAC_KEY", "TAILWISE_HMAC_KEY_FILE", "TAILWISE_DEMO"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TAILWISE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_generate_ingest_report_forget(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(
        app, ["generate", "--out", "raw", "--users", "300", "--items", "80", "--days", "10"]
    )
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("TAILWISE_DEMO", "1")
    result = runner.invoke(app, ["ingest", "--source", "raw", "--out", "clean"])
    assert result.exit_code == 0, result.output
    report = json.loads((env / "clean" / "quality_report.json").read_text())
    assert report["tables"]["events"]["input"] > 0
    assert "Ingestion quality report" in result.output
    assert runner.invoke(app, ["report", "--data", "clean"]).exit_code == 0
    user = (
        report and __import__("pandas").read_parquet(env / "clean" / "users.parquet")["user_id"][0]
    )
    result = runner.invoke(app, ["forget", "--user", user, "--data", "clean", "--no-online"])
    assert result.exit_code == 0 and f"erased {user}" in result.output


def test_missing_key_exit_code(env: Path) -> None:
    runner.invoke(
        app, ["generate", "--out", "raw", "--users", "50", "--items", "20", "--days", "3"]
    )
    result = runner.invoke(app, ["ingest", "--source", "raw", "--out", "clean"])
    assert result.exit_code == EXIT_PRIVACY
    assert "TAILWISE_HMAC_KEY" in result.output


def test_bad_input_exit_codes(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILWISE_HMAC_KEY", "x" * 40)
    (env / "empty").mkdir()
    result = runner.invoke(app, ["ingest", "--source", "empty", "--out", "clean"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "no users table found" in result.output
    result = runner.invoke(app, ["generate", "--out", "raw", "--users", "0"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "--users" in result.output
    (env / "params.yaml").write_text("ingest:\n  age_mni: 3\n")
    result = runner.invoke(app, ["ingest", "--source", "empty", "--out", "clean"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "ingest.age_mni" in result.output


def test_contract_prints_every_table() -> None:
    result = runner.invoke(app, ["contract"])
    assert result.exit_code == 0
    for table in ("### users", "### items", "### events", "epoch seconds"):
        assert table in result.output


def test_features_get_rejects_bad_context() -> None:
    result = runner.invoke(app, ["features", "get", "--user", "u1", "--context", "[1]"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "--context" in result.output


@pytest.mark.parametrize(
    ("option", "value"), [("--engine", "spark"), ("--workers", "0")], ids=["engine", "workers"]
)
def test_features_build_rejects_bad_engine_options(env: Path, option: str, value: str) -> None:
    result = runner.invoke(app, ["features", "build", option, value])
    assert result.exit_code == EXIT_BAD_INPUT
    assert option in result.output
