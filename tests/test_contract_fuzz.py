"""Any dataset the contract admits goes ingest -> features -> train -> recommend, or stops
with exit 3 and a message that names what to fix: never a traceback.

hypothesis draws the shapes (tests/contract_shapes.py): optional columns absent or
all-null per table, eras from 1975 to now, event-type mixes, sparse, bursty and dense
timelines, repeat-heavy and repeat-free histories, tiny sizes. Each example runs the
commands a person runs (in process, through the CLI) with fast training settings.
`TAILWISE_FUZZ_EXAMPLES` sets how many drawn examples run besides the explicit ones.
"""

from __future__ import annotations

import os
import re
import traceback
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, example, given, seed, settings
from typer.testing import CliRunner

from tailwise.cli import app, load_plugins
from tailwise.console import EXIT_BAD_INPUT
from tests.contract_shapes import OPTIONAL, Shape, shapes, write_shape

ROOT = Path(__file__).resolve().parents[1]
K = 5
runner = CliRunner()
load_plugins()  # train, recommend: the stages' commands
pytestmark = pytest.mark.slow

# What a message that stops a run must name: a contract column, a parameter or a file.
NAMES = re.compile(
    r"(ingest|features|evaluation|training|recommend)\.[a-z_]+|column|`[a-z_]+`|'[a-z_]+'"
    r"|\b(users|items|events)\b|\.parquet|\.csv|\.jsonl",
)
FAST = {
    "training": {
        "retrieval": {"embedding_dim": 8, "epochs": 1, "batch_size": 256},
        "ranker": {"n_candidates": 50, "n_estimators": 20, "min_child_weight": 1},
        "cold_start": {"days": 14, "top": 50},
        "tune": {"enabled": False},
    },
}


def _params(folder: Path) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    # A dataset without consent columns: its owner has consent by other means.
    params["ingest"]["consent_default"] = True
    for section, values in FAST.items():
        for key, value in values.items():
            params[section].setdefault(key, {}).update(value)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _run(args: list[str]) -> tuple[bool, str]:
    """(finished, output): True on exit 0; a clear stop (exit 3, named cause) is False;
    anything else fails the test with the output."""
    result = runner.invoke(app, args)
    output = result.output
    if result.exit_code == 0:
        return True, output
    assert "Traceback" not in output, output
    if result.exit_code != EXIT_BAD_INPUT:
        trace = "".join(traceback.format_exception(result.exception)) if result.exception else ""
        pytest.fail(f"{' '.join(args)} -> exit {result.exit_code}\n{output}\n{trace}")
    assert NAMES.search(output), f"the message names no column, parameter or file:\n{output}"
    return False, output


