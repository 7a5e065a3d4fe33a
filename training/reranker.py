"""Reranking a candidate model, and the labelled lists the ranker learns from.

    labelled_candidates(candidate factory, history, cfg): for each label window of
      cfg.cut_days, stacked back from the history's end (cfg.label_windows), a fresh
      candidate model fitted on the events before the window gives its top-N for the people
      with a relevant item in the window (the harness's own definition:
      `training.split.window_truth`), labelled 1 / 0; one list (query) per window and person
    --fit_ranker(store)--> ranking_examples (Feast, training.ranker) --> train_ranker, with a
      seeded share of people held out for early stopping

`Reranker` wraps any harness recommender (EASE, ItemCooccurrence, the two-tower retriever)
and is itself one: `fit` runs both steps on its history and refits the candidate model on
the whole history; `recommend` reranks that model's top-N at the end of the history. The
training pipeline runs the same functions split into its DVC stages (training.pipeline).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from training.config import SplitParams
from training.ranker import (
    Examples,
    RankerConfig,
    RankerResult,
    ranking_examples,
    train_ranker,
)
from training.split import window_truth


class Reranker:
    """A harness recommender: `candidate_model`'s top-N reranked by an XGBoost ranker."""

    name = "reranker"

    def __init__(
        self,
        candidate_model: Any,
        store: Any,
        cfg: RankerConfig | None = None,
        split_params: SplitParams | None = None,
    ) -> None:
        # A model to copy, or a factory returning a fresh unfitted model (for models that hold
        # a Feast store, which must be shared rather than copied).
        self.template = candidate_model
        self.store = store
        self.cfg = cfg or RankerConfig()
        self.split_params = split_params or SplitParams()

    def fit(self, train_events: pd.DataFrame, items: pd.DataFrame | None) -> Reranker:
        """Train the ranker on label windows inside `train_events`, then refit the candidates."""
        events = _utc(train_events)
        candidates = labelled_candidates(self._fresh, events, items, self.cfg, self.split_params)
        result = fit_ranker(self.store, candidates, self.cfg)
        return self.attach(result, self._fresh().fit(events, items), events)

    def attach(self, result: RankerResult, candidate_model: Any, events: pd.DataFrame) -> Reranker:
        """Serve a trained or loaded ranker over a fitted candidate model and its history."""
        events = _utc(events)
        self.result, self.candidate_model = result, candidate_model
        self.history, self.at = events, events["timestamp"].max() + pd.Timedelta(seconds=1)
        return self

    def _fresh(self) -> Any:
        if callable(self.template) and not hasattr(self.template, "fit"):
            return self.template()
        return copy.deepcopy(self.template)

    def recommend(self, user_ids: Iterable[str], k: int, exclude_seen: bool = True) -> pd.DataFrame:
        """Rerank the candidate model's top-N at the end of the fitted history; top k."""
        if not hasattr(self, "result"):
            raise RuntimeError("Reranker: call fit() before recommend()")
        if k < 1:
            raise ValueError(f"Reranker: k must be >= 1, got {k}")
        users = pd.unique(pd.Series(list(user_ids), dtype=object).astype(str))
        candidates = self._candidates(
            self.candidate_model, users, self.history, self.at, exclude_seen
        )
        if candidates.empty:
            return pd.DataFrame({"user_id": [], "item_id": [], "rank": [], "score": []})
        examples = ranking_examples(self.store, candidates)
        scored = examples.keys.assign(score=self.result.predict(examples.X))
        scored = scored.sort_values(
            ["user_id", "score", "retrieval_rank"], ascending=[True, False, True], kind="stable"
        )
        scored["rank"] = scored.groupby("user_id", sort=False).cumcount() + 1
        top = scored[scored["rank"] <= k]
        return top[["user_id", "item_id", "rank", "score"]].reset_index(drop=True)

    def _candidates(
        self,
        model: Any,
        users: Iterable[str],
        history: pd.DataFrame,
        at: pd.Timestamp,
        exclude_seen: bool = True,
    ) -> pd.DataFrame:
        return candidates_at(model, users, history, at, self.cfg.n_candidates, exclude_seen)


