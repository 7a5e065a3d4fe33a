"""Tuning: the spaces only name real config fields and sample valid configs; a tiny
Ray Tune search over the ranker on the feature world returns a valid best config."""

from __future__ import annotations

import functools
import time

import numpy as np
import pandas as pd
import pytest

from training.baselines import EASE
from training.config import SplitParams, TuneParams
from training.ranker import RankerConfig
from training.retrieval import RetrievalConfig
from training.split import read_events, read_items, temporal_split
from training.tune import (
    RANKER_SPACE,
    RETRIEVAL_SPACE,
    TuneOutcome,
    build_config,
    save,
    tune_ranker,
    tune_retrieval,
    validation_only,
)

SPACES = [(RETRIEVAL_SPACE, RetrievalConfig()), (RANKER_SPACE, RankerConfig())]


@pytest.mark.parametrize(("space", "base"), SPACES)
def test_spaces_sample_only_fields_of_the_config(space, base) -> None:  # type: ignore[no-untyped-def]
    assert set(space) <= set(type(base).model_fields)
    rng = np.random.default_rng(0)
    for _ in range(200):
        sampled = {name: domain.sample(rng) for name, domain in space.items()}
        assert all(space[n].contains(v) for n, v in sampled.items())
        cfg = build_config(base, sampled)  # the model validates every value
        assert all(getattr(cfg, n) == v for n, v in sampled.items())
    # The defaults lie inside the space, so the base config can be the first trial.
    assert all(domain.contains(getattr(base, n)) for n, domain in space.items())


def test_build_config_rejects_unknown_and_invalid_values() -> None:
    with pytest.raises(ValueError, match="no field"):
        build_config(RankerConfig(), {"max_leaves": 3})
    with pytest.raises(ValueError):
        build_config(RankerConfig(), {"subsample": 1.5})
    with pytest.raises(ValueError, match="metric"):
        TuneParams(metric="ndcg")


def test_save_writes_config_trials_and_plot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    trials = pd.DataFrame(
        {"trial": [0, 1, 2], "max_depth": [3, 5, 4], "ndcg@10": [0.1, np.nan, 0.2]}
    ).assign(status=["TERMINATED", "ERROR", "TERMINATED"], seconds=[1.0, 0.5, 2.0])
    outcome = TuneOutcome(RankerConfig(max_depth=4), 0.2, "ndcg@10", trials)
    folder = save(outcome, tmp_path / "tuning")
    assert (
        RankerConfig.model_validate_json((folder / "best_config.json").read_text()).max_depth == 4
    )
    assert len(pd.read_csv(folder / "trials.csv")) == 3
    assert (folder / "history.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_tiny_ranker_search_on_the_feature_world(feature_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clean = feature_world.clean
    split = temporal_split(read_events(clean), SplitParams(), read_items(clean))
    assert validation_only(split).test.empty and not split.test.empty
    base = RankerConfig(n_candidates=20, max_train_users=150, validation_share=0.0, seed=3)
    params = TuneParams(
        num_samples=2, time_budget_s=60, max_concurrent_trials=2, seed=1, storage=tmp_path / "ray"
    )
    started = time.perf_counter()
    outcome = tune_ranker(
        feature_world.settings, split, functools.partial(EASE, lambda_=100.0), base, params
    )
    print(f"\ntune_ranker {time.perf_counter() - started:.1f}s, timings {outcome.timings}")
    print(outcome.trials.to_string())
    assert isinstance(outcome.best_config, RankerConfig)
    assert outcome.best_config.n_candidates == 20  # base fields the space leaves alone
    assert len(outcome.trials) == 2 and set(outcome.trials["status"]) == {"TERMINATED"}
    assert 0.0 <= outcome.best_metric <= 1.0
    assert outcome.best_metric == outcome.trials["ndcg@10"].max()
    # The base config ran as the first trial.
    assert outcome.trials.loc[0, "max_depth"] == base.max_depth
    folder = save(outcome, tmp_path / "tuning")
    assert {p.name for p in folder.iterdir()} == {"best_config.json", "trials.csv", "history.png"}


@pytest.mark.slow
def test_tiny_retrieval_search_reports_every_epoch(feature_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clean = feature_world.clean
    split = temporal_split(read_events(clean), SplitParams(), read_items(clean))
    base = RetrievalConfig(
        embedding_dim=8, hidden_layers=(16,), epochs=3, batch_size=256, history_items=3,
        validation_n=20, patience=3, seed=3,
    )  # fmt: skip
    space = {"temperature": RETRIEVAL_SPACE["temperature"]}
    params = TuneParams(
        num_samples=2, time_budget_s=120, max_concurrent_trials=2, seed=1, metric="recall@20",
        storage=tmp_path / "ray",
    )  # fmt: skip
    outcome = tune_retrieval(feature_world.settings, split, base, params, space)
    print(outcome.trials.to_string())
    assert isinstance(outcome.best_config, RetrievalConfig)
    assert outcome.best_config.history_items == 3  # base fields the space leaves alone
    assert set(outcome.trials["status"]) == {"TERMINATED"}
    # One report per epoch: ASHA (max_t = 3 epochs) could stop a trial at each one.
    assert outcome.trials["reports"].between(1, 3).all() and outcome.trials["reports"].max() == 3
    assert 0.0 <= outcome.best_metric <= 1.0
    assert outcome.trials.loc[0, "temperature"] == base.temperature
