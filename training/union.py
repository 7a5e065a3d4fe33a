"""The ranker on the union of candidate sources (training.ranker.candidates: union).

events before a cut --fit_sources--> Sources: tailwise.candidates.default_sources,
    ItemStats and the two-tower retriever (one source among the others, unless
    training.ranker.two_tower_source is false: it is the one that is slow to fit), all
    fitted on those events only, once per cut
Sources.rows(history, users, at) --> one row per (user, item) of the union of every
    source's top n_per_source, the fused top n_candidates kept, with the features of
    tailwise.candidates.features (the one definition serving will use), the request
    context of the user's last event and, when repeats are allowed, HISTORY_FEATURES;
    the user profile table of the feature store (`user_profiles`) gives the profile source
    its input (tailwise.candidates.profile), read per user, never stored with the sources
union_labelled_candidates: for each label window after a cut (training.ranker cut_days
    / label_windows), Sources fitted before the cut give the lists of the users with a
    relevant item in the window (training.split.window_truth), labelled 1 / 0; the
    label window never reaches a source's score or a popularity count. The union
    ranker's own settings (training.ranker.union) replace the shared ones.
UnionRecommender: a harness recommender (fit / recommend) over fitted Sources and a
    trained ranker; the pipeline refits the Sources on the whole history before the
    test window for the evaluation and the published version (write_sources).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tailwise.candidates import default_sources
from tailwise.candidates.artifacts import read_sources, write_sources
from tailwise.candidates.base import CandidateSource, as_instant
from tailwise.candidates.features import (
    NEW_USER,
    ItemStats,
    candidate_features,
    feature_names,
    new_user_scores,
    source_frames,
)
from tailwise.candidates.profile import ProfilePopularity, profile_context
from tailwise.errors import DataError
from training.config import SplitParams
from training.ranker import RankerConfig, RankerResult, ranking_examples
from training.reranker import (
    _existing,
    _request_context,
    _utc,
    _with_history,
    fit_ranker,
    label_window,
)
from training.split import window_truth

TWO_TOWER = "two_tower"
SOURCES_DIR = "sources"
PROFILE_VIEW = "user_profile_demographics"  # feature_repo/user_views.py


@dataclass
class Sources:
    """Candidate sources fitted before `cut`; `two_tower` is a fitted harness model or None."""

    sources: list[CandidateSource]
    item_stats: ItemStats
    two_tower: Any
    cut: pd.Timestamp
    allow_repeats: bool
    profiles: pd.DataFrame | None = None  # user_id + profile_<column> of the profile source

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sources] + ([TWO_TOWER] if self.two_tower is not None else [])

    def extra_features(self) -> list[str]:
        """Ranker inputs beyond retrieval_score / retrieval_rank (= fused score / rank)."""
        return [f for f in feature_names(self.names) if f not in ("fused_score", "fused_rank")]

    def rows(self, history: pd.DataFrame, users: Iterable[str], cfg: RankerConfig) -> pd.DataFrame:
        """The ranker's input rows of `users` at the cut (see the module docstring)."""
        users = [str(u) for u in users]
        exclude = not self.allow_repeats
        context = None
        if self.profiles is not None:
            context = self.profiles[self.profiles["user_id"].isin(set(users))]
        frames = source_frames(
            self.sources, history, cfg.n_per_source, users, self.cut, exclude, context
        )
        if self.two_tower is not None:
            recs = self.two_tower.recommend(users, cfg.n_per_source, exclude_seen=exclude)
            frames[TWO_TOWER] = recs.assign(
                user_id=recs["user_id"].astype(str),
                item_id=recs["item_id"].astype(str),
                source=TWO_TOWER,
            )
        rows = candidate_features(
            frames, self.item_stats.table, history, self.cut, cfg.n_per_source, cfg.n_candidates
        )
        rows = rows.assign(retrieval_score=rows["fused_score"], retrieval_rank=rows["fused_rank"])
        if self.allow_repeats:
            rows = _with_history(rows, users, _utc(history), self.cut, 0)
        return rows.merge(_request_context(_utc(history)), on="user_id", how="left").assign(
            event_timestamp=self.cut
        )

    def save(self, folder: Path) -> Path:
        """The fitted sources' tables (the two-tower is saved as retrieval/)."""
        return write_sources([*self.sources, self.item_stats], Path(folder))


def fit_sources(
    events: pd.DataFrame,
    cut: pd.Timestamp,
    items: pd.DataFrame | None,
    allow_repeats: bool,
    two_tower: Callable[[], Any] | None = None,
    fitted_two_tower: Any = None,
    profiles: pd.DataFrame | None = None,
) -> Sources:
    """Every source fitted on the events before `cut` (the two-tower from its factory,
    unless an already fitted one is given); `profiles` (the feature store's user profile
    table, `user_profiles`) adds the profile source."""
    cut = as_instant(cut, "fit_sources: cut")
    events = _utc(events)
    before = events[events["timestamp"] < cut]
    catalogue = _existing(items, cut)
    sources = default_sources(allow_repeats, items=catalogue, profiles=profiles)
    for source in sources:
        source.fit(before, cut)
    model = fitted_two_tower
    if model is None and two_tower is not None:
        model = two_tower().fit(before, catalogue)
    stats = ItemStats().fit(before, cut)
    return Sources(sources, stats, model, cut, allow_repeats, _profiles(sources, profiles))