def candidates_at(
    model: Any,
    users: Iterable[str],
    history: pd.DataFrame,
    at: pd.Timestamp,
    n: int,
    exclude_seen: bool = True,
) -> pd.DataFrame:
    """`model`'s top-n of `users` as ranker input rows, requested at `at` from the context
    of each user's last event in `history`."""
    recs = model.recommend(users, n, exclude_seen=exclude_seen)
    recs = recs.rename(columns={"score": "retrieval_score", "rank": "retrieval_rank"})
    return recs.merge(_request_context(history), on="user_id", how="left").assign(
        event_timestamp=at
    )


def labelled_candidates(
    candidate_factory: Callable[[], Any],
    events: pd.DataFrame,
    items: pd.DataFrame | None,
    cfg: RankerConfig,
    split_params: SplitParams,
) -> pd.DataFrame:
    """The ranker's training lists: for each of `cfg.label_windows` windows of `cut_days`
    stacked back from the end of `events`, a fresh candidate model fitted on the events
    before the window gives the top-n of the users with a relevant item in it (the
    harness's definition: `training.split.window_truth`); rows are labelled 1 when relevant.

    Columns: candidates_at's, then label, window (0 = the latest), query (window|user)."""
    events = _utc(events)
    start, end = events["timestamp"].min(), events["timestamp"].max()
    frames = []
    for window in range(cfg.label_windows):
        cut = end - pd.Timedelta(days=cfg.cut_days * (window + 1))
        ts = events["timestamp"]
        inside = ts >= cut
        if window:  # the latest window runs to the last event, included
            inside &= ts < cut + pd.Timedelta(days=cfg.cut_days)
        before, after = events[ts < cut], events[inside]
        if before.empty or after.empty:
            raise ValueError(
                f"label window {window} (cut_days={cfg.cut_days}, label_windows="
                f"{cfg.label_windows}) starts at {cut}: it needs events before and inside "
                f"it, and the history runs {start} .. {end}; lower training.ranker.label_windows"
            )
        labels = window_truth(after, before, split_params).relevant
        users = labels["user_id"].drop_duplicates().sort_values()
        if cfg.max_train_users and len(users) > cfg.max_train_users:
            users = users.sample(cfg.max_train_users, random_state=cfg.seed + window)
        model = candidate_factory().fit(before, _existing(items, cut))
        rows = candidates_at(model, users, before, cut, cfg.n_candidates)
        rows = rows.merge(labels.assign(label=1.0), on=["user_id", "item_id"], how="left")
        frames.append(
            rows.assign(
                label=rows["label"].fillna(0.0),
                window=window,
                query=f"{window}|" + rows["user_id"].astype(str),
            )
        )
    return pd.concat(frames, ignore_index=True)


def fit_ranker(store: Any, candidates: pd.DataFrame, cfg: RankerConfig) -> RankerResult:
    """Ranking examples of labelled candidate lists (labelled_candidates) from Feast, then
    the XGBoost ranker with a seeded share of users held out for early stopping."""
    examples = ranking_examples(store, candidates)
    return train_ranker(cfg, *_holdout(examples, cfg))


def _holdout(examples: Examples, cfg: RankerConfig) -> tuple[Examples, Examples | None]:
    """Users with at least one positive; a seeded share of them for early stopping."""
    positive = examples.keys.loc[examples.y > 0, "user_id"].drop_duplicates()
    positive = positive.sort_values().to_numpy()
    if cfg.validation_share == 0 or len(positive) < 10:
        return examples.subset(positive), None
    rng = np.random.default_rng(cfg.seed)
    held = rng.random(len(positive)) < cfg.validation_share
    return examples.subset(positive[~held]), examples.subset(positive[held])


def _utc(events: pd.DataFrame) -> pd.DataFrame:
    return events.assign(timestamp=pd.to_datetime(events["timestamp"], utc=True))


def _request_context(history: pd.DataFrame) -> pd.DataFrame:
    """Each user's device and country at their last event: the request we expect next
    (a live request carries its own)."""
    cols = [c for c in ("device", "country") if c in history.columns]
    last = history.sort_values("timestamp", kind="stable").groupby("user_id").tail(1)
    return last[["user_id", *cols]].rename(
        columns={"device": "request_device", "country": "request_country"}
    )


def _existing(items: pd.DataFrame | None, at: pd.Timestamp) -> pd.DataFrame | None:
    if items is None or "created_at" not in items.columns:
        return items
    created = pd.to_datetime(items["created_at"], utc=True)
    return items[created.isna() | (created < at)]
