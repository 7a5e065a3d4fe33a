"""`tailwise content lint | preview | push | deliver` on a stand-in graph and a loopback
receiver: exit codes, the preview file, blocks per segment and per user, the outbox."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from serving import content_commands
from tailwise.ports import free_port
from tests.content.receiver import Receiver
from tests.serving.content_support import ROOT, Graph

SECRET = "whsec_" + base64.b64encode(b"a test secret of 32 bytes long!!").decode()
runner = CliRunner()


@pytest.fixture
def content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of content/ whose outbox is in tmp_path, a stand-in graph, the secret set."""
    folder = tmp_path / "content"
    shutil.copytree(ROOT / "content", folder)
    manifest = yaml.safe_load((folder / "slots.yaml").read_text())
    manifest["push"].update(
        outbox=str(tmp_path / "outbox.sqlite3"), attempts=2, backoff_seconds=0.01
    )
    (folder / "slots.yaml").write_text(yaml.safe_dump(manifest))
    monkeypatch.setattr(content_commands, "open_graph", lambda *a: Graph())
    monkeypatch.setenv("TAILWISE_CONTENT_WEBHOOK_SECRET", SECRET)
    return folder


def run(*args: Any) -> Any:
    return runner.invoke(content_commands.app, [str(a) for a in args])


def test_lint_passes_clean_templates_and_fails_on_unknown_variables(content: Path) -> None:
    assert run("lint", "--content", content).exit_code == 0
    (content / "email_block" / "default.mustache").write_text("{{#items}}{{titel}}{{/items}}")
    result = run("lint", "--content", content)
    assert result.exit_code == 3
    assert "email_block/default (email_block/default.mustache): {{titel}}" in result.output


def test_a_bad_manifest_or_slot_is_one_clear_line(content: Path, tmp_path: Path) -> None:
    missing = run("lint", "--content", tmp_path / "nowhere")
    assert missing.exit_code == 3 and "does not exist" in missing.output
    unknown = run("preview", "--slot", "hero", "--user", "u1", "--content", content)
    assert unknown.exit_code == 3 and "--slot: unknown slot 'hero'" in unknown.output


def test_preview_writes_every_variant_for_the_user(content: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.html"
    result = run(
        "preview", "--slot", "home_hero", "--user", "u1", "--out", out, "--content", content
    )
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.count('<section class="variant') == 5
    assert 'class="variant chosen" id="variant-frequent_buyers"' in page
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_push_per_segment_receiver_down_then_deliver(content: Path, tmp_path: Path) -> None:
    port, report = free_port(), tmp_path / "report.json"
    url = f"http://127.0.0.1:{port}/hooks"
    args = [
        "push",
        "--slot",
        "home_hero",
        "--url",
        url,
        "--segments",
        "lapsed, new,frequent buyers",
    ]
    down = run(*args, "--content", content, "--report", report)
    assert down.exit_code == 5 and "content deliver" in down.output
    assert json.loads(report.read_text())["outbox"] == {"pending": 3}

    receiver = Receiver(port, SECRET).start()
    try:
        back = run("deliver", "--content", content, "--report", report)
        assert back.exit_code == 0, back.output
        assert json.loads(report.read_text())["outbox"] == {"delivered": 3}
        blocks = {p["target"]: p for p in receiver.processed.values()}
        assert sorted(blocks) == ["frequent buyers", "lapsed", "new"]
        assert blocks["lapsed"]["template"] == "lapsed" and blocks["new"]["template"] == "default"
        assert [i["item_id"] for i in blocks["new"]["items"]] == ["i1", "i0"]  # popular items
        assert receiver.verified == 3 and sorted(receiver.seen.values()) == [1, 1, 1]
        again = run(*args, "--content", content, "--report", report)
        assert again.exit_code == 0 and receiver.requests == 3  # nothing new to send
    finally:
        receiver.stop()


def test_push_per_user_for_email(content: Path, tmp_path: Path) -> None:
    port = free_port()
    receiver = Receiver(port, SECRET).start()
    users = tmp_path / "users.txt"
    users.write_text("u1\nu2\n")
    base = ["push", "--slot", "email_block", "--url", receiver.url, "--content", content]
    try:
        needs_users = run(*base)
        assert needs_users.exit_code == 3 and "--users" in needs_users.output
        result = run(*base, "--users", users, "--report", tmp_path / "r.json")
        assert result.exit_code == 0, result.output
        assert sorted(p["target"] for p in receiver.processed.values()) == ["u1", "u2"]
    finally:
        receiver.stop()


def test_push_without_a_secret_or_url_is_a_clear_error(
    content: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_url = run("push", "--slot", "home_hero", "--segments", "x", "--content", content)
    assert no_url.exit_code == 3 and "no webhook URL" in no_url.output
    monkeypatch.delenv("TAILWISE_CONTENT_WEBHOOK_SECRET")
    args = ["push", "--slot", "home_hero", "--url", "http://127.0.0.1:9/x", "--content", content]
    no_secret = run(*args)
    assert (
        no_secret.exit_code == 3
        and "TAILWISE_CONTENT_WEBHOOK_SECRET is not set" in no_secret.output
    )


def test_push_on_segment_change_sends_one_block_per_changed_user(
    content: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    features = tmp_path / "features"
    features.mkdir()
    pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2"],
            "event_timestamp": pd.to_datetime(
                ["2026-11-29", "2026-12-02", "2026-11-29", "2026-12-02"], utc=True
            ),
            "segment_name": ["browsers", "frequent buyers", "lapsed", "lapsed"],
        }
    ).to_parquet(features / "user_daily.parquet")
    monkeypatch.setenv("TAILWISE_FEATURES_DIR", str(features))
    receiver = Receiver(free_port(), SECRET).start()
    args = ["push", "--slot", "email_block", "--url", receiver.url, "--content", content]
    try:
        result = run(
            *args, "--segment-changed-since", "2026-11-30", "--report", tmp_path / "r.json"
        )
        assert result.exit_code == 0, result.output
        (block,) = receiver.processed.values()
        assert block["target"] == "u1"
        assert block["segment_change"] == {"from": "browsers", "to": "frequent buyers"}
        missing = run(
            *args, "--segment-changed-since", "2026-11-30", "--report", tmp_path / "r.json"
        )
        assert missing.exit_code == 0 and receiver.requests == 1  # the same change: no resend
    finally:
        receiver.stop()
