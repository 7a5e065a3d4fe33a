"""The query tower serving evaluates (training's plain export, in numpy) equals the
SavedModel's serving signature: on towers of other shapes built by training's own builder,
and on a trained version's real feature rows; a version without the export still serves."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis

from serving.bundle import (
    BundleError,
    ColdStart,
    ModelBundle,
    check_tower,
    load_bundle,
)
from serving.features import FeatureReader
from serving.retrieval import tower_inputs
from serving.tower import ACTIVATIONS, TowerError, read_query_tower
from tailwise.features.store import open_store
from tailwise.features.tower_inputs import TowerInput, encode_frame
from tailwise.tower_export import DESCRIPTION, WEIGHTS
from tailwise.versions import version_folder
from tests.serving.conftest import ServedWorld
from training.retrieval import RetrievalConfig, RetrievalResult, save
from training.towers import Preprocessing, build_towers

pytestmark = pytest.mark.slow  # builds TensorFlow models

SPECS = [
    TowerInput("user_id", "id"),
    TowerInput("gender", "categorical"),
    TowerInput("age", "numeric"),
    TowerInput("spend_30d", "numeric"),
    TowerInput("top_categories", "string_list", 3),
    TowerInput("recent_items", "string_list", 4),
    TowerInput("history_items", "item_history", 3),  # format 2: the user's last 3 items
]
ROWS: list[dict[str, Any]] = [
    {
        "user_id": "u1",
        "gender": "female",
        "age": 31.0,
        "spend_30d": 120.5,
        "top_categories": ["a", "b", "c", "a"],
        "recent_items": ["i1", "i3"],
        "history_items": ["i2", "i1"],
    },
    {  # unknown ids and tokens, negative and non-finite numbers, None inside a list
        "user_id": "nobody",
        "gender": "other",
        "age": -4.0,
        "spend_30d": float("inf"),
        "top_categories": ["zzz", None, "b"],
        "recent_items": ["i9", "i2", "i2", "i1", "i3"],
        "history_items": ["i3", "i9", "i1", "i2"],  # past the length: cut
    },
    {  # everything missing, empty lists
        "user_id": None,
        "gender": float("nan"),
        "age": None,
        "spend_30d": float("nan"),
        "top_categories": [],
        "recent_items": None,
        "history_items": [],
    },
    {"user_id": "u3", "gender": "male", "age": 1e6, "top_categories": ["", "c"]},
]
PREPROCESSING = Preprocessing(
    vocabularies={
        "user_id": ["u1", "u2", "u3"],
        "gender": ["female", "male"],
        "top_categories": ["a", "b", "c"],
        "item_id": ["i1", "i2", "i3"],
        "category": ["a/x", "b/y"],
        "category_l1": ["a", "b"],
        "brand": ["b1"],
    },
    means={"age": 3.0, "spend_30d": 1.5, "price": 2.0},
    variances={"age": 0.4, "spend_30d": 2.0, "price": 1.0},
)


@pytest.fixture(
    scope="module",
    params=[
        RetrievalConfig(embedding_dim=8, hidden_layers=(16,)),
        RetrievalConfig(embedding_dim=8, hidden_layers=(24, 12), activation="gelu"),
    ],
    ids=["one-relu-layer", "two-gelu-layers"],
)
def saved(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A retriever folder written by training's `save`, its query tower built by training's
    `build_towers` with random weights (so every input moves the output)."""
    return _save(request.param, SPECS, tmp_path_factory.mktemp("version") / "retrieval")


def _save(cfg: RetrievalConfig, specs: list[TowerInput], folder: Path) -> Path:
    query, _ = build_towers(
        specs, PREPROCESSING, cfg.embedding_dim, cfg.hidden_layers, cfg.activation
    )
    rng = np.random.default_rng(0)
    query.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in query.get_weights()])
    result = RetrievalResult(
        config=cfg,
        inputs=specs,
        item_ids=np.array(["i1"], dtype=object),
        item_vectors=np.zeros((1, cfg.embedding_dim), np.float32),
        embed=lambda arrays: np.asarray(query(arrays, training=False)),
        query_model=query,
    )
    return save(result, folder)


