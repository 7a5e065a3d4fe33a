"""The learning-to-rank stage: candidates -> ranking_v1 features -> XGBoost ranker -> top k.

    candidates (query, user_id, item_id, retrieval_score, retrieval_rank, event_timestamp,
                label, ...)
      --ranking_examples(store)--> get_historical_features(feature service ranking_v1)
                                   + retrieval score/rank + cross_features
                                   = Examples(X ordered columns, y, groups per query)
      --train_ranker(cfg)--> RankerResult (xgboost.XGBRanker) --save--> folder (JSON)

Where the candidate lists come from and how a ranker reranks a candidate model is
`training.reranker`.

The feature list is read from the Feast feature service, never copied by hand: Feast
field types decide which columns are numeric, which are categorical (pandas 'category',
categories fixed at training time and saved with the model) and which are dropped (lists
and free text feed only `cross_features`; absolute epochs only the on-demand views).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xgboost as xgb
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tailwise.features.cross import CROSS_FEATURES, cross_features
from tailwise.features.point_in_time import historical_features
from tailwise.repeats import HISTORY_FEATURES

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

    candidates: Literal["two_tower", "union"] = Field(
        "two_tower",
        description="Where the lists to rank come from: the two-tower's top n_candidates "
        "or the union of every candidate source (training.union; serving runs the same "
        "sources from the version's sources/ folder, serving.union).",
    )
    n_per_source: int = Field(
        100, ge=1, description="candidates: union -- each source's top N in the union."
    )
    two_tower_source: bool = Field(
        True,
        description="candidates: union -- the two-tower retriever is one of the sources. "
        "It is the one source that is slow to fit (a training run per label window); "
        "false leaves it out of the union.",
    )
    union: dict[str, Any] = Field(
        default_factory=dict,
        description="candidates: union -- settings of this model that replace the ones "
        "above for the union ranker only (the two-tower ranker keeps its own).",
    )
    negatives: int | None = Field(
        None,
        ge=1,
        description="candidates: union -- keep at most this many non-relevant rows per "
        "training list (the best by fused rank, then a seeded sample); null keeps all.",
    )
    objective: Literal["rank:ndcg", "rank:pairwise"] = "rank:ndcg"
    lambdarank_pair_method: Literal["topk", "mean"] = "topk"
    lambdarank_num_pair_per_sample: int | None = Field(
        None, ge=1, description="XGBoost's pairs per row (null: its default for the method)."
    )
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
    fetch_workers: int = Field(
        1,
        ge=1,
        le=1024,
        description="Ray tasks that fetch the training examples' point-in-time features "
        "over user shards (1: in this process; RAY_ADDRESS joins a cluster).",
    )
    cut_days: float = Field(7, gt=0, description="Length of each label window.")
    label_windows: int = Field(
        1,
        ge=1,
        description="Label windows stacked back from the end of the history, each cut_days "
        "long: the ranker learns from the candidates of every one.",
    )
    validation_share: float = Field(
        0.2,
        ge=0,
        le=0.3,
        description="Share of labelled users held out for early stopping, and as much again "
        "for the guard that checks the ranker against its candidates' order (0: neither).",
    )
    max_train_users: int | None = Field(
        None, ge=1, description="Sample at most this many labelled users (seeded)."
    )
    cross_fit_below: int = Field(
        1000,
        ge=0,
        description="With fewer labelled users than this (users with a relevant item), "
        "the boosting rounds and the check against the candidates' order come from 5-fold "
        "cross-fitting over users instead of two held-out shares (one split of a few "
        "hundred users is mostly noise); 0: never.",
    )

    @model_validator(mode="before")
    @classmethod
    def _union_settings(cls, data: Any) -> Any:
        """With candidates: union, the `union` settings replace the shared ones."""
        if not isinstance(data, dict):
            return data
        overrides = data.get("union") or {}
        if not isinstance(overrides, dict):
            raise ValueError(
                f"training.ranker.union must map ranker settings to values, got {overrides!r}"
            )
        allowed = set(cls.model_fields) - {"candidates", "union"}
        unknown = sorted(set(overrides) - allowed)
        if unknown:
            raise ValueError(
                f"training.ranker.union: unknown setting(s) {unknown}; allowed: {sorted(allowed)}"
            )
        return {**data, **overrides} if data.get("candidates") == "union" else data

    def for_union(self) -> RankerConfig:
        """This configuration as the union ranker uses it (the `union` settings applied)."""
        return RankerConfig.model_validate({**self.model_dump(), "candidates": "union"})


@dataclass
class Examples:
    """Rows sorted by query: X (ordered features), y (0/1), groups (rows per query, in order),
    keys (query, user_id, item_id, retrieval_rank of each row; a query is one user's list,
    at one label window when there are several), categorical (columns of X that are
    categories, from the feature service's String fields)."""

    X: pd.DataFrame
    y: np.ndarray
    groups: np.ndarray
    keys: pd.DataFrame
    categorical: list[str] = field(default_factory=list)

    def subset(self, users: Iterable[str]) -> Examples:
        """The lists of `users` (every label window of theirs)."""
        return self.where(self.keys["user_id"].isin(set(users)).to_numpy())

    def where(self, mask: np.ndarray) -> Examples:
        """The rows where `mask` holds (whole lists: a mask that splits one is an error)."""
        mask = np.asarray(mask, dtype=bool)
        codes, queries = pd.factorize(self.keys["query"].to_numpy())
        kept = np.bincount(codes, weights=mask, minlength=len(queries))
        split = (kept > 0) & (kept < np.bincount(codes, minlength=len(queries)))
        if split.any():
            raise ValueError(f"Examples.where: the mask splits list(s) {list(queries[split])}")
        keys = self.keys[mask].reset_index(drop=True)
        runs = codes[mask]  # a query's rows are consecutive: its group is one run
        starts = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1]]) if len(runs) else runs
        groups = np.diff(np.r_[starts, len(runs)]).astype(np.int64)
        X = self.X[mask]
        X.index = pd.RangeIndex(len(X))  # not reset_index: that copies every column again
        return Examples(X, self.y[mask], groups, keys, self.categorical)