@pytest.fixture
def workspace(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    def make() -> Path:
        folder = tmp_path_factory.mktemp("shape")
        monkeypatch.chdir(folder)
        env = {
            "TAILWISE_HMAC_KEY": "f" * 64,
            "TAILWISE_HOME": str(folder / "home"),
            "TAILWISE_FEATURE_REPO": str(ROOT / "feature_repo"),
            "TAILWISE_FEATURES_DIR": str(folder / "features"),
            "TAILWISE_FEAST_PROJECT": f"tw_fuzz_{uuid.uuid4().hex[:8]}",
            "TAILWISE_FEAST_REGISTRY": str(folder / "registry.db"),
            "TAILWISE_PARAMS": str(_params(folder)),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("TAILWISE_DEMO", raising=False)
        return folder

    return make


def _teardown_feast() -> None:
    from tailwise.features.store import open_store, teardown
    from tailwise.settings import Settings

    settings = Settings()
    if settings.feast_registry is not None and settings.feast_registry.exists():
        teardown(settings, open_store(settings))


def run_shape(shape: Shape, folder: Path) -> str:
    """The shape through every command; returns the command that stopped it with a clear
    message, or "recommend" when it went all the way."""
    write_shape(shape, folder / "raw")
    params = str(folder / "params.yaml")
    done, _ = _run(["ingest", "--source", "raw", "--out", "clean", "--params", params, "--no-show"])
    if not done:
        return "ingest"
    train = ["train", "--data", "clean", "--features", "features", "--params", params]
    done, _ = _run([*train, "--models", "models", "--work", "work", "--evaluation", "ev"])
    if not done:
        return "train"
    try:
        assert _run(["features", "apply"])[0]
        assert _run(["features", "materialize"])[0]
        check_recommendations(folder)
    finally:
        _teardown_feast()
    return "recommend"


def check_recommendations(folder: Path) -> None:
    clean = pd.read_parquet(folder / "clean" / "events")
    known = sorted(clean["user_id"].unique())
    (folder / "users.txt").write_text("\n".join(known) + "\n")
    done, output = _run(
        [
            "recommend",
            *("--users-file", "users.txt", "--k", str(K), "--out", "recs.csv"),
            *("--models", "models", "--data", "clean"),
        ]
    )
    assert done, output
    recs = pd.read_csv(folder / "recs.csv", dtype={"user_id": str, "item_id": str})
    version = (folder / "models" / "LATEST").read_text().strip()
    manifest = yaml.safe_load((folder / "models" / version / "manifest.json").read_text())
    repeats = bool(manifest.get("recommend", {}).get("allow_repeats", False))
    catalogue = pd.read_parquet(folder / "clean" / "items.parquet")["item_id"].nunique()
    seen = clean.groupby("user_id")["item_id"].agg(set)
    counts = recs.groupby("user_id").size()
    for user in known:
        room = catalogue if repeats else catalogue - len(seen[user])
        assert counts.get(user, 0) >= min(K, room), (user, counts.get(user, 0), room, output)
    if not repeats:
        pairs = set(zip(clean["user_id"], clean["item_id"], strict=True))
        served = set(zip(recs["user_id"], recs["item_id"], strict=True))
        assert not served & pairs, f"already-seen items served: {sorted(served & pairs)[:5]}"
    match = re.search(r"(\d+) of (\d+) users with history got the cold-start list", output)
    assert match is not None, f"recommend does not say how many known users were cold:\n{output}"
    assert match.group(1) == "0", output


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(Shape(absent={"users": ("income_band",)}), id="no-income-band"),
        pytest.param(Shape(start_year=1997, span_days=730, event_types=("rating",)), id="1990s"),
        pytest.param(
            Shape(absent={"items": ("title", "description", "category", "brand", "price")}),
            id="items-id-only",
        ),
        pytest.param(
            Shape(nulled={"users": ("age", "gender", "country", "region", "income_band")}),
            id="null-demographics",
        ),
        pytest.param(
            Shape(absent={table: tuple(cols) for table, cols in OPTIONAL.items()}),
            id="only-required",
        ),
        pytest.param(
            Shape(event_types=("purchase",), repeat_share=0.8, events_per_user=15), id="rebuy"
        ),
    ],
)
def test_known_shapes(shape: Shape, workspace) -> None:
    """The shapes real datasets brought: each one trains and serves, none merely stops."""
    assert run_shape(shape, workspace()) == "recommend"


@seed(20261202)
@settings(
    max_examples=int(os.environ.get("TAILWISE_FUZZ_EXAMPLES", "4")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(shape=shapes())
@example(shape=Shape(users=8, items=6, events_per_user=2, span_days=5))
# Quantile windows over two sparse years: cuts once fell a nanosecond off the data's
# microseconds and Feast's retrieval refused them.
@example(
    shape=Shape(
        seed=991,
        users=20,
        items=66,
        events_per_user=9.7,
        start_year=2026,
        span_days=730,
        event_types=("rating", "purchase", "add_to_cart", "product_view"),
        absent={
            "users": ("consent_personalization", "consent_tracking", "phone"),
            "items": ("title", "brand", "price", "created_at"),
            "events": ("country",),
        },
        nulled={
            "users": ("email",),
            "items": ("description", "category"),
            "events": ("price", "device"),
        },
        formats=("jsonl", "jsonl", "parquet"),
    )
)
def test_drawn_shapes(shape: Shape, workspace) -> None:
    print(shape.describe())
    run_shape(shape, workspace())
