"""A union version (training.ranker.candidates: union) served: the request path ranks the
candidates training's UnionRecommender ranks, with the same features and scores.

A tiny union ranker is trained the way training does it (union_labelled_candidates,
fit_union_ranker; Feast stood in by a store that serves no feature view, so the ranker
learns from the union's own features), saved as a version folder, and served from the
state Redis holds: the recent list (event JSON) and the history hash. Then for known
users and a user with no history at all, serving's top 10 (before the rules) equals
training's, and the union columns of its ranker matrix equal
training's rows to 1e-6. The version has the profile source: its profile values come
from the user's online feature row (people with a profile and no event included).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from serving.bundle import ColdStart, ModelBundle
from serving.events import event_json
from serving.graph import Request
from serving.history import UserHistory
from serving.keys import RECENT_MAX, Keys
from serving.ranking import ItemBlock, ranking_matrix, with_columns
from serving.union import SourceMixError, UnionServing, user_events
from tailwise.features.online import ItemTable
from tailwise.ingest.events import CLEAN_COLUMNS
from tailwise.repeats import HISTORY_FEATURES
from tests.candidates.drawn import drawn, drawn_profiles
from training.config import SplitParams
from training.ranker import RankerConfig, candidate_order
from training.ranker import save as save_ranker
from training.union import (
    UnionRecommender,
    fit_sources,
    fit_union_ranker,
    load_sources,
    union_labelled_candidates,
)

K = 10


class NoViews:
    """A Feast store whose ranking service has no feature view: ranking_examples then
    feeds the ranker the union's columns (and all-missing cross features it drops)."""

    def get_feature_service(self, name: str) -> Any:
        return SimpleNamespace(feature_view_projections=[])

    def get_historical_features(self, entity_df: pd.DataFrame, features: Any) -> Any:
        return SimpleNamespace(to_df=lambda: entity_df.copy())


def cfg() -> RankerConfig:
    return RankerConfig(
        candidates="union",
        two_tower_source=False,
        n_per_source=10,
        n_candidates=40,
        cut_days=7,
        n_estimators=40,
        min_child_weight=1,
        validation_share=0,
        n_jobs=1,
    )


def version(
    tmp_path: Path,
    repeats: bool,
    keep: str | None = None,
    profiles: pd.DataFrame | None = None,
    new_user_order: str | None = None,
) -> tuple[Any, Any, pd.DataFrame, pd.Timestamp]:
    """(training's UnionRecommender, the served bundle, the events, the version's cut).
    `keep`: a rank column whose order the version keeps instead of a learned ranker;
    `profiles`: the user profile table (adds the profile source); `new_user_order`: the
    order the version gives people without history, as if its check had chosen it."""
    events, items = drawn(5, users=80)
    events["event_id"] = [f"e{n:05d}" for n in range(len(events))]
    if keep is None:
        lists = union_labelled_candidates(
            None, events, items, cfg(), SplitParams(), repeats, profiles=profiles
        )
        result = fit_union_ranker(NoViews(), lists, cfg())
        assert result.metrics.get("scored_by", "ranker") == "ranker", result.metrics
    else:
        result = candidate_order(cfg(), "a source's order won the check", [], keep)
    if new_user_order is not None:
        result.metrics["new_user_order"] = new_user_order
    cut = events["timestamp"].max() + pd.Timedelta(hours=1)
    fit_sources(events, cut, items, repeats, profiles=profiles).save(tmp_path / "sources")
    save_ranker(result, tmp_path / "ranker")
    trained = UnionRecommender(NoViews(), cfg()).attach(
        result, load_sources(tmp_path / "sources", None, repeats, profiles), events
    )
    booster = result.model.get_booster()
    booster.set_param({"nthread": 1})
    catalogue = sorted(set(items["item_id"]) | set(events["item_id"]))
    bundle = ModelBundle(
        version="union-test",
        folder=tmp_path,
        manifest={"recommend": {"allow_repeats": repeats}},
        inputs=[],
        item_ids=np.array(catalogue, dtype=object),
        item_vectors=np.zeros((len(catalogue), 2), np.float32),
        ranker=booster,
        ranker_features=result.feature_names,
        categories=result.categories,
        cold_start=ColdStart(),
        ranker_config=result.config.model_dump(),
        new_user_order=new_user_order,
    )
    return trained, bundle, events, cut