def load_sources(
    folder: Path, two_tower: Any, allow_repeats: bool, profiles: pd.DataFrame | None = None
) -> Sources:
    """Sources a version saved (Sources.save), over its loaded two-tower (or None);
    `profiles` as for fit_sources (the profile source scores nobody's profile without it)."""
    loaded = read_sources(Path(folder))
    stats = [s for s in loaded if isinstance(s, ItemStats)]
    if len(stats) != 1:
        raise ValueError(f"{folder}: expected one item_stats table, found {len(stats)}")
    sources = [s for s in loaded if not isinstance(s, ItemStats)]
    return Sources(
        sources, stats[0], two_tower, stats[0].cut, allow_repeats, _profiles(sources, profiles)
    )


def user_profiles(store: Any) -> pd.DataFrame | None:
    """The feature store's user profile table (the offline source of PROFILE_VIEW), or
    None when the store has no such view or its table is not there."""
    from feast.errors import FeatureViewNotFoundException

    if store is None:
        return None
    try:
        view = store.get_feature_view(PROFILE_VIEW)
    except FeatureViewNotFoundException:
        return None
    path = Path(getattr(view.batch_source, "path", "") or "")
    if not path.is_file():
        return None
    return pd.read_parquet(path)


def _profiles(
    sources: Iterable[CandidateSource], profiles: pd.DataFrame | None
) -> pd.DataFrame | None:
    """What the profile sources read of `profiles` (None without either)."""
    columns = [c for s in sources if isinstance(s, ProfilePopularity) for c in s.column_list]
    if profiles is None or not columns:
        return None
    return profile_context(profiles, dict.fromkeys(columns))