def _reference(folder: Path, specs: list[TowerInput] = SPECS) -> ModelBundle:
    """A bundle holding only the retriever's SavedModel (what check_tower compares with)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder / "query_model"))
    return ModelBundle(
        version="test",
        folder=folder.parent,
        manifest={},
        inputs=list(specs),
        item_ids=np.array([], dtype=object),
        item_vectors=np.zeros((0, 2), np.float32),
        ranker=None,
        ranker_features=[],
        categories={},
        cold_start=ColdStart(),
        _signature=loaded.signatures["serving_default"],
        _loaded=loaded,
    )


def test_exported_tower_equals_the_saved_model(saved: Path) -> None:
    tower = read_query_tower(saved)
    bundle = _reference(saved)
    arrays = encode_frame(pd.DataFrame(ROWS), SPECS)  # training's encoding of its examples
    want = bundle.embed_reference(arrays)
    np.testing.assert_allclose(np.stack([tower.embed_row(r) for r in ROWS]), want, atol=1e-5)
    np.testing.assert_allclose(tower.embed(arrays), want, atol=1e-5)
    assert len({tuple(np.round(v, 4)) for v in want}) == len(ROWS)  # the rows differ
    config = json.loads((saved / "manifest.json").read_text())["config"]
    assert len(tower.dense) == len(config["hidden_layers"]) + 1
    bundle.tower = tower
    check_tower(bundle)  # what load_bundle runs on probe rows


def test_the_history_input_is_the_item_id_table_for_any_length(saved: Path, tmp_path: Path) -> None:
    tower = read_query_tower(saved)
    history = next(p for p in tower.embedded if p.name == "history_items")
    items = next(p for p in tower.embedded if p.name == "recent_items")
    np.testing.assert_array_equal(history.table, items.table)  # both the item-id embedding
    assert history.length == 3
    # The export says M: a longer history input evaluates the same way, over more slots.
    folder = tmp_path / "retrieval"
    shutil.copytree(saved, folder)
    export = json.loads((folder / DESCRIPTION).read_text())
    for spec in export["inputs"]:
        if spec["name"] == "history_items":
            spec["length"], spec["shape"] = 5, [None, 5]
    (folder / DESCRIPTION).write_text(json.dumps(export))
    longer = read_query_tower(folder)
    row = {**ROWS[0], "history_items": ["i1", "i2", "i3", "i1", "i2"]}
    five = longer.embed_row(row)
    three = tower.embed_row({**row, "history_items": ["i1", "i2", "i3"]})
    assert not np.allclose(five, three)  # slots 4 and 5 count: i1 and i2 weigh more
    assert np.allclose(longer.embed_row(ROWS[0]), tower.embed_row(ROWS[0]), atol=1e-6)


def test_an_export_of_format_1_still_loads(tmp_path: Path) -> None:
    # A version trained before the history input: format 1, no item_history.
    specs = [s for s in SPECS if s.kind != "item_history"]
    old = _save(RetrievalConfig(embedding_dim=8, hidden_layers=(16,)), specs, tmp_path / "old")
    export = json.loads((old / DESCRIPTION).read_text())
    export["format_version"] = 1
    (old / DESCRIPTION).write_text(json.dumps(export))
    bundle = _reference(old, specs)
    bundle.tower = read_query_tower(old)
    check_tower(bundle)


def test_an_item_history_input_needs_format_2(saved: Path, tmp_path: Path) -> None:
    folder = tmp_path / "new"
    shutil.copytree(saved, folder)
    export = json.loads((folder / DESCRIPTION).read_text())
    assert export["format_version"] == 2
    (folder / DESCRIPTION).write_text(json.dumps({**export, "format_version": 1}))
    with pytest.raises(TowerError, match=r"item_history.*format_version 2"):
        read_query_tower(folder)


def test_an_export_that_disagrees_with_the_saved_model_is_refused(saved: Path) -> None:
    bundle = _reference(saved)
    tower = read_query_tower(saved)
    last = tower.dense[-1]
    bundle.tower = replace(tower, dense=[*tower.dense[:-1], replace(last, bias=last.bias + 0.1)])
    with pytest.raises(BundleError, match="differs from the SavedModel"):
        check_tower(bundle)


def test_an_activation_serving_lacks_stops_the_load(saved: Path, tmp_path: Path) -> None:
    folder = tmp_path / "retrieval"
    shutil.copytree(saved, folder)
    export = json.loads((folder / DESCRIPTION).read_text())
    export["dense"][0]["activation"] = "mish"
    (folder / DESCRIPTION).write_text(json.dumps(export))
    with pytest.raises(TowerError, match="activation 'mish'"):
        read_query_tower(folder)
    (folder / WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError):
        read_query_tower(folder)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_are_the_keras_ones_of_that_name(name: str) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    x = np.linspace(-30, 30, 241, dtype=np.float32)
    want = np.asarray(tf.keras.activations.get(name)(tf.constant(x)))
    np.testing.assert_allclose(ACTIVATIONS[name](x), want, rtol=1e-5, atol=1e-6)


def _served_rows(world: ServedWorld, bundle: ModelBundle) -> list[dict[str, Any]]:
    store = open_store(world.settings)
    reader = FeatureReader(
        store, redis.Redis.from_url(world.redis.url), bundle.ranking_service, bundle.item_ids
    )
    users = sorted(pd.read_parquet(world.features / "user_profile.parquet")["user_id"].astype(str))
    ts = int(datetime.now(UTC).timestamp())
    rows = []
    for n, user in enumerate([*users[:40], "never-seen-user"]):
        device, country = [("mobile", "DE"), ("desktop", None), (None, "ZZ")][n % 3]
        row = reader.with_context(reader.user(user), device, country, ts)
        row = {**row, "user_id": user}
        if bundle.history_input is not None:  # the user's latest items, unknown ones too
            row[bundle.history_input.name] = [*bundle.item_ids[n : n + n % 4], "gone-item"]
        rows.append(row)
    assert any(v is None for row in rows for v in row.values())  # missing values included
    return rows


def test_numpy_tower_equals_the_saved_model_on_served_rows(served_world: ServedWorld) -> None:
    world = served_world
    bundle = load_bundle(version_folder(world.models, world.version))  # checks probe rows
    assert bundle.tower is not None and bundle.tower_fallback is None
    assert bundle.history_input is not None  # TINY_PARAMS: history_items 3
    assert bundle.users and "never-seen-user" not in bundle.users
    rows = _served_rows(world, bundle)
    want = np.concatenate([bundle.embed_reference(tower_inputs(bundle, row)) for row in rows])
    got = np.stack([bundle.embed_row(row) for row in rows])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_version_without_the_export_is_embedded_by_the_saved_model(
    served_world: ServedWorld,
    tmp_path: Path,
) -> None:
    world = served_world
    folder = tmp_path / world.version
    shutil.copytree(version_folder(world.models, world.version), folder)
    (folder / "retrieval" / DESCRIPTION).unlink()
    (folder / "retrieval" / WEIGHTS).unlink()
    old = load_bundle(folder)
    assert old.tower is None
    assert old.tower_fallback is not None and "retrain" in old.tower_fallback
    current = load_bundle(version_folder(world.models, world.version))
    rows = _served_rows(world, current)[:5]
    np.testing.assert_allclose(
        np.stack([old.embed_row(r) for r in rows]),
        np.stack([current.embed_row(r) for r in rows]),
        atol=1e-5,
    )