def redis_state(events: pd.DataFrame) -> tuple[UserHistory, list[str]]:
    """What Redis holds for one user: the history hash and the recent list (newest first)."""
    seconds = events["timestamp"].astype("int64") / 1e9
    stats = events.assign(s=seconds).groupby("item_id")["s"].agg(["size", "max"])
    raw = {f"n:{i}": str(n) for i, n in stats["size"].items()}
    raw |= {f"t:{i}": repr(float(t)) for i, t in stats["max"].items()}
    newest = events.sort_values(["timestamp", "event_id"], ascending=False).head(RECENT_MAX)
    records = newest.reindex(columns=CLEAN_COLUMNS).astype(object)
    records = records.where(records.notna(), None)
    return UserHistory.decode(raw), [event_json(r) for r in records.to_dict("records")]


def served(
    serving: UnionServing,
    bundle: ModelBundle,
    events: pd.DataFrame,
    ts: float,
    profile: dict[str, Any] | None = None,
):
    """Serving's ranked items, scores and union rows for one user (the pipeline's steps
    up to the rules); `profile`: the user's online profile features."""
    history, recent = redis_state(events) if len(events) else (None, [])
    last = events.sort_values("timestamp", kind="stable").tail(1)
    row = {
        **(profile or {}),
        "request_device": last["device"].iloc[0] if len(last) else None,
        "request_country": last["country"].iloc[0] if len(last) else None,
    }
    found, rows = serving.candidates(bundle, row, user_events(history, recent), ts)
    block = ItemBlock.build(bundle, ItemTable(pd.DataFrame({"item_id": bundle.item_ids})))
    X = ranking_matrix(bundle, block, row, block.on_demand({}), found)
    X = with_columns(X, serving.columns(bundle, rows))
    if bundle.history_features:
        values = (history or UserHistory.decode(None)).features(rows.items, ts)
        X = with_columns(
            X,
            {
                bundle.ranker_features.index(n): values[:, k]
                for k, n in enumerate(HISTORY_FEATURES)
                if n in bundle.ranker_features
            },
        )
    scores = serving.scores(bundle, rows, bundle.rank(X))
    order = np.lexsort((rows.columns["fused_rank"], -scores))[:K]
    return rows.items[order].tolist(), scores[order], X, rows


@pytest.mark.parametrize(
    ("repeats", "new_user_order"),
    [(False, None), (True, None), (False, "popular_for_profile_rank")],
)
def test_served_union_ranks_as_training_does(
    tmp_path: Path, repeats: bool, new_user_order: str | None
) -> None:
    profiles = drawn_profiles(5, users=80)
    trained, bundle, events, cut = version(tmp_path, repeats, None, profiles, new_user_order)
    serving = UnionServing.load(bundle)
    assert "popular_for_profile" in serving.names
    assert any(name.startswith("popular_for_profile") for name in bundle.ranker_features)
    online = profiles.set_index("user_id")
    users = [*sorted(events["user_id"].unique())[::9], "u82", "u84", "someone-new"]
    assert not events["user_id"].isin(["u82", "u84"]).any()  # a profile, no event
    want = trained.recommend(users, K)
    expected_rows = trained.sources.rows(trained.history, users, trained.cfg)
    for user in users:
        mine = events[events["user_id"] == user]
        assert len(mine) <= RECENT_MAX  # the recent list holds the whole history
        profile = online.loc[user].to_dict() if user in online.index else None
        items, scores, X, rows = served(serving, bundle, mine, cut.timestamp(), profile)
        expected = want[want["user_id"] == user]
        assert items == expected["item_id"].tolist(), user
        np.testing.assert_allclose(scores, expected["score"].to_numpy(), rtol=1e-5, atol=1e-6)
        frame = expected_rows[expected_rows["user_id"] == user].set_index("item_id")
        frame = frame.loc[rows.items]
        for j, name in enumerate(bundle.ranker_features):
            np.testing.assert_allclose(
                X[:, j], frame[name].to_numpy(np.float64), rtol=1e-6, atol=1e-6, err_msg=name
            )
    if new_user_order is not None:  # people without history get the profile source's order
        for user in ("u82", "u84", "someone-new"):
            profile = online.loc[user].to_dict() if user in online.index else None
            items, _, _, rows = served(serving, bundle, events.iloc[:0], cut.timestamp(), profile)
            ranks = rows.columns[new_user_order]
            by_order = rows.items[np.lexsort((rows.columns["fused_rank"], ranks))][:K]
            assert items == by_order.tolist(), user