def union_labelled_candidates(
    two_tower: Callable[[], Any] | None,
    events: pd.DataFrame,
    items: pd.DataFrame | None,
    cfg: RankerConfig,
    split_params: SplitParams,
    allow_repeats: bool = False,
    timings: dict[str, float] | None = None,
    say: Callable[[str], None] | None = None,
    profiles: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The ranker's labelled lists over the union (see the module docstring). Columns:
    Sources.rows', then label, window (0 = the latest), query (window|user).

    The two-tower factory is used only with cfg.two_tower_source. Each window's sources
    are fitted once, at its cut; the seconds spent fitting them (`sources_fit`, the
    two-tower included) and making the rows (`candidate_rows`) are added to `timings`,
    and `say` gets one line per window. `profiles`: as for fit_sources."""
    events = _utc(events)
    timings = {} if timings is None else timings
    factory = two_tower if cfg.two_tower_source else None
    if events.empty:
        raise DataError(
            "no events before the test window to cut ranker label windows from: widen "
            "evaluation.split.test_days' history or lower training.ranker.cut_days"
        )
    frames = []
    for window in range(cfg.label_windows):
        cut, before, after = label_window(events, cfg, window)
        labels = window_truth(after, before, split_params, allow_repeats).relevant
        labels = labels.astype({"user_id": str, "item_id": str})
        users = labels["user_id"].drop_duplicates().sort_values()
        if cfg.max_train_users and len(users) > cfg.max_train_users:
            users = users.sample(cfg.max_train_users, random_state=cfg.seed + window)
        started = time.perf_counter()
        fitted = fit_sources(before, cut, items, allow_repeats, factory, profiles=profiles)
        fit_s = time.perf_counter() - started
        rows = fitted.rows(before, users, cfg)
        rows_s = time.perf_counter() - started - fit_s
        timings["sources_fit"] = timings.get("sources_fit", 0.0) + fit_s
        timings["candidate_rows"] = timings.get("candidate_rows", 0.0) + rows_s
        if say is not None:
            say(
                f"ranker label window {window + 1}/{cfg.label_windows} (cut {cut:%Y-%m-%d %H:%M}):"
                f" {len(users):,} users, {len(rows):,} rows; sources fitted in {fit_s:.1f} s"
                f" ({', '.join(fitted.names)}), rows made in {rows_s:.1f} s"
            )
        rows = rows.merge(labels.assign(label=1.0), on=["user_id", "item_id"], how="left")
        rows["label"] = rows["label"].fillna(0.0)
        rows = _sample_negatives(rows, cfg, window)
        frames.append(rows.assign(window=window, query=f"{window}|" + rows["user_id"]))
    return pd.concat(frames, ignore_index=True)


def fit_union_ranker(store: Any, candidates: pd.DataFrame, cfg: RankerConfig) -> RankerResult:
    """training.reranker.fit_ranker with the union's source features as extra inputs."""
    return fit_ranker(store, candidates, cfg, extra=union_feature_columns(candidates))


def union_feature_columns(candidates: pd.DataFrame) -> list[str]:
    """The source-feature columns of labelled union rows, in the order they were made."""
    names = [c[: -len("_norm")] for c in candidates.columns if c.endswith("_norm")]
    return [
        c
        for c in feature_names(names)
        if c in candidates.columns and c not in ("fused_score", "fused_rank")
    ]


class UnionRecommender:
    """A harness recommender: the union of fitted Sources reranked by a trained ranker."""

    name = "union+ranker"

    def __init__(self, store: Any, cfg: RankerConfig) -> None:
        self.store, self.cfg = store, cfg

    def attach(
        self, result: RankerResult, sources: Sources, events: pd.DataFrame
    ) -> UnionRecommender:
        self.result, self.sources, self.history = result, sources, _utc(events)
        self.allow_repeats = sources.allow_repeats
        self.candidate_model = FusedOrder(sources, self.history, self.cfg)
        return self

    @property
    def timing_note(self) -> str | None:
        return self.candidate_model.timing_note

    def recommend(self, user_ids: Iterable[str], k: int, exclude_seen: bool = True) -> pd.DataFrame:
        """Top k of the union's candidates at the sources' cut, by the ranker's score."""
        if k < 1:
            raise ValueError(f"{self.name}: k must be >= 1, got {k}")
        users = pd.unique(pd.Series(list(user_ids), dtype=object).astype(str))
        rows = self.candidate_model.rows(users)
        if rows.empty:
            return pd.DataFrame({"user_id": [], "item_id": [], "rank": [], "score": []})
        extra = [c for c in self.result.feature_names if c in rows.columns]
        extra = [c for c in union_feature_columns(rows) if c in set(extra)]
        examples = ranking_examples(self.store, rows, extra=extra)
        scores = self.result.predict(examples.X)
        order = self.result.new_user_order
        if order is not None:  # people without history follow the order the check chose
            keyed = examples.keys[["user_id", "item_id"]].merge(
                rows[["user_id", "item_id", NEW_USER, order]], how="left"
            )
            scores = new_user_scores(scores, keyed[NEW_USER], keyed[order])
        return _top(examples.keys.assign(score=scores), k)


class FusedOrder:
    """The union's own order (fused rank) behind the harness interface: the candidates
    the ranker reorders, measured on their own."""

    name = "union"

    def __init__(self, sources: Sources, history: pd.DataFrame, cfg: RankerConfig) -> None:
        self.sources, self.history, self.cfg = sources, history, cfg
        self._last: tuple[tuple[str, ...], pd.DataFrame] | None = None
        self.reused = False  # whether the last rows() reused the rows before it

    def rows(self, users: np.ndarray) -> pd.DataFrame:
        """Sources.rows of `users`; the last users' are kept, as evaluation asks the
        ranker (UnionRecommender) and this order for the same users."""
        key = tuple(str(u) for u in users)
        last = self._last
        self.reused = last is not None and last[0] == key
        if last is None or not self.reused:
            last = self._last = (key, self.sources.rows(self.history, key, self.cfg))
        return last[1]

    @property
    def timing_note(self) -> str | None:
        """Said in the evaluation's notes when the last recommend reused the rows."""
        if not self.reused:
            return None
        return "recommend time leaves out the candidate rows, made once for union and union+ranker"

    def recommend(self, user_ids: Iterable[str], k: int, exclude_seen: bool = True) -> pd.DataFrame:
        users = pd.unique(pd.Series(list(user_ids), dtype=object).astype(str))
        rows = self.rows(users)
        return _top(rows.assign(score=rows["fused_score"]), k)


def _top(scored: pd.DataFrame, k: int) -> pd.DataFrame:
    scored = scored.sort_values(
        ["user_id", "score", "retrieval_rank"], ascending=[True, False, True], kind="stable"
    )
    scored["rank"] = scored.groupby("user_id", sort=False).cumcount() + 1
    top = scored.loc[scored["rank"] <= k, ["user_id", "item_id", "rank", "score"]]
    return top.reset_index(drop=True)


def _sample_negatives(rows: pd.DataFrame, cfg: RankerConfig, window: int) -> pd.DataFrame:
    """At most cfg.negatives non-relevant rows per user: the better half by fused rank,
    the rest a seeded sample of the others."""
    if cfg.negatives is None:
        return rows
    hard = cfg.negatives // 2
    positive = rows["label"] > 0
    top = ~positive & (rows["fused_rank"] <= hard)
    rest = rows[~positive & ~top]
    rng = np.random.default_rng(cfg.seed + 1000 * window)
    order = rest.assign(_r=rng.random(len(rest))).sort_values(["user_id", "_r"])
    sampled = order.groupby("user_id", sort=False).head(cfg.negatives - hard).index
    keep = positive | top
    keep[sampled] = True
    return rows[keep].reset_index(drop=True)
