"""Alerts reach a local webhook as JSON; a dead, failing or slow one only logs."""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from monitoring.alerts import alert_payload, post_alert
from monitoring.summary import Decision, RunSummary
from tests.monitoring.conftest import Receiver

NOW = datetime(2026, 11, 3, tzinfo=UTC)


def drifted_summary() -> RunSummary:
    signal = "feature drift: 4/10 features drifted (40% > 30%): f0, f1, f2, f3"
    return RunSummary(
        run_id="20261103T000000Z-1d",
        created_at=NOW,
        window="1d",
        window_start=NOW - timedelta(days=1),
        window_end=NOW,
        model_version="v1",
        decision=Decision(retrain=True, reasons=[signal], signals=[signal]),
    )


def test_the_alert_is_posted_as_json_and_logged(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    payload = alert_payload(drifted_summary(), "/reports/20261103T000000Z-1d/report.html")
    with caplog.at_level(logging.INFO, logger="monitoring.alerts"):
        assert post_alert(receiver.url, payload, timeout=5) is True
    [got] = receiver.received
    assert got["path"] == "/hooks/tailwise"
    assert got["headers"]["Content-Type"] == "application/json"
    body = got["body"]
    assert body["model_version"] == "v1" and body["retrain"] is True
    assert body["signals"] == ["feature drift: 4/10 features drifted (40% > 30%): f0, f1, f2, f3"]
    assert body["text"].startswith("Tailwise monitoring: model v1, window 1d ending 2026-11-03")
    assert body["report"].endswith("report.html")
    assert any(r.message.startswith("ALERT Tailwise monitoring") for r in caplog.records)


def test_a_dead_webhook_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    payload = alert_payload(drifted_summary(), "report.html")
    with caplog.at_level(logging.WARNING, logger="monitoring.alerts"):
        assert post_alert(f"http://127.0.0.1:{port}/secret-token", payload, timeout=2) is False
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("ALERT ") for line in lines)
    assert any("unreachable" in line and "not delivered" in line for line in lines)
    assert not any("secret-token" in line for line in lines)  # paths may carry tokens


def test_an_error_status_or_a_silent_receiver_is_not_a_delivery(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 500
    payload = alert_payload(drifted_summary(), "report.html")
    assert post_alert(receiver.url, payload) is False
    assert "answered HTTP 500" in caplog.text
    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        started = time.perf_counter()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        assert post_alert(url, payload, timeout=0.5) is False
        assert time.perf_counter() - started < 3


def test_without_a_url_the_alert_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="monitoring.alerts"):
        assert post_alert(None, {"text": "drift"}) is False
    assert caplog.messages == ["ALERT drift"]
