"""Business rules after ranking, and the one-line reason shown with each item.

    ranked candidates --filters (excluded ids, excluded categories)--> --boosts (category
    multipliers on the score's rank-preserving transform)--> --diversity (at most
    max_per_category of one category, in score order)--> top k, topped up past the
    diversity limit when it left fewer than k (`choose_full`)

Reasons come from the ranker itself: the feature with the largest positive contribution
(XGBoost's approximate SHAP values) to an item's score among those a person can read,
worded with the user's own values ("more from Electronics/Phones, which you are browsing
now"). Retrieval-only and cold-start answers say so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numba import njit

from serving.config import RulesConfig


@dataclass
class Ranked:
    item_ids: list[str]
    scores: list[float]
    positions: list[int]  # row of each chosen item in the candidate arrays


@dataclass(frozen=True)
class CategoryRules:
    """The rules per category, for categories coded 0..n-1 by their text (`codes`) and code
    n for an item without one: each code's log boost, whether it is excluded, and whether
    it counts towards `max_per_category`. The request path codes its catalogue once; then
    filters, boosts and diversity run in one compiled loop (`_choose`)."""

    codes: dict[str, int]
    log_boost: np.ndarray  # float64 (n + 1,)
    banned: np.ndarray  # bool (n + 1,)
    limited: np.ndarray  # bool (n + 1,)
    max_per_category: int

    @classmethod
    def build(cls, rules: RulesConfig, categories: Iterable[Any]) -> CategoryRules:
        codes: dict[str, int] = {}
        for category in categories:
            if category is not None:
                codes.setdefault(str(category), len(codes))
        texts = [*codes, None]
        boosts, banned = rules.boosts, set(rules.exclude_categories)
        # Scores are margins of any sign: boost on exp(score), which keeps the order.
        log_boost = np.log(np.array([_boost(boosts, t) for t in texts], dtype=np.float64))
        return cls(
            codes,
            log_boost if boosts else np.zeros(len(texts)),
            np.array([_matches(t, banned) for t in texts], dtype=np.bool_),
            np.array([bool(t) for t in texts], dtype=np.bool_),  # "" and None: no limit
            rules.max_per_category,
        )

    def choose_full(
        self, scores: np.ndarray, codes: np.ndarray, k: int, dropped: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`choose`, then, when the diversity limit left fewer than `k`, the best of the
        rest without it (filters and boosts still apply): a list is short only when too
        few candidates pass the filters."""
        pos, adjusted = self.choose(scores, codes, k, dropped)
        if len(pos) >= k or len(pos) >= len(scores):
            return pos, adjusted
        taken = np.zeros(len(scores), np.bool_) if dropped is None else dropped.copy()
        taken[pos] = True
        more, more_adjusted = self.choose(scores, codes, k - len(pos), taken, diverse=False)
        return np.concatenate([pos, more]), np.concatenate([adjusted, more_adjusted])

    def encode(self, categories: Iterable[Any]) -> np.ndarray:
        """The code (int64) of each category; unknown text and None get n (no category)."""
        none = len(self.codes)
        get = self.codes.get
        return np.array([none if c is None else get(str(c), none) for c in categories], np.int64)

    def choose(
        self,
        scores: np.ndarray,
        codes: np.ndarray,
        k: int,
        dropped: np.ndarray | None = None,
        diverse: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(positions, adjusted scores) of the top `k` candidates under the rules; `codes`:
        each candidate's category code, `dropped`: candidates never returned (bool);
        `diverse=False`: without the max_per_category limit (the top-up of a list the
        limit left short)."""
        n = len(scores)
        adjusted = np.empty(n, dtype=np.float64)
        positions = np.empty(min(k, n), dtype=np.int64)
        found = _choose(
            np.asarray(scores, dtype=np.float64),
            codes,
            self.log_boost,
            self.banned,
            self.limited,
            np.zeros(n, np.bool_) if dropped is None else dropped,
            self.max_per_category if diverse else max(k, 1),
            positions,
            adjusted,
        )
        positions = positions[:found]
        return positions, adjusted[positions]


def apply_rules(
    rules: RulesConfig,
    item_ids: np.ndarray,
    scores: np.ndarray,
    categories: Sequence[Any] | np.ndarray,
    k: int,
    exclude: Iterable[str] = (),
) -> Ranked:
    """Top `k` of the candidates under the rules (fewer when fewer qualify)."""
    table = CategoryRules.build(rules, categories)
    drop = set(exclude)
    dropped = np.array([str(i) in drop for i in item_ids], dtype=np.bool_).reshape(-1)
    positions, adjusted = table.choose(scores, table.encode(categories), k, dropped)
    return Ranked(
        [str(i) for i in np.asarray(item_ids, dtype=object)[positions]],
        adjusted.tolist(),
        positions.tolist(),
    )


@njit(cache=True, nogil=True)
def _choose(
    scores: np.ndarray,
    codes: np.ndarray,
    log_boost: np.ndarray,
    banned: np.ndarray,
    limited: np.ndarray,
    dropped: np.ndarray,
    max_per_category: int,
    positions: np.ndarray,
    adjusted: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """Boosted scores into `adjusted`, then in their order (ties keep the candidates'
    order) the candidates that are not dropped, not of an excluded category and not over
    their category's limit, into `positions` until it is full; returns how many."""
    for i in range(scores.shape[0]):
        adjusted[i] = scores[i] + log_boost[codes[i]]
    order = np.argsort(-adjusted, kind="mergesort")
    taken = np.zeros(log_boost.shape[0], dtype=np.int64)
    found = 0
    for pos in order:
        if found == positions.shape[0]:
            break
        code = codes[pos]
        if dropped[pos] or banned[code]:
            continue
        if limited[code]:
            if taken[code] >= max_per_category:
                continue
            taken[code] += 1
        positions[found] = pos
        found += 1
    return found


def _matches(category: Any, names: set[str]) -> bool:
    if not names or category is None:
        return False
    text = str(category)
    return text in names or text.split("/")[0] in names


def _boost(boosts: dict[str, float], category: Any) -> float:
    if category is None:
        return 1.0
    text = str(category)
    return boosts.get(text, boosts.get(text.split("/")[0], 1.0))


# Feature -> wording, tried in the order of each item's largest positive contribution.
_REASONS = {
    "x_in_rt_last_items": "you looked at it in this session",
    "x_same_rt_category": "more from {category}, which you are browsing now",
    "x_cat_share": "you often shop {category}",
    "x_cat_l1_share": "you often shop {category_l1}",
    "x_cat_rank": "one of your favourite categories: {category}",
    "x_is_top_category": "your favourite category: {category}",
    "x_brand_match": "a brand you like: {brand}",
    "x_in_recent_items": "you viewed it recently",
    "x_log_popularity_rank": "popular this week",
    "item_views_7d": "popular this week",
    "item_purchases_7d": "selling well this week",
    "x_conversion_7d": "often bought after being viewed",
    "x_is_new_item": "new in {category}",
    "x_log_item_age_days": "new in {category}",
    "x_price_ratio": "in your usual price range",
    "x_log_price_ratio": "in your usual price range",
    "retrieval_score": "close to what you usually interact with",
    # A union version's source features (serving.union): its score and normalised score.
    **{
        f"{source}_{part}": text
        for source, text in (
            ("covisitation", "often chosen together with what you viewed"),
            ("ease", "goes with the items you chose"),
            ("trending", "trending now"),
            ("popularity_7d", "popular this week"),
            ("popular_in_category", "popular in {category}, which you like"),
            ("popular_in_category_l1", "popular in {category_l1}, which you like"),
            ("popular_in_brand", "popular from {brand}, a brand you like"),
            ("buy_again", "you have chosen it before"),
        )
        for part in ("score", "norm")
    },
    "item_trend": "trending now",
}
FALLBACK_REASON = "picked for you"  # no worded feature speaks for the item: claim nothing


def reasons(
    contributions: np.ndarray,
    feature_names: Sequence[str],
    items: dict[str, np.ndarray],
    missing: np.ndarray | None = None,
) -> list[str]:
    """One reason per row of `contributions` (rows = chosen items, last column = bias): the
    worded feature with the largest positive contribution whose wording has the values
    it names (first feature on ties), else FALLBACK_REASON. `missing`: those rows of
    `text_missing` (the request path keeps it per catalogue)."""
    templates, worded, needs = _templates(tuple(feature_names))
    contrib = np.asarray(contributions)
    if len(contrib) == 0:
        return []
    if missing is None:
        missing = text_missing(items, len(contrib))
    best = np.empty(len(contrib), dtype=np.int64)
    _strongest(contrib, worded, needs, np.asarray(missing, dtype=np.bool_), best)
    out = []
    for row, j in enumerate(best.tolist()):
        if j < 0:
            out.append(FALLBACK_REASON)
            continue
        template = templates[j]
        if "{" in template:
            template = template.format(**{f: _text(items.get(f), row) for f in WORDED_FIELDS})
        out.append(template)
    return out


@njit(cache=True, nogil=True)
def _strongest(
    contributions: np.ndarray,
    worded: np.ndarray,
    needs: np.ndarray,
    missing: np.ndarray,
    best: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Per row, the worded feature with the largest positive contribution whose wording's
    values are not missing (the first on ties), or -1; the last column (bias) is never
    one."""
    for r in range(contributions.shape[0]):
        chosen, strongest = -1, 0.0
        for j in range(contributions.shape[1] - 1):
            value = contributions[r, j]
            if not worded[j] or not value > strongest:  # NaN is never stronger
                continue
            blocked = False
            for f in range(needs.shape[1]):
                if needs[j, f] and missing[r, f]:
                    blocked = True
            if not blocked:
                chosen, strongest = j, value
        best[r] = chosen


def text_missing(items: dict[str, np.ndarray], n: int) -> np.ndarray:
    """(n, len(WORDED_FIELDS)) bool: where each value a wording can name is absent or empty."""
    return np.array(
        [[_text(items.get(f), row) == "" for f in WORDED_FIELDS] for row in range(n)], dtype=bool
    ).reshape(n, len(WORDED_FIELDS))


WORDED_FIELDS = ("category", "category_l1", "brand")  # the values wordings name


@lru_cache(maxsize=16)
def _templates(feature_names: tuple[str, ...]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Each feature's wording ("" for features a person cannot read), which have one, and
    which of WORDED_FIELDS each names (features x fields, int8)."""
    templates = [_REASONS.get(name, "") for name in feature_names]
    needs = np.array(
        [[("{" + f + "}") in t for f in WORDED_FIELDS] for t in templates], dtype=np.int8
    ).reshape(len(templates), len(WORDED_FIELDS))
    return templates, np.array([t != "" for t in templates], dtype=bool), needs


def _text(column: np.ndarray | None, row: int) -> str:
    if column is None or column[row] is None:
        return ""
    return str(column[row])