@pytest.mark.parametrize("keep", ["ease_rank", "retrieval_rank"])
def test_a_version_that_keeps_an_order_serves_that_order(tmp_path: Path, keep: str) -> None:
    trained, bundle, events, cut = version(tmp_path, False, keep)
    assert bundle.ranker_features == [keep]
    serving = UnionServing.load(bundle)
    users = sorted(events["user_id"].unique())[::9]
    want = trained.recommend(users, K)
    rows_of = trained.sources.rows(trained.history, users, trained.cfg)
    for user in users:
        items, *_ = served(serving, bundle, events[events["user_id"] == user], cut.timestamp())
        assert items == want.loc[want["user_id"] == user, "item_id"].tolist(), user
        mine = rows_of[rows_of["user_id"] == user]
        column = "fused_rank" if keep == "retrieval_rank" else keep
        by_order = mine.sort_values([column, "fused_rank"], kind="stable")["item_id"]
        assert items == by_order.head(K).tolist(), user


def test_a_variant_mix_restricts_the_sources_and_names_the_field(tmp_path: Path) -> None:
    _, bundle, events, cut = version(tmp_path, False)
    serving = UnionServing.load(bundle)
    mine = events[events["user_id"] == events["user_id"].iloc[0]]
    history, recent = redis_state(mine)
    only, rows = serving.candidates(
        bundle, {}, user_events(history, recent), cut.timestamp(), sources=["popularity"]
    )
    assert len(only) and rows.columns["n_sources"].max() == 1
    assert "ease_rank" not in rows.columns
    with pytest.raises(SourceMixError, match=r"variants\[1\]\.sources.*'nope'.*popularity"):
        serving.mix(["nope"], "variants[1].sources")


def test_an_experiment_variant_applies_its_source_mix(tmp_path: Path) -> None:
    from tests.serving.test_experiments import Graph, folder_with, router

    (tmp_path / "v").mkdir()
    _, bundle, _, _ = version(tmp_path / "v", False)
    served = Graph()
    served.pipeline.union = UnionServing.load(bundle)
    variants = [{"name": "control", "weight": 0.5}, {"name": "narrow", "weight": 0.5}]
    experiment = {"name": "mix", "salt": "mix-salt", "layer": "home", "start": "2026-01-01"}
    narrow = {**variants[1], "sources": ["popularity", "ease"]}
    (tmp_path / "ok").mkdir()
    made = router(
        folder_with(tmp_path / "ok", {**experiment, "variants": [variants[0], narrow]}),
        Keys("unit"),
    )
    made.check_sources(served)
    for n in range(40):
        asyncio.run(made.recommend(served, Request(f"user{n}"), False))
    mixed = [r for r in served.asked if r.sources is not None]
    assert 0 < len(mixed) < len(served.asked)
    assert {r.sources for r in mixed} == {("popularity", "ease")}
    # A source the version does not have (no item has a category_l1): an error naming it.
    lacking = {**variants[1], "sources": ["popular_in_category_l1"]}
    (tmp_path / "bad").mkdir()
    bad = router(
        folder_with(tmp_path / "bad", {**experiment, "variants": [variants[0], lacking]}),
        Keys("unit"),
    )
    with pytest.raises(SourceMixError, match=r"experiment mix: variants\[1\]\.sources"):
        bad.check_sources(served)


def test_the_pipeline_answers_known_and_new_users_with_the_union(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from serving.config import ServingConfig
    from serving.pipeline import RecommendPipeline, UserState

    trained, bundle, events, cut = version(tmp_path, False)
    table = ItemTable(pd.DataFrame({"item_id": bundle.item_ids}))
    reader = SimpleNamespace(
        items=table,
        request_item_features=set(),
        user_feature_names=[],
        catalogue_on_demand=lambda ts: {},
        with_context=lambda user, device, country, ts: {
            **user,
            "request_device": device,
            "request_country": country,
            "request_ts": ts,
        },
    )
    pipeline = RecommendPipeline(bundle, reader, ServingConfig())  # type: ignore[arg-type]
    assert pipeline.union is not None and pipeline.reads_history
    when = datetime.fromtimestamp(cut.timestamp(), UTC)
    for user in [sorted(events["user_id"].unique())[3], "someone-new"]:
        mine = events[events["user_id"] == user].sort_values("timestamp", kind="stable")
        history, recent = redis_state(mine) if len(mine) else (None, [])
        state = UserState({}, None, set(), set(mine["item_id"]), bool(len(mine)), history, recent)
        last = mine.tail(1)
        req = Request(
            user,
            K,
            device=last["device"].iloc[0] if len(last) else None,
            country=last["country"].iloc[0] if len(last) else None,
            timestamp=when,
        )
        answer = pipeline.answer(req, state)
        want = trained.recommend([user], K)["item_id"].tolist()
        assert [i["item_id"] for i in answer.body["items"]] == want, user
        assert not answer.cold_start and answer.known == bool(len(mine))
