"""Reranking a candidate model, and the labelled lists the ranker learns from.

    labelled_candidates(candidate factory, history, cfg): for each label window of
      cfg.cut_days, stacked back from the history's end (cfg.label_windows), a fresh
      candidate model fitted on the events before the window gives its top-N for the people
      with a relevant item in the window (the harness's own definition:
      `training.split.window_truth`), labelled 1 / 0; one list (query) per window and person
    --fit_ranker(store)--> ranking_examples (Feast, training.ranker) --> train_ranker, with
      seeded shares of people held out for early stopping and for the guard against the
      candidates' own order (fit_examples)

When repeats are allowed (tailwise.repeats), the lists also hold each user's own past items
(`buy_again_candidates`, n_candidates // 4 of them, most frequent then most recent) and
every row carries the per-(user, item) HISTORY_FEATURES as of the list's time.

`Reranker` wraps any harness recommender (EASE, ItemCooccurrence, the two-tower retriever)
and is itself one: `fit` runs both steps on its history and refits the candidate model on
the whole history; `recommend` reranks that model's top-N at the end of the history. The
training pipeline runs the same functions split into its DVC stages (training.pipeline).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tailwise.candidates.features import NEW_USER
from tailwise.errors import DataError
from tailwise.repeats import HISTORY_FEATURES, user_item_history
from training.config import SplitParams
from training.ranker import (
    Examples,
    RankerConfig,
    RankerResult,
    candidate_order,
    ndcg_of_lists,
    order_name,
    ranking_examples,
    train_ranker,
    uninformative,
)
from training.split import days_before, window_truth

LIFT_K = 10


class Reranker:
    """A harness recommender: `candidate_model`'s top-N reranked by an XGBoost ranker."""

    name = "reranker"

    def __init__(
        self,
        candidate_model: Any,
        store: Any,
        cfg: RankerConfig | None = None,
        split_params: SplitParams | None = None,
        allow_repeats: bool = False,
    ) -> None:
        # A model to copy, or a factory returning a fresh unfitted model (for models that hold
        # a Feast store, which must be shared rather than copied).
        self.template = candidate_model
        self.store = store
        self.cfg = cfg or RankerConfig()
        self.split_params = split_params or SplitParams()
        self.allow_repeats = allow_repeats

    def fit(self, train_events: pd.DataFrame, items: pd.DataFrame | None) -> Reranker:
        """Train the ranker on label windows inside `train_events`, then refit the candidates."""
        events = _utc(train_events)
        candidates = labelled_candidates(
            self._fresh, events, items, self.cfg, self.split_params, self.allow_repeats
        )
        result = fit_ranker(self.store, candidates, self.cfg)
        return self.attach(result, self._fresh().fit(events, items), events)

    def attach(self, result: RankerResult, candidate_model: Any, events: pd.DataFrame) -> Reranker:
        """Serve a trained or loaded ranker over a fitted candidate model and its history."""
        events = _utc(events)
        self.result, self.candidate_model = result, candidate_model
        self.history, self.at = events, events["timestamp"].max() + pd.Timedelta(seconds=1)
        weights = events["weight"] if "weight" in events.columns else pd.Series(1.0, events.index)
        popular = weights.groupby(events["item_id"].astype(str)).sum()
        self.popular = popular.sort_index().sort_values(ascending=False, kind="stable")
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
        top = pd.DataFrame({"user_id": [], "item_id": [], "rank": [], "score": []})
        if not candidates.empty:
            examples = ranking_examples(self.store, candidates)
            scored = examples.keys.assign(score=self.result.predict(examples.X))
            scored = scored.sort_values(
                ["user_id", "score", "retrieval_rank"], ascending=[True, False, True], kind="stable"
            )
            scored["rank"] = scored.groupby("user_id", sort=False).cumcount() + 1
            top = scored.loc[scored["rank"] <= k, ["user_id", "item_id", "rank", "score"]]
        return self._pad(top.reset_index(drop=True), users, k, exclude_seen)

    def _pad(
        self, top: pd.DataFrame, users: np.ndarray, k: int, exclude_seen: bool
    ) -> pd.DataFrame:
        """Fill lists shorter than k (the retriever found fewer) from popularity in the history,
        after the ranked items and below their scores; never an item already listed (or seen,
        when seen items are excluded)."""
        counts = top.groupby("user_id").size()
        short = [u for u in users if counts.get(u, 0) < k]
        if not short or self.popular.empty:
            return top
        seen = self.history.assign(user_id=self.history["user_id"].astype(str))
        had = seen.groupby("user_id")["item_id"].agg(lambda s: set(s.astype(str)))
        listed = top.groupby("user_id")["item_id"].agg(set)
        floor = float(top["score"].min()) if len(top) else 0.0
        rows = []
        for user in short:
            taken = set(listed.get(user, set()))
            if exclude_seen:
                taken |= had.get(user, set())
            have = int(counts.get(user, 0))
            for item in self.popular.index:
                if have >= k:
                    break
                if item in taken:
                    continue
                have += 1
                rows.append((user, item, have, floor - have))
        extra = pd.DataFrame(rows, columns=["user_id", "item_id", "rank", "score"])
        out = pd.concat([top, extra], ignore_index=True) if len(extra) else top
        return out.sort_values(["user_id", "rank"], kind="stable").reset_index(drop=True)

    def _candidates(
        self,
        model: Any,
        users: Iterable[str],
        history: pd.DataFrame,
        at: pd.Timestamp,
        exclude_seen: bool = True,
    ) -> pd.DataFrame:
        return candidates_at(
            model, users, history, at, self.cfg.n_candidates, exclude_seen, self.allow_repeats
        )