@dataclass
class RankerResult:
    """A trained ranker and everything needed to feed it the same columns again."""

    model: xgb.XGBRanker | xgb.XGBRegressor
    config: RankerConfig
    feature_names: list[str]
    categories: dict[str, list[str]]
    feature_service: str = FEATURE_SERVICE
    metrics: dict[str, Any] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)  # constant or all-null in training

    @property
    def new_user_order(self) -> str | None:
        """The rank column that orders the lists of people with no event before the
        request, when the check chose one (training.reranker._new_user_check)."""
        order = self.metrics.get("new_user_order")
        return None if order is None else str(order)

    def predict(self, X: pd.DataFrame, rounds: int | None = None) -> np.ndarray:
        """Scores of X's rows; `rounds`: from the first that many boosting rounds only."""
        encoded = encode(X, self.feature_names, self.categories)
        if rounds is None:
            return self.model.predict(encoded)
        return self.model.predict(encoded, iteration_range=(0, rounds))


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
    extra: Sequence[str] = (),
    workers: int = 1,
) -> Examples:
    """Point-in-time ranking_v1 features of every candidate row, plus retrieval and cross
    features. `candidates` may carry request_device / request_country (None otherwise:
    UTC daypart, no device share); request_ts is taken from event_timestamp. A `query`
    column groups rows into lists (default: one list per user_id); a `label` column gives
    y when `labels` (user_id, item_id[, label]) is not given. `extra` names further numeric
    columns of `candidates` to feed as they are (the union's source features). `workers` > 1
    fetches the point-in-time features in Ray tasks over user shards
    (tailwise.features.point_in_time.historical_features): the same examples."""
    needed = ["user_id", "item_id", *RETRIEVAL_FEATURES, "event_timestamp", *extra]
    missing = [c for c in needed if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates lack column(s) {missing}; got {list(candidates.columns)}")
    if "query" not in candidates.columns:
        candidates = candidates.assign(query=candidates["user_id"].astype(str))
    rows = candidates.sort_values(["query", "retrieval_rank"], kind="stable")
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
    fetched = historical_features(store, entity, service, workers)
    fetched = fetched.sort_values("_row").reset_index(drop=True)
    if len(fetched) != len(rows):
        raise ValueError(f"Feast returned {len(fetched)} rows for {len(rows)} candidates")
    numeric, categorical = feature_columns(store, service)
    history = [name for name in HISTORY_FEATURES if name in rows.columns]
    X = pd.concat(
        [
            fetched[numeric + categorical],
            rows[list(RETRIEVAL_FEATURES) + history + list(extra)].astype(np.float64),
            # One user's rows at one instant and request share every user input.
            cross_features(fetched, _owners(entity)),
        ],
        axis=1,
    )
    X = X[[*RETRIEVAL_FEATURES, *history, *extra, *CROSS_FEATURES, *numeric, *categorical]]
    X = X.copy()  # one block per dtype: selecting lists' rows (Examples.where) is then cheap
    y = np.zeros(len(rows))
    if labels is not None and len(labels):
        hit = rows[["user_id", "item_id"]].merge(
            labels.assign(_y=labels.get("label", 1.0))[["user_id", "item_id", "_y"]],
            on=["user_id", "item_id"],
            how="left",
        )["_y"]
        y = hit.fillna(0.0).to_numpy(np.float64)
    elif "label" in rows.columns:
        y = rows["label"].fillna(0.0).to_numpy(np.float64)
    groups = rows.groupby("query", sort=False).size().to_numpy()
    keys = rows[["query", "user_id", "item_id", "retrieval_rank"]].copy()
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


def xgboost_params(cfg: RankerConfig) -> dict[str, Any]:
    """The XGBRanker settings of `cfg` (early stopping on, NDCG@10 on the stopping set)."""
    params: dict[str, Any] = {
        "objective": cfg.objective,
        "n_estimators": cfg.n_estimators,
        "max_depth": cfg.max_depth,
        "learning_rate": cfg.learning_rate,
        "subsample": cfg.subsample,
        "colsample_bytree": cfg.colsample_bytree,
        "min_child_weight": cfg.min_child_weight,
        "random_state": cfg.seed,
        "n_jobs": cfg.n_jobs,
        "tree_method": "hist",
        "enable_categorical": True,
        "eval_metric": "ndcg@10",
        "early_stopping_rounds": cfg.early_stopping_rounds,
        "lambdarank_pair_method": cfg.lambdarank_pair_method,
    }
    if cfg.lambdarank_num_pair_per_sample is not None:
        params["lambdarank_num_pair_per_sample"] = cfg.lambdarank_num_pair_per_sample
    return params


def train_ranker(
    cfg: RankerConfig,
    examples: Examples,
    validation: Examples | None = None,
    curve: bool = False,
) -> RankerResult:
    """Fit an XGBRanker (deterministic for cfg.seed); early stopping on `validation`.
    With `curve`, validation's NDCG@10 after each round fitted is in
    metrics['validation_curve']."""
    if not len(examples.y):
        raise ValueError("no training examples: every candidate list was empty")
    dropped = uninformative(examples.X)
    names = [c for c in examples.X.columns if c not in dropped]
    if not names:
        raise ValueError(f"every ranker feature is constant or empty in training: {dropped}")
    categories = learn_categories(examples.X, [c for c in examples.categorical if c in names])
    X = encode(examples.X, names, categories)
    model = _Ranker(**xgboost_params(cfg))
    fit_args: dict[str, Any] = {"qid": _qid(examples.groups), "verbose": False}
    if validation is not None and len(validation.y):
        Xv = encode(validation.X, names, categories)
        fit_args |= {"eval_set": [(Xv, validation.y)], "eval_qid": [_qid(validation.groups)]}
    else:
        model.set_params(early_stopping_rounds=None)
    model.fit(X, examples.y, **fit_args)
    metrics: dict[str, Any] = {"train_rows": len(X), "train_groups": len(examples.groups)}
    if "eval_set" in fit_args and curve:
        values = model.evals_result()["validation_0"]["ndcg@10"]
        metrics["validation_curve"] = [float(v) for v in values]
    if "eval_set" in fit_args:
        metrics |= {
            "best_iteration": int(model.best_iteration),
            "validation_ndcg@10": float(model.best_score),
        }
    return RankerResult(model, cfg, names, categories, metrics=metrics, dropped=dropped)


class _Ranker(xgb.XGBRanker):
    """XGBRanker whose early-stopping set is a plain DMatrix. The wrapper's default, a
    QuantileDMatrix, is predicted from scratch after every round (dmlc/xgboost#10793):
    bench/results/ranker_fit.md measures the difference. The
    trees' splits sit on the training set's bin edges, so the predictions, the metric
    and the round early stopping picks are the same."""

    def _create_ltr_dmatrix(
        self, ref: xgb.DMatrix | None, data: Any, qid: Any, **kwargs: Any
    ) -> xgb.DMatrix:
        if ref is None:  # the training set
            return super()._create_ltr_dmatrix(ref, data, qid, **kwargs)
        return xgb.DMatrix(data, qid=qid, **kwargs, nthread=self.n_jobs)


def uninformative(X: pd.DataFrame) -> list[str]:
    """Columns no split can use: all null, or one value in every row (a demographic or band
    the data does not have; XGBoost also cannot take a categorical with no category)."""
    out = []
    for name in X.columns:
        column = X[name]
        if pd.api.types.is_float_dtype(column.dtype) or pd.api.types.is_integer_dtype(column.dtype):
            values = column.to_numpy(np.float64, na_value=np.nan)
            missing = np.isnan(values)
            if missing.all() or (not missing.any() and values.min() == values.max()):
                out.append(name)
            continue
        empty = column.isna().all()
        if empty or (column.notna().all() and column.astype(object).nunique() <= 1):
            out.append(name)
    return out


def candidate_order(
    cfg: RankerConfig,
    reason: str,
    dropped: list[str] | None = None,
    column: str = "retrieval_rank",
) -> RankerResult:
    """A 'ranker' that keeps an order the candidates already have: one monotone
    (decreasing) tree over one rank column alone -- retrieval_rank, the candidates' own
    order, or a union source's `<source>_rank` -- saved and served like any ranker. Used
    when the learned ranker cannot be trained or scores below that order on held-out
    lists (`reason`)."""
    ranks = np.arange(1, 2 * cfg.n_candidates + 1, dtype=np.float64)
    model = xgb.XGBRegressor(
        n_estimators=1,
        max_depth=12,
        learning_rate=1.0,
        min_child_weight=0,
        reg_lambda=0.0,
        max_bin=4096,
        monotone_constraints=(-1,),
        tree_method="hist",
        n_jobs=cfg.n_jobs,
        random_state=cfg.seed,
    )
    model.fit(pd.DataFrame({column: ranks}), -ranks)
    metrics = {"scored_by": "candidate order", "order": column, "reason": reason}
    return RankerResult(model, cfg, [column], {}, metrics=metrics, dropped=dropped or [])


def order_name(column: str) -> str:
    """The order a candidate_order ranker over `column` keeps, in words."""
    if column == "retrieval_rank":
        return "the candidates' own order"
    return f"the order of the candidate source {column.removesuffix('_rank')}"


def ndcg_at(examples: Examples, scores: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k over the lists with a relevant row, rows ordered by score (ties: the
    candidates' order, which is the rows' order within a list)."""
    per_list = ndcg_of_lists(examples, scores, k)
    return float(per_list.mean()) if len(per_list) else 0.0


def ndcg_of_lists(examples: Examples, scores: np.ndarray, k: int = 10) -> pd.Series:
    """NDCG@k of each list with a relevant row (index: query), as ndcg_at orders them."""
    frame = pd.DataFrame(
        {"query": examples.keys["query"].to_numpy(), "y": examples.y, "score": scores}
    )
    frame["order"] = np.arange(len(frame))
    ranked = frame.sort_values(["query", "score", "order"], ascending=[True, False, True])
    ranked["pos"] = ranked.groupby("query", sort=False).cumcount()
    gain = (2.0 ** ranked["y"] - 1) / np.log2(ranked["pos"] + 2)
    dcg = gain.where(ranked["pos"] < k, 0.0).groupby(ranked["query"]).sum()
    ideal = frame.sort_values(["query", "y"], ascending=[True, False])
    ideal["pos"] = ideal.groupby("query", sort=False).cumcount()
    igain = (2.0 ** ideal["y"] - 1) / np.log2(ideal["pos"] + 2)
    idcg = igain.where(ideal["pos"] < k, 0.0).groupby(ideal["query"]).sum()
    has = idcg > 0
    return (dcg[has] / idcg[has]).rename("ndcg")


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
        "dropped_features": result.dropped,
        "estimator": "regressor" if isinstance(result.model, xgb.XGBRegressor) else "ranker",
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
    # The candidate-order fallback is a regressor over retrieval_rank (candidate_order).
    model: Any = xgb.XGBRegressor() if meta.get("estimator") == "regressor" else xgb.XGBRanker()
    model.load_model(folder / MODEL_FILE)
    return RankerResult(
        model,
        RankerConfig(**meta["config"]),
        list(meta["feature_names"]),
        {k: list(v) for k, v in meta["categories"].items()},
        meta["feature_service"],
        meta.get("metrics", {}),
        list(meta.get("dropped_features", [])),
    )


def _strings(frame: pd.DataFrame, name: str) -> pd.Series:
    """An optional text column with None (never NaN) where missing: the on-demand views
    test `value or ''`."""
    if name not in frame.columns:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    values = frame[name].astype(object)
    return values.where(values.notna(), None)


def _qid(groups: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(groups)), groups)


def _owners(entity: pd.DataFrame) -> np.ndarray:
    """One key per (user_id, event_timestamp, request_device, request_country) of `entity`:
    Feast's user features are those of the user at the instant, the context shares those
    of the request."""
    keys = ["user_id", "event_timestamp", "request_device", "request_country"]
    return entity.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
