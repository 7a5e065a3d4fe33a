"""The learning-to-rank stage: candidates -> ranking_v1 features -> XGBoost ranker -> top k.

    candidates (user_id, item_id, retrieval_score, retrieval_rank, event_timestamp, ...)
      --ranking_examples(store)--> get_historical_features(feature service ranking_v1)
                                   + retrieval score/rank + cross_features
                                   = Examples(X ordered columns, y, groups per user)
      --train_ranker(cfg)--> RankerResult (xgboost.XGBRanker) --save--> folder (JSON)

`Reranker` wraps any harness recommender (EASE, ItemCooccurrence, later the two-tower
retriever) and is itself one: `fit` cuts the history at `cut_days` before its end, fits
the candidate model on the part before the cut, labels each user's top-N candidates with
the items they interacted with positively after the cut (the harness's own definition of
relevant: `training.split.window_truth`), trains the ranker, then refits the candidate
model on the whole history; `recommend` reranks that model's top-N at the end of the
history.

The feature list is read from the Feast feature service, never copied by hand: Feast
field types decide which columns are numeric, which are categorical (pandas 'category',
categories fixed at training time and saved with the model) and which are dropped (lists
and free text feed only `cross_features`; absolute epochs only the on-demand views).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xgboost as xgb
from pydantic import BaseModel, ConfigDict, Field

from training.config import SplitParams
from training.cross_features import CROSS_FEATURES, cross_features
from training.split import window_truth

FEATURE_SERVICE = "ranking_v1"
RETRIEVAL_FEATURES = ("retrieval_score", "retrieval_rank")
# Identity-like or free-text values: they would let the ranker memorise rows.
EXCLUDED_FEATURES = frozenset({"title", "signup_epoch", "created_epoch", "brand", "category"})
EXCLUDED_CATEGORICAL = frozenset({"rt_last_category"})  # used through cross_features only
MODEL_FILE, META_FILE = "model.json", "ranker.json"


class RankerConfig(BaseModel):
    """XGBoost ranker settings and how its training examples are made.

    Defaults: the better of two settings tried on the 5,000-user demo set (depth 6 /
    lr 0.1 / min_child_weight 1 stopped at round 8 and lost to EASE's own order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    objective: Literal["rank:ndcg", "rank:pairwise"] = "rank:ndcg"
    n_estimators: int = Field(500, ge=1)
    max_depth: int = Field(4, ge=1)
    learning_rate: float = Field(0.05, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(20.0, ge=0)
    seed: int = 0
    n_candidates: int = Field(200, ge=1, description="Candidates per user to rerank.")
    early_stopping_rounds: int = Field(40, ge=1)
    n_jobs: int = Field(2, ge=1)
    cut_days: float = Field(7, gt=0, description="Label window at the end of the history.")
    validation_share: float = Field(
        0.2, ge=0, lt=1, description="Share of labelled users held out for early stopping."
    )
    max_train_users: int | None = Field(
        None, ge=1, description="Sample at most this many labelled users (seeded)."
    )


@dataclass
class Examples:
    """Rows sorted by user: X (ordered features), y (0/1), groups (rows per user, in order),
    keys (user_id, item_id, retrieval_rank of each row), categorical (columns of X that are
    categories, from the feature service's String fields)."""

    X: pd.DataFrame
    y: np.ndarray
    groups: np.ndarray
    keys: pd.DataFrame
    categorical: list[str] = field(default_factory=list)

    def subset(self, users: Iterable[str]) -> Examples:
        mask = self.keys["user_id"].isin(set(users)).to_numpy()
        keys = self.keys[mask].reset_index(drop=True)
        groups = keys.groupby("user_id", sort=False).size().to_numpy()
        X = self.X[mask].reset_index(drop=True)
        return Examples(X, self.y[mask], groups, keys, self.categorical)


@dataclass
class RankerResult:
    """A trained ranker and everything needed to feed it the same columns again."""

    model: xgb.XGBRanker
    config: RankerConfig
    feature_names: list[str]
    categories: dict[str, list[str]]
    feature_service: str = FEATURE_SERVICE
    metrics: dict[str, Any] = field(default_factory=dict)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict(encode(X, self.feature_names, self.categories))


def feature_columns(store: Any, service: str = FEATURE_SERVICE) -> tuple[list[str], list[str]]:
    """(numeric, categorical) model inputs of the feature service, in service order."""
    from feast.types import Array, String

    numeric, categorical = [], []
    for projection in store.get_feature_service(service).feature_view_projections:
        for f in projection.features:
            if f.name in EXCLUDED_FEATURES or isinstance(f.dtype, Array):
                continue
            if f.dtype == String:
                if f.name not in EXCLUDED_CATEGORICAL:
                    categorical.append(f.name)
            else:  # Int64, Float32/64 and Bool (as 0/1)
                numeric.append(f.name)
    return numeric, categorical


def ranking_examples(
    store: Any,
    candidates: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    service: str = FEATURE_SERVICE,
) -> Examples:
    """Point-in-time ranking_v1 features of every candidate row, plus retrieval and cross
    features. `candidates` may carry request_device / request_country (None otherwise:
    UTC daypart, no device share); request_ts is taken from event_timestamp."""
    needed = ["user_id", "item_id", *RETRIEVAL_FEATURES, "event_timestamp"]
    missing = [c for c in needed if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates lack column(s) {missing}; got {list(candidates.columns)}")
    rows = candidates.sort_values(["user_id", "retrieval_rank"], kind="stable")
    rows = rows.reset_index(drop=True).assign(_row=lambda f: np.arange(len(f)))
    stamps = pd.to_datetime(rows["event_timestamp"], utc=True)
    entity = pd.DataFrame(
        {
            "user_id": rows["user_id"].astype(str),
            "item_id": rows["item_id"].astype(str),
            "event_timestamp": stamps,
            "request_device": _strings(rows, "request_device"),
            "request_country": _strings(rows, "request_country"),
            "request_ts": (stamps.astype("int64") // 10**9).astype("int64"),
            "_row": rows["_row"],
        }
    )
    fetched = store.get_historical_features(
        entity_df=entity, features=store.get_feature_service(service)
    ).to_df()
    fetched = fetched.sort_values("_row").reset_index(drop=True)
    if len(fetched) != len(rows):
        raise ValueError(f"Feast returned {len(fetched)} rows for {len(rows)} candidates")
    numeric, categorical = feature_columns(store, service)
    X = pd.concat(
        [
            fetched[numeric + categorical],
            rows[list(RETRIEVAL_FEATURES)].astype(np.float64),
            cross_features(fetched),
        ],
        axis=1,
    )
    X = X[[*RETRIEVAL_FEATURES, *CROSS_FEATURES, *numeric, *categorical]]
    y = np.zeros(len(rows))
    if labels is not None and len(labels):
        hit = rows[["user_id", "item_id"]].merge(
            labels.assign(_y=labels.get("label", 1.0)), on=["user_id", "item_id"], how="left"
        )["_y"]
        y = hit.fillna(0.0).to_numpy(np.float64)
    groups = rows.groupby("user_id", sort=False).size().to_numpy()
    keys = rows[["user_id", "item_id", "retrieval_rank"]].copy()
    return Examples(X, y, groups, keys, categorical)


def encode(
    X: pd.DataFrame, feature_names: list[str], categories: dict[str, list[str]]
) -> pd.DataFrame:
    """Model input: the saved column order; categoricals with the training categories
    (unseen values become missing), everything else float64."""
    missing = [c for c in feature_names if c not in X.columns]
    if missing:
        raise ValueError(f"ranker input lacks feature(s) {missing}")
    out = {}
    for name in feature_names:
        if name in categories:
            values = X[name].astype(object)
            values = values.where(values.isna(), values.astype(str))
            out[name] = pd.Categorical(values, categories=categories[name])
        else:
            out[name] = pd.to_numeric(X[name], errors="coerce").astype(np.float64)
    return pd.DataFrame(out, index=X.index)


def learn_categories(X: pd.DataFrame, columns: Iterable[str]) -> dict[str, list[str]]:
    """Sorted distinct values of each categorical column as seen in training."""
    return {c: sorted(str(v) for v in X[c].dropna().unique()) for c in columns}


def train_ranker(
    cfg: RankerConfig, examples: Examples, validation: Examples | None = None
) -> RankerResult:
    """Fit an XGBRanker (deterministic for cfg.seed); early stopping on `validation`."""
    if not len(examples.y):
        raise ValueError("no training examples: every candidate list was empty")
    names = list(examples.X.columns)
    categories = learn_categories(examples.X, examples.categorical)
    X = encode(examples.X, names, categories)
    model = xgb.XGBRanker(
        objective=cfg.objective,
        n_estimators=cfg.n_estimators,
        max_depth=cfg.max_depth,
        learning_rate=cfg.learning_rate,
        subsample=cfg.subsample,
        colsample_bytree=cfg.colsample_bytree,
        min_child_weight=cfg.min_child_weight,
        random_state=cfg.seed,
        n_jobs=cfg.n_jobs,
        tree_method="hist",
        enable_categorical=True,
        eval_metric="ndcg@10",
        early_stopping_rounds=cfg.early_stopping_rounds if validation is not None else None,
    )
    fit_args: dict[str, Any] = {"qid": _qid(examples.groups), "verbose": False}
    if validation is not None and len(validation.y):
        Xv = encode(validation.X, names, categories)
        fit_args |= {"eval_set": [(Xv, validation.y)], "eval_qid": [_qid(validation.groups)]}
    else:
        model.set_params(early_stopping_rounds=None)
    model.fit(X, examples.y, **fit_args)
    metrics: dict[str, Any] = {"train_rows": len(X), "train_groups": len(examples.groups)}
    if "eval_set" in fit_args:
        metrics |= {
            "best_iteration": int(model.best_iteration),
            "validation_ndcg@10": float(model.best_score),
        }
    return RankerResult(model, cfg, names, categories, metrics=metrics)


def save(result: RankerResult, folder: Path, data_version: str | None = None) -> Path:
    """XGBoost JSON model + ranker.json (ordered features, categories, config, service)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    result.model.save_model(folder / MODEL_FILE)
    meta = {
        "feature_service": result.feature_service,
        "feature_names": result.feature_names,
        "categories": result.categories,
        "config": result.config.model_dump(),
        "metrics": result.metrics,
        "data_version": data_version,
        "xgboost": xgb.__version__,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2))
    return folder


def load(folder: Path) -> RankerResult:
    """The RankerResult saved in `folder`."""
    folder = Path(folder)
    for name in (MODEL_FILE, META_FILE):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} not found: is {folder} a saved ranker?")
    meta = json.loads((folder / META_FILE).read_text())
    model = xgb.XGBRanker()
    model.load_model(folder / MODEL_FILE)
    return RankerResult(
        model,
        RankerConfig(**meta["config"]),
        list(meta["feature_names"]),
        {k: list(v) for k, v in meta["categories"].items()},
        meta["feature_service"],
        meta.get("metrics", {}),
    )


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
        """Train the ranker on a cut inside `train_events`, then refit the candidates."""
        events = train_events.assign(timestamp=pd.to_datetime(train_events["timestamp"], utc=True))
        end = events["timestamp"].max()
        cut = end - pd.Timedelta(days=self.cfg.cut_days)
        before, after = events[events["timestamp"] < cut], events[events["timestamp"] >= cut]
        if before.empty or after.empty:
            raise ValueError(
                f"Reranker: cut_days={self.cfg.cut_days} leaves no events on one side of "
                f"{cut}; the history spans {events['timestamp'].min()} .. {end}"
            )
        labels = window_truth(after, before, self.split_params).relevant
        users = labels["user_id"].drop_duplicates().sort_values()
        if self.cfg.max_train_users and len(users) > self.cfg.max_train_users:
            users = users.sample(self.cfg.max_train_users, random_state=self.cfg.seed)
        model = self._fresh().fit(before, _existing(items, cut))
        candidates = self._candidates(model, users, before, cut)
        examples = ranking_examples(self.store, candidates, labels.assign(label=1.0))
        result = train_ranker(self.cfg, *self._holdout(examples))
        return self.attach(result, self._fresh().fit(events, items), events)

    def attach(self, result: RankerResult, candidate_model: Any, events: pd.DataFrame) -> Reranker:
        """Serve a trained or loaded ranker over a fitted candidate model and its history."""
        events = events.assign(timestamp=pd.to_datetime(events["timestamp"], utc=True))
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
        recs = model.recommend(users, self.cfg.n_candidates, exclude_seen=exclude_seen)
        recs = recs.rename(columns={"score": "retrieval_score", "rank": "retrieval_rank"})
        return recs.merge(_request_context(history), on="user_id", how="left").assign(
            event_timestamp=at
        )

    def _holdout(self, examples: Examples) -> tuple[Examples, Examples | None]:
        """Users with at least one positive; a seeded share of them for early stopping."""
        positive = examples.keys.loc[examples.y > 0, "user_id"].drop_duplicates()
        positive = positive.sort_values().to_numpy()
        if self.cfg.validation_share == 0 or len(positive) < 10:
            return examples.subset(positive), None
        rng = np.random.default_rng(self.cfg.seed)
        held = rng.random(len(positive)) < self.cfg.validation_share
        return examples.subset(positive[~held]), examples.subset(positive[held])


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


def _strings(frame: pd.DataFrame, name: str) -> pd.Series:
    """An optional text column with None (never NaN) where missing: the on-demand views
    test `value or ''`."""
    if name not in frame.columns:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    values = frame[name].astype(object)
    return values.where(values.notna(), None)


def _qid(groups: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(groups)), groups)