def candidates_at(
    model: Any,
    users: Iterable[str],
    history: pd.DataFrame,
    at: pd.Timestamp,
    n: int,
    exclude_seen: bool = True,
    repeats: bool = False,
) -> pd.DataFrame:
    """`model`'s top-n of `users` as ranker input rows, requested at `at` from the context
    of each user's last event in `history`. With `repeats` (a ranker trained on them)
    every row carries the HISTORY_FEATURES as of `at`, and unless seen items are excluded
    the user's own past items (buy_again_candidates) join the list after the model's."""
    users = list(users)
    recs = model.recommend(users, n, exclude_seen=exclude_seen)
    recs = recs.rename(columns={"score": "retrieval_score", "rank": "retrieval_rank"})
    recs = recs.assign(user_id=recs["user_id"].astype(str), item_id=recs["item_id"].astype(str))
    if repeats:  # past items join only the lists that may hold them
        recs = _with_history(recs, users, history, at, 0 if exclude_seen else max(1, n // 4))
    return recs.merge(_request_context(history), on="user_id", how="left").assign(
        event_timestamp=at
    )


def buy_again_candidates(history: pd.DataFrame, users: Iterable[str], n: int) -> pd.DataFrame:
    """Each user's own past items, most events first, then the most recent: user_id, item_id."""
    wanted = {str(u) for u in users}
    mine = history[history["user_id"].astype(str).isin(wanted)]
    stats = (
        mine.assign(user_id=mine["user_id"].astype(str), item_id=mine["item_id"].astype(str))
        .groupby(["user_id", "item_id"], sort=False)["timestamp"]
        .agg(["size", "max"])
        .reset_index()
        .sort_values(["user_id", "size", "max", "item_id"], ascending=[True, False, False, True])
    )
    return stats.groupby("user_id", sort=False).head(n)[["user_id", "item_id"]]


def _with_history(
    recs: pd.DataFrame, users: list[str], history: pd.DataFrame, at: pd.Timestamp, n: int
) -> pd.DataFrame:
    """recs plus the users' past items it lacks (ranked after the model's), with the
    per-(user, item) history features as of `at`."""
    extra = buy_again_candidates(history, users, n)
    extra = extra.merge(recs[["user_id", "item_id"]], how="left", indicator=True)
    extra = extra[extra["_merge"] == "left_only"].drop(columns="_merge")
    if len(extra):
        last = recs.groupby("user_id")["retrieval_rank"].max()
        offset = extra["user_id"].map(last).fillna(0).to_numpy()
        extra = extra.assign(
            retrieval_score=np.nan,
            retrieval_rank=offset + extra.groupby("user_id").cumcount().to_numpy() + 1,
        )
        recs = pd.concat([recs, extra], ignore_index=True)
    events = history.assign(
        user_id=history["user_id"].astype(str),
        item_id=history["item_id"].astype(str),
        timestamp=pd.to_datetime(history["timestamp"], utc=True),
    )
    known = user_item_history(events, at, recs[["user_id", "item_id"]])
    for name in HISTORY_FEATURES:
        recs[name] = known[name].to_numpy()
    return recs


def labelled_candidates(
    candidate_factory: Callable[[], Any],
    events: pd.DataFrame,
    items: pd.DataFrame | None,
    cfg: RankerConfig,
    split_params: SplitParams,
    allow_repeats: bool = False,
) -> pd.DataFrame:
    """The ranker's training lists: for each of `cfg.label_windows` windows of `cut_days`
    stacked back from the end of `events`, a fresh candidate model fitted on the events
    before the window gives the top-n of the users with a relevant item in it (the
    harness's definition: `training.split.window_truth`); rows are labelled 1 when relevant.

    Columns: candidates_at's, then label, window (0 = the latest), query (window|user)."""
    events = _utc(events)
    if events.empty:
        raise DataError(
            "no events before the test window to cut ranker label windows from: widen "
            "evaluation.split.test_days' history or lower training.ranker.cut_days"
        )
    frames = []
    for window in range(cfg.label_windows):
        cut, before, after = label_window(events, cfg, window)
        labels = window_truth(after, before, split_params, allow_repeats).relevant
        users = labels["user_id"].drop_duplicates().sort_values()
        if cfg.max_train_users and len(users) > cfg.max_train_users:
            users = users.sample(cfg.max_train_users, random_state=cfg.seed + window)
        model = candidate_factory().fit(before, _existing(items, cut))
        rows = candidates_at(
            model,
            users,
            before,
            cut,
            cfg.n_candidates,
            exclude_seen=not allow_repeats,
            repeats=allow_repeats,
        )
        rows = rows.merge(labels.assign(label=1.0), on=["user_id", "item_id"], how="left")
        frames.append(
            rows.assign(
                label=rows["label"].fillna(0.0),
                window=window,
                query=f"{window}|" + rows["user_id"].astype(str),
            )
        )
    return pd.concat(frames, ignore_index=True)


def label_window(
    events: pd.DataFrame, cfg: RankerConfig, window: int
) -> tuple[pd.Timestamp, pd.DataFrame, pd.DataFrame]:
    """Label window `window` (0 = the latest) of UTC `events`: its cut, the events before it
    and those inside it; an error naming the settings when either side is empty."""
    start, end = events["timestamp"].min(), events["timestamp"].max()
    cut = days_before(end, cfg.cut_days * (window + 1))
    ts = events["timestamp"]
    inside = ts >= cut
    if window:  # the latest window runs to the last event, included
        inside &= ts < days_before(cut, -cfg.cut_days)
    before, after = events[ts < cut], events[inside]
    if before.empty or after.empty:
        raise DataError(
            f"ranker label window {window} (training.ranker.cut_days={cfg.cut_days:g}, "
            f"training.ranker.label_windows={cfg.label_windows}) starts at {cut}: it needs "
            f"events before and inside it, and the history runs {start} .. {end}; lower "
            "training.ranker.cut_days or label_windows"
        )
    return cut, before, after


def fit_ranker(
    store: Any, candidates: pd.DataFrame, cfg: RankerConfig, extra: Sequence[str] = ()
) -> RankerResult:
    """Ranking examples of labelled candidate lists (labelled_candidates) from Feast, then
    the XGBoost ranker, early-stopped and checked on held-out users (fit_examples). `extra`:
    further numeric columns of `candidates` to learn from (the union's source features)."""
    examples = ranking_examples(store, candidates, extra=extra, workers=cfg.fetch_workers)
    return fit_examples(examples, cfg)


def fit_examples(examples: Examples, cfg: RankerConfig) -> RankerResult:
    """fit_ranker on ranking examples already fetched (several settings can share them).

    Only lists of users with a relevant item are learned from. With
    cfg.validation_share > 0 the ranker is checked on users that took no part in fitting
    it or in choosing its number of rounds against the orders the lists already hold (the
    candidates' own, and each union source's), and when one of them wins there (by the
    rule of _checked) the version keeps that order (candidate_order):
      - fewer such users than cfg.cross_fit_below: 5-fold cross-fitting over users
        (_cross_fitted): the rounds that maximise the folds' mean held-out NDCG@10, the
        check on every user's out-of-fold scores, then one fit on everyone;
      - else two held-out shares (_holdout): one stops the boosting early, the other (the
        guard) checks the stopped ranker, which is then fitted again with the guard's
        users added, early-stopped on the same users as before.
    The held-out lists (with two shares, both of them) check, for the people with no
    event before their cut, the order the version gives them against each source's
    (_new_user_check): the version records the order that wins there as
    `new_user_order`, which training's evaluation and serving then give such people
    (tailwise.candidates.features.new_user_scores)."""
    dropped = uninformative(examples.X)
    positive = _positive_users(examples)
    if not len(positive):
        reason = "no candidate list holds a relevant item: nothing to learn from"
        return candidate_order(cfg, reason, dropped)
    if cfg.validation_share == 0:
        return train_ranker(cfg, examples.subset(positive))
    if len(positive) < cfg.cross_fit_below:
        return _cross_fitted(examples, positive, cfg, dropped)
    train, stop, guard = _holdout(examples, cfg)
    if stop is None or guard is None:
        return candidate_order(cfg, _too_few(len(positive)), dropped)
    result = train_ranker(cfg, train, stop)
    # People without history are few: their check reads both held-out shares. The
    # ranker's figure on the early-stopping share flatters it, if anything.
    held = _joined(examples, stop, guard)
    checked = _checked(guard, result.predict(guard.X), (held, result.predict(held.X)))
    if _loses(checked):
        return _fallback(cfg, checked, result)
    final = train_ranker(cfg, _joined(examples, train, guard), stop)
    final.metrics |= checked | {"scored_by": "ranker"}
    return final


CV_FOLDS = 5


def _cross_fitted(
    examples: Examples, positive: np.ndarray, cfg: RankerConfig, dropped: list[str]
) -> RankerResult:
    """5 folds of users: each fold's ranker is fitted on the other folds, scoring its fold
    after each round (until early stopping); the number of rounds is the best mean over the
    folds; the check (_checked) scores every user's out-of-fold scores at that many
    rounds; the ranker kept is fitted on everyone for that many rounds."""
    if len(positive) < CV_FOLDS * MIN_HELD_USERS:
        return candidate_order(cfg, _too_few(len(positive)), dropped)
    order = np.random.default_rng(cfg.seed).permutation(len(positive))
    folds = np.array_split(positive[order], CV_FOLDS)
    everyone = examples.subset(positive)
    users = everyone.keys["user_id"].to_numpy()
    fitted = []
    for k, held in enumerate(folds):
        rest = np.concatenate([f for j, f in enumerate(folds) if j != k])
        mask = np.isin(users, held)
        held_out = everyone.where(mask)
        fitted.append((mask, train_ranker(cfg, examples.subset(rest), held_out, curve=True)))
    # Each fold stopped when its own held-out NDCG@10 had not improved for
    # early_stopping_rounds; past that, its curve stays at its last value.
    curves = [r.metrics.pop("validation_curve") for _, r in fitted]
    longest = max(len(c) for c in curves)
    padded = [np.pad(c, (0, longest - len(c)), mode="edge") for c in curves]
    rounds = int(np.argmax(np.mean(padded, axis=0))) + 1
    scores = np.empty(len(everyone.y))
    for (mask, result), curve in zip(fitted, curves, strict=True):
        scores[mask] = result.predict(everyone.X[mask], min(rounds, len(curve)))
    checked = _checked(everyone, scores) | {"cross_fit_folds": CV_FOLDS, "rounds": rounds}
    if _loses(checked):
        return _fallback(cfg, checked, fitted[0][1])
    final = train_ranker(cfg.model_copy(update={"n_estimators": rounds}), everyone)
    final.metrics |= checked | {"scored_by": "ranker"}
    return final


def _checked(
    lists: Examples,
    scores: np.ndarray,
    new_users: tuple[Examples, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The check's figures on `lists`, the ranker scoring them `scores`: its NDCG@10, the
    candidates' own order's, and the orders of the union's sources (`<source>_rank`, the
    columns with a `<source>_norm` beside them). `best_order` is the order to keep
    instead of the ranker, if any: a source's order when it beats the ranker by more than
    one standard error of their paired difference over the users (the one-standard-error
    rule: with a dozen orders scored on a few hundred users, the best-looking one is
    partly luck) and beats the candidates' own order too; else the candidates' own order
    when the ranker scores below it; else none. The check of people without history
    (_new_user_check) reads `new_users` (lists and the ranker's scores of them) when
    given, else the same lists."""
    users = lists.keys.drop_duplicates("query").set_index("query")["user_id"]

    def by_user(values: np.ndarray) -> pd.Series:
        per_list = ndcg_of_lists(lists, values, LIFT_K)
        return per_list.groupby(users.reindex(per_list.index).to_numpy()).mean()

    ranker = by_user(scores)
    own = by_user(-lists.keys["retrieval_rank"].to_numpy(np.float64))
    checked: dict[str, Any] = {
        "guard_lists": len(lists.groups),
        "guard_users": int(lists.keys["user_id"].nunique()),
        "guard_ndcg@10": round(_mean(ranker), 6),
        "candidate_order_ndcg@10": round(_mean(own), 6),
        "best_order": None,
    }
    sources = {column: by_user(_order(lists, column)) for column in _source_orders(lists)}
    if sources:
        column, best = max(sources.items(), key=lambda kv: _mean(kv[1]))
        gain, se = _gain(best, ranker)
        checked |= {
            "best_source_order": column,
            "best_source_ndcg@10": round(_mean(best), 6),
            "best_source_gain_se": round(se, 6),
        }
        if _mean(gain) > se and _mean(best) > _mean(own):
            checked |= {"best_order": column, "best_order_ndcg@10": round(_mean(best), 6)}
            return checked | _new_user_check(*(new_users or (lists, scores)), column)
    if _mean(ranker) < _mean(own):
        checked |= {"best_order": "retrieval_rank", "best_order_ndcg@10": round(_mean(own), 6)}
    return checked | _new_user_check(*(new_users or (lists, scores)))


def _source_orders(lists: Examples) -> list[str]:
    """The union sources' rank columns of `lists` (`<source>_rank` beside `<source>_norm`)."""
    columns = set(lists.X.columns)
    return [c for c in lists.X.columns if c.endswith("_rank") and f"{c[:-5]}_norm" in columns]


def _order(lists: Examples, column: str) -> np.ndarray:
    """Scores that keep the order of rank column `column` (unranked rows last)."""
    ranks = pd.to_numeric(lists.X[column], errors="coerce").fillna(np.inf)
    return -ranks.to_numpy(np.float64)


def _gain(best: pd.Series, current: pd.Series) -> tuple[pd.Series, float]:
    """The paired gain of `best` over `current` and one standard error of its mean."""
    gain = (best - current).dropna()
    return gain, float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else np.inf


MIN_NEW_USER_LISTS = 30  # fewer: one standard error of the gain says little


def _new_user_check(
    lists: Examples, scores: np.ndarray, served: str | None = None
) -> dict[str, Any]:
    """The check on the lists of people with no event before their cut (NEW_USER == 0):
    the order the version would give them (the ranker's `scores`, or the rank column
    `served` when the version keeps one) against each union source's order and the
    candidates' own. `new_user_order` names the order to keep for such people instead,
    by the rule of _checked: it beats the served order by more than one standard error of
    their paired difference over these lists. None when none does, or when there are
    fewer than MIN_NEW_USER_LISTS of them."""
    if NEW_USER not in lists.X.columns:
        return {"new_user_order": None}
    new = pd.to_numeric(lists.X[NEW_USER], errors="coerce").fillna(0).to_numpy() == 0
    queries = lists.keys.loc[new & (lists.y > 0), "query"].nunique()
    checked: dict[str, Any] = {"new_user_lists": int(queries), "new_user_order": None}
    if queries < MIN_NEW_USER_LISTS:
        return checked
    sub = lists.where(new)
    given = _order(sub, served) if served is not None else scores[new]
    current = ndcg_of_lists(sub, given, LIFT_K)
    candidates = [c for c in ("retrieval_rank",) if c in sub.X.columns] + _source_orders(sub)
    orders = {c: ndcg_of_lists(sub, _order(sub, c), LIFT_K) for c in candidates}
    checked["new_user_ndcg@10"] = round(_mean(current), 6)
    if not orders:
        return checked
    column, best = max(orders.items(), key=lambda kv: _mean(kv[1]))
    gain, se = _gain(best, current)
    checked |= {
        "new_user_best_order": column,
        "new_user_best_ndcg@10": round(_mean(best), 6),
        "new_user_gain_se": round(se, 6),
    }
    if _mean(gain) > se and column != served:
        checked["new_user_order"] = column
    return checked


def _mean(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else 0.0


def _loses(checked: dict[str, Any]) -> bool:
    return checked["best_order"] is not None


def _fallback(cfg: RankerConfig, checked: dict[str, Any], result: RankerResult) -> RankerResult:
    best = checked["best_order"]
    reason = (
        f"the ranker's NDCG@{LIFT_K} on {checked['guard_lists']} held-out lists, "
        f"{checked['guard_ndcg@10']:.4f}, is below {order_name(best)}, "
        f"{checked['best_order_ndcg@10']:.4f}"
    )
    fallback = candidate_order(cfg, reason, result.dropped, best)
    fallback.metrics |= result.metrics | checked | fallback.metrics
    return fallback


def _too_few(users: int) -> str:
    return (
        f"only {users} users have a relevant item: too few to hold some out, to stop early "
        "and check the ranker against its candidates' order "
        "(training.ranker.validation_share, cross_fit_below)"
    )


def _positive_users(examples: Examples) -> np.ndarray:
    positive = examples.keys.loc[examples.y > 0, "user_id"].drop_duplicates()
    return positive.sort_values().to_numpy()


MIN_HELD_USERS = 5


def _holdout(
    examples: Examples, cfg: RankerConfig
) -> tuple[Examples, Examples | None, Examples | None]:
    """The lists of users with at least one relevant item, split by user (every label
    window of a user on one side): (train, early stopping, guard). The two held-out sets
    take cfg.validation_share of the users each (at least MIN_HELD_USERS), seeded; both
    are None when that would leave fewer users to train on than either holds."""
    positive = _positive_users(examples)
    held = max(MIN_HELD_USERS, round(cfg.validation_share * len(positive)))
    if cfg.validation_share == 0 or len(positive) - 2 * held < held:
        return examples.subset(positive), None, None
    order = np.random.default_rng(cfg.seed).permutation(len(positive))
    stop, guard, train = np.split(positive[order], [held, 2 * held])
    return examples.subset(train), examples.subset(stop), examples.subset(guard)


def _joined(examples: Examples, *parts: Examples) -> Examples:
    """The lists of every user in `parts`, in `examples`' order."""
    return examples.subset(pd.unique(np.concatenate([p.keys["user_id"].to_numpy() for p in parts])))


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
