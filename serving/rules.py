"""Business rules after ranking, and the one-line reason shown with each item.

    ranked candidates --filters (excluded ids, excluded categories)--> --boosts (category
    multipliers on the score's rank-preserving transform)--> --diversity (at most
    max_per_category of one category, in score order)--> top k

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

from serving.config import RulesConfig


@dataclass
class Ranked:
    item_ids: list[str]
    scores: list[float]
    positions: list[int]  # row of each chosen item in the candidate arrays


def apply_rules(
    rules: RulesConfig,
    item_ids: np.ndarray,
    scores: np.ndarray,
    categories: Sequence[Any] | np.ndarray,
    k: int,
    exclude: Iterable[str] = (),
) -> Ranked:
    """Top `k` of the candidates under the rules (fewer when fewer qualify)."""
    drop = set(exclude)
    banned = set(rules.exclude_categories)
    adjusted = np.asarray(scores, dtype=np.float64).copy()
    if rules.boosts:
        # Scores are margins of any sign: boost on exp(score), which keeps the order.
        factor = np.array([_boost(rules.boosts, c) for c in categories], dtype=np.float64)
        adjusted = adjusted + np.log(factor)
    order = np.argsort(-adjusted, kind="stable")  # ties keep the candidates' order
    chosen: Ranked = Ranked([], [], [])
    per_category: dict[str, int] = {}
    for pos in order:
        item, category = str(item_ids[pos]), categories[pos]
        if item in drop or _matches(category, banned):
            continue
        key = str(category) if category is not None else ""
        if key and per_category.get(key, 0) >= rules.max_per_category:
            continue
        per_category[key] = per_category.get(key, 0) + 1
        chosen.item_ids.append(item)
        chosen.scores.append(float(adjusted[pos]))
        chosen.positions.append(int(pos))
        if len(chosen.item_ids) == k:
            break
    return chosen


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
}
FALLBACK_REASON = "close to what you usually interact with"


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
    contrib = np.asarray(contributions)[:, :-1]
    if len(contrib) == 0:
        return []
    if missing is None:
        missing = text_missing(items, len(contrib))
    blocked = (missing.astype(np.int8) @ needs.T) > 0  # a value the wording names is missing
    helped = np.where(worded & ~blocked & (contrib > 0), contrib, -np.inf)
    best = helped.argmax(axis=1).tolist()
    out = []
    for row, j in enumerate(best):
        template = templates[j]
        if helped[row, j] == -np.inf:
            out.append(FALLBACK_REASON)
        elif "{" in template:
            out.append(template.format(**{f: _text(items.get(f), row) for f in FIELDS}))
        else:
            out.append(template)
    return out


def text_missing(items: dict[str, np.ndarray], n: int) -> np.ndarray:
    """(n, len(FIELDS)) bool: where each value a wording can name is absent or empty."""
    return np.array(
        [[_text(items.get(f), row) == "" for f in FIELDS] for row in range(n)], dtype=bool
    ).reshape(n, len(FIELDS))


FIELDS = ("category", "category_l1", "brand")  # the values wordings name


@lru_cache(maxsize=16)
def _templates(feature_names: tuple[str, ...]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Each feature's wording ("" for features a person cannot read), which have one, and
    which of FIELDS each names (features x fields, int8)."""
    templates = [_REASONS.get(name, "") for name in feature_names]
    needs = np.array(
        [[("{" + f + "}") in t for f in FIELDS] for t in templates], dtype=np.int8
    ).reshape(len(templates), len(FIELDS))
    return templates, np.array([t != "" for t in templates], dtype=bool), needs


def _text(column: np.ndarray | None, row: int) -> str:
    if column is None or column[row] is None:
        return ""
    return str(column[row])
