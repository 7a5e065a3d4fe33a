"""`tailwise content preview` and `push` on a trained version, its features in Redis: every
variant for a real user, and one signed block per segment delivered to a local receiver."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from serving import content_commands
from tailwise.ports import free_port
from tests.content.receiver import Receiver
from tests.feast_project import ROOT
from tests.serving.conftest import ServedWorld

pytestmark = pytest.mark.slow
SECRET = "whsec_" + base64.b64encode(b"an e2e test secret, 32 bytes ok!").decode()


@pytest.fixture
def world_env(served_world: ServedWorld, monkeypatch: pytest.MonkeyPatch) -> ServedWorld:
    world = served_world
    for name, value in {
        "TF_USE_LEGACY_KERAS": "1",
        "REDIS_URL": world.redis.url,
        "TAILWISE_FEATURE_REPO": str(ROOT / "feature_repo"),
        "TAILWISE_FEATURES_DIR": str(world.features),
        "TAILWISE_FEAST_PROJECT": str(world.settings.feast_project),
        "TAILWISE_FEAST_REGISTRY": str(world.root / "registry.db"),
        "TAILWISE_CONTENT_WEBHOOK_SECRET": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    return world


def test_preview_and_push_on_the_real_graph(world_env: ServedWorld, tmp_path: Path) -> None:
    world = world_env
    runner = CliRunner()
    common = ["--models", str(world.models), "--data", str(world.clean)]
    user = str(pd.read_parquet(world.features / "user_profile.parquet")["user_id"].iloc[0])
    page = tmp_path / "preview.html"
    shown = runner.invoke(
        content_commands.app,
        ["preview", "--slot", "home_hero", "--user", user, "--out", str(page), *common],
    )
    assert shown.exit_code == 0, shown.output
    html = page.read_text()
    assert html.count('<section class="variant') == 5 and html.count("variant chosen") == 1
    assert 'data-item="' in html

    # A manifest copy whose outbox is in tmp_path; segments from the features build.
    content = tmp_path / "content"
    content.mkdir()
    for path in (ROOT / "content").rglob("*"):
        if path.is_file():
            (content / path.relative_to(ROOT / "content")).parent.mkdir(exist_ok=True)
            (content / path.relative_to(ROOT / "content")).write_bytes(path.read_bytes())
    manifest = (content / "slots.yaml").read_text()
    outbox = tmp_path / "outbox.sqlite3"
    (content / "slots.yaml").write_text(
        manifest.replace("outbox: .tailwise/content/outbox.sqlite3", f"outbox: {outbox}")
    )
    names = json.loads((world.features / "segments_model.json").read_text())["names"]
    receiver = Receiver(free_port(), SECRET).start()
    try:
        pushed = runner.invoke(
            content_commands.app,
            [
                "push",
                "--slot",
                "home_hero",
                "--url",
                receiver.url,
                "--content",
                str(content),
                "--report",
                str(tmp_path / "report.json"),
                *common,
            ],
        )
        assert pushed.exit_code == 0, pushed.output
        blocks = {p["target"]: p for p in receiver.processed.values()}
        assert sorted(blocks) == sorted(names) and receiver.verified == len(names)
        for block in blocks.values():
            assert block["items"] and all(i["item_id"] and i["title"] for i in block["items"])
            assert not block["fallback"]
    finally:
        receiver.stop()
