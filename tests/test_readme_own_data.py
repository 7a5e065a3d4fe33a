"""README "Your own data" works as written: its commands, run in order on the corner-shop
export (bench/data/corner-shop/), ingest, train, load the features and recommend.

The commands are read from the README itself (the `tailwise` lines of the section's
second bash block), so the page and this test cannot drift apart; they run in process
through the CLI in a temporary folder holding a copy of bench/data/corner-shop/, with
the environment the README exports (a Feast project of the test's own) and the README's
two parameters. Training uses small settings to keep the test short.
"""

from __future__ import annotations

import filecmp
import importlib.util
import re
import shlex
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tailwise.cli import app, load_plugins

ROOT = Path(__file__).resolve().parents[1]
SHOP = ROOT / "bench" / "data" / "corner-shop"
FAST = {
    "retrieval": {"embedding_dim": 8, "epochs": 1, "batch_size": 256},
    "ranker": {"n_candidates": 50, "n_estimators": 20, "min_child_weight": 1},
    "tune": {"enabled": False},
}
runner = CliRunner()
load_plugins()  # train, recommend: the stages' commands


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Your own data")
    return text[start : text.index("\n## ", start + 1)]


def commands() -> list[str]:
    """The README's command lines (continuations joined) of the section's second block."""
    blocks = re.findall(r"```bash\n(.*?)```", section(), flags=re.S)
    assert len(blocks) >= 2, "the section lost its command blocks"
    joined = blocks[1].replace("\\\n", " ")
    return [" ".join(line.split()) for line in joined.splitlines() if line.strip()]


def test_readme_explains_the_two_settings() -> None:
    text = section()
    for needle in (
        "consent_default: true",
        "allow_repeats: auto",
        "auto_threshold",
        "mapping.yaml",
    ):
        assert needle in text, needle
    steps = [c.split()[1] for c in commands() if c.startswith(".venv/bin/tailwise")]
    assert steps == ["ingest", "train", "features", "features", "recommend"], steps


def test_make_data_writes_the_committed_files(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_data", SHOP / "make_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.write(tmp_path)
    for name, n in rows.items():
        assert filecmp.cmp(tmp_path / name, SHOP / name, shallow=False), name
        assert n > 40
    assert rows["sales.csv"] > 300


@pytest.fixture
def workspace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    shutil.copytree(SHOP, tmp_path / "bench" / "data" / "corner-shop")
    (tmp_path / "shop").mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ingest"]["consent_default"] = True  # as the README says
    params["recommend"]["allow_repeats"] = "auto"
    for key, values in FAST.items():
        params["training"].setdefault(key, {}).update(values)
    (tmp_path / "shop" / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    env = {
        "TAILWISE_HMAC_KEY": "e" * 64,
        "TAILWISE_PARAMS": "shop/params.yaml",
        "TAILWISE_FEATURES_DIR": "shop/features",
        "TAILWISE_FEAST_PROJECT": f"tw_readme_{uuid.uuid4().hex[:8]}",
        "TAILWISE_FEAST_REGISTRY": "shop/registry.db",
        "TAILWISE_HOME": str(tmp_path / "home"),
        "TAILWISE_FEATURE_REPO": str(ROOT / "feature_repo"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TAILWISE_DEMO", raising=False)
    yield tmp_path
    from tailwise.features.store import open_store, teardown
    from tailwise.settings import Settings

    settings = Settings()
    if settings.feast_registry is not None and settings.feast_registry.exists():
        teardown(settings, open_store(settings))


def run_line(line: str) -> str:
    if line.startswith("tail -n +2 bench/data/corner-shop/customers.csv | cut -d, -f1 > "):
        cards = pd.read_csv("bench/data/corner-shop/customers.csv", dtype=str)["Card Number"]
        Path(line.rsplit("> ", 1)[1]).write_text("\n".join(cards) + "\n")
        return ""
    args = shlex.split(line)
    assert args[0] == ".venv/bin/tailwise", f"the README runs something this test does not: {line}"
    result = runner.invoke(app, args[1:])
    assert result.exit_code == 0, f"{line}\n-> exit {result.exit_code}\n{result.output}"
    assert "Traceback" not in result.output
    return result.output


def check_ingest() -> None:
    """The shop's mess is caught: duplicates merged, bad lines quarantined, nobody
    excluded for consent (ingest.consent_default: true), repeats mostly re-buys."""
    from tailwise.repeats import repeat_share

    report = yaml.safe_load(Path("shop/clean/quality_report.json").read_text())["tables"]
    events = report["events"]
    assert events["duplicates_merged"] == 6  # till lines exported twice
    assert events["quarantined"] >= 5  # refunds, day-first dates, unknown card, no SKU
    assert report["users"]["excluded_no_consent"] == 0
    assert events["kept"] > 900
    share, basis = repeat_share(pd.read_parquet("shop/clean/events"))
    assert basis == "purchases" and share >= 0.25  # what the README says auto decides


@pytest.mark.slow
def test_readme_own_data_commands(workspace: Path) -> None:
    outputs = []
    for line in commands():
        outputs.append(run_line(line))
        if " ingest " in line:
            check_ingest()

    version = Path("shop/models/LATEST").read_text().strip()
    manifest = yaml.safe_load(Path(f"shop/models/{version}/manifest.json").read_text())
    decision = manifest["recommend"]
    assert decision["setting"] == "auto" and decision["repeat_share"] >= 0.25
    assert decision["allow_repeats"] is True  # a re-buy shop

    recs = pd.read_csv("shop/recs.csv", dtype={"user_id": str, "item_id": str})
    clean = pd.read_parquet("shop/clean/events")
    known = set(clean["user_id"])
    catalogue = pd.read_parquet("shop/clean/items.parquet")["item_id"].nunique()
    counts = recs.groupby("user_id").size()
    for user in known:
        assert counts.get(user, 0) == min(10, catalogue), user
    assert not recs.duplicated(["user_id", "item_id"]).any()
    assert set(recs["item_id"]) <= set(pd.read_parquet("shop/clean/items.parquet")["item_id"])
    match = re.search(r"(\d+) of (\d+) users with history got the cold-start list", outputs[-1])
    assert match is not None, outputs[-1]
    assert match.group(1) == "0" and int(match.group(2)) == len(known)
