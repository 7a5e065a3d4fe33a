"""Known users are answered by the model, never silently as new users; the version's repeat
decision sets what is left out; history features reach the ranker; lists are full-length."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
import xgboost as xgb

import serving.pipeline
from serving.batch import Tally, answer_all, open_graph, recommend_users
from serving.config import ServingConfig
from serving.graph import Answer, RecommendGraph, Request, UserState
from serving.retrieval import Candidates
from tailwise.repeats import HISTORY_FEATURES, user_item_history
from tests.serving.conftest import ServedWorld

pytestmark = pytest.mark.slow


def _version(world: ServedWorld, name: str, allow_repeats: bool, history: bool = False) -> str:
    """A copy of the world's version with `recommend.allow_repeats` set in its manifest
    and, with `history`, a ranker that reads HISTORY_FEATURES too."""
    folder = world.models / name
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(world.models / world.version, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = name
    manifest["recommend"] = {"allow_repeats": allow_repeats, "setting": "true"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    if history:
        _history_ranker(folder / "ranker")
    return name


def _history_ranker(folder: Path) -> None:
    """Retrain the ranker on random rows with the history features added, so its scores
    depend on them (the trees split on them: the label is their sum)."""
    meta = json.loads((folder / "ranker.json").read_text())
    old = xgb.Booster()
    old.load_model(folder / "model.json")
    names = [*meta["feature_names"], *HISTORY_FEATURES]
    types = [*(old.feature_types or ["q"] * len(meta["feature_names"])), "q", "q"]
    rng = np.random.default_rng(0)
    n = 400
    X = rng.normal(size=(n, len(names))).astype(np.float32)
    for j, (name, kind) in enumerate(zip(names, types, strict=True)):
        if kind == "c":
            X[:, j] = rng.integers(0, max(1, len(meta["categories"].get(name, []))), n)
    X[:, -2] = rng.integers(0, 5, n)
    X[:, -1] = np.where(rng.random(n) < 0.3, np.nan, rng.uniform(0, 30, n))
    label = X[:, -2] - 0.1 * np.nan_to_num(X[:, -1], nan=40.0)
    data = xgb.DMatrix(X, label, feature_names=names, feature_types=types, enable_categorical=True)
    booster = xgb.train({"max_depth": 3, "seed": 0}, data, num_boost_round=10)
    booster.save_model(folder / "model.json")
    meta["feature_names"] = names
    (folder / "ranker.json").write_text(json.dumps(meta))


@pytest.fixture
def graph_for(served_world: ServedWorld) -> Iterator:
    opened: list[RecommendGraph] = []

    def make(version: str | None = None) -> RecommendGraph:
        config = ServingConfig(
            models_dir=served_world.models,
            model_version=version or served_world.version,
            clean_dir=served_world.clean,
        )
        graph = open_graph(config, served_world.settings)
        opened.append(graph)
        return graph

    yield make
    for graph in opened:
        asyncio.run(graph.client.aclose())


def _answer(graph: RecommendGraph, req: Request) -> Answer:
    return answer_all(graph, [req])[0]


def _events(world: ServedWorld) -> pd.DataFrame:
    return pd.read_parquet(world.clean / "events")


def test_a_known_user_without_features_is_answered_by_the_model_and_counted(
    served_world: ServedWorld,
    graph_for,
) -> None:
    graph = graph_for()
    events = _events(served_world)
    donor = events["user_id"].value_counts().index[0]
    had = set(events.loc[events["user_id"] == donor, "item_id"])
    client = redis.Redis.from_url(served_world.redis.url)
    ghost = "known-only-by-history"  # history in Redis, no online feature
    client.sadd(graph.keys.seen(ghost), *had)
    try:
        tally = Tally()
        recommend_users(graph, [ghost, "someone-new", donor], 10, tally=tally)
        answer = _answer(graph, Request(ghost, k=10))
        assert answer.known and not answer.cold_start and answer.without_features
        assert len(answer.body["items"]) == 10
        assert not {i["item_id"] for i in answer.body["items"]} & had  # repeats not allowed
        new = _answer(graph, Request("someone-new", k=10))
        assert new.cold_start and not new.known
        assert (tally.known, tally.cold, tally.without_features) == (2, 0, 1)
        assert tally.describe() == "0 of 2 users with history got the cold-start list"
    finally:
        client.delete(graph.keys.seen(ghost))


def test_a_user_the_model_learned_is_known_without_features_or_history(
    served_world: ServedWorld,
    graph_for,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    graph = graph_for()
    learned = sorted(graph.bundle.users)
    assert learned, "the query tower learned no user ids"
    read = graph._read

    async def forgotten(*args: object, **kwargs: object) -> UserState:
        state = await read(*args, **kwargs)
        state.features = dict.fromkeys(state.features)  # no feature, no history left
        state.has_history = False
        return state

    monkeypatch.setattr(graph, "_read", forgotten)
    answer = _answer(graph, Request(learned[0], k=5))
    assert answer.known and not answer.cold_start and answer.without_features
    assert not _answer(graph, Request("never-learned", k=5)).known


def test_when_the_model_path_fails_a_known_user_is_counted_cold(
    served_world: ServedWorld,
    graph_for,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    graph = graph_for()
    user = _events(served_world)["user_id"].iloc[0]

    def broken(*args: object, **kwargs: object) -> Candidates:
        raise ValueError("no vector")

    monkeypatch.setattr(serving.pipeline, "retrieve", broken)
    tally = Tally()
    recommend_users(graph, [user], 5, tally=tally)
    assert tally.describe() == "1 of 1 users with history got the cold-start list (model_error: 1)"


@pytest.mark.parametrize("allow", [False, True])
def test_the_version_decides_whether_what_a_user_had_is_served(
    served_world: ServedWorld,
    graph_for,
    allow: bool,
) -> None:
    graph = graph_for(_version(served_world, f"repeats-{allow}", allow))
    events = _events(served_world)
    user = events["user_id"].value_counts().index[0]
    had = set(events.loc[events["user_id"] == user, "item_id"])
    catalogue = len(graph.bundle.item_ids)
    answer = _answer(graph, Request(user, k=catalogue))
    served = [i["item_id"] for i in answer.body["items"]]
    assert len(served) == len(set(served))
    if allow:  # nothing left out: the whole catalogue, past items included
        assert len(served) == catalogue and had <= set(served)
    else:  # full-length: everything but what they had
        assert len(served) == catalogue - len(had) and not had & set(served)


def test_history_features_reach_the_ranker_as_training_defines_them(
    served_world: ServedWorld,
    graph_for,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    graph = graph_for(_version(served_world, "history", True, history=True))
    assert graph.bundle.history_features == list(HISTORY_FEATURES)
    events = _events(served_world)
    events["user_id"] = events["user_id"].astype(str)
    user = events["user_id"].value_counts().index[0]
    had = events.loc[events["user_id"] == user, "item_id"].astype(str)
    seen: dict[str, object] = {}
    retrieve, rank = serving.pipeline.retrieve, graph.bundle.rank

    def retrieving(*args: object, **kwargs: object) -> Candidates:
        seen["candidates"] = found = retrieve(*args, **kwargs)  # type: ignore[arg-type]
        return found

    def ranking(X: np.ndarray) -> np.ndarray:
        seen["X"] = X.copy()
        return rank(X)

    monkeypatch.setattr(serving.pipeline, "retrieve", retrieving)
    monkeypatch.setattr(graph.bundle, "rank", ranking)
    at = pd.Timestamp("2030-01-01", tz="UTC")
    _answer(graph, Request(user, k=10, timestamp=at.to_pydatetime()))
    candidates: Candidates = seen["candidates"]  # type: ignore[assignment]
    ids = [str(i) for i in candidates.catalogue[candidates.rows]]
    past = graph.config.n_candidates // 4
    assert len(set(had) & set(ids)) >= min(past, had.nunique())  # past items are candidates
    X: np.ndarray = seen["X"]  # type: ignore[assignment]
    names = graph.bundle.ranker_features
    got = X[:, [names.index(f) for f in HISTORY_FEATURES]]
    pairs = pd.DataFrame({"user_id": user, "item_id": ids})
    want = user_item_history(events, at, pairs)[list(HISTORY_FEATURES)].to_numpy(np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert (got[:, 0] > 0).any()
