"""Ranking on the request path: candidates -> the ranker's feature matrix -> scores.

    catalogue item features --once per (model, materialisation)--> ItemBlock: the
      catalogue's rows of the ranker's matrix (float32, categoricals as codes of the
      training categories), item columns filled, and which source fills each other column
    per request: the candidates' rows of the block (one gather), then cross features
      (tailwise.features.cross.cross_features_for_user, parity-tested against the
      training definition), per-item on-demand values and the user's scalars (one
      assignment) --> X --> the ranker (serving.forest)

Unseen or missing categories and values become NaN, XGBoost's missing. A parity test
checks this matrix and its scores against training's `ranker.encode` on the same rows.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving.bundle import ModelBundle
from serving.retrieval import Candidates
from tailwise.features.cross import CROSS_FEATURES, cross_features_for_user
from tailwise.features.online import ItemTable

RETRIEVAL_SCORE, RETRIEVAL_RANK = "retrieval_score", "retrieval_rank"
NAMED = {*CROSS_FEATURES, RETRIEVAL_SCORE, RETRIEVAL_RANK}


@dataclass
class ItemBlock:
    """The ranker's matrix for the whole catalogue with the item-level columns filled in
    (NaN elsewhere), and the plan for the rest: built once per (model, materialisation),
    so a request gathers its candidates' rows in one step and fills only the other columns.
    """

    values: np.ndarray  # (catalogue items, ranker features) float32; NaN outside item columns
    stamp: tuple[str, str | None]  # (model version, materialisation stamp)
    codes: dict[str, dict[str, int]] = field(default_factory=dict)  # category -> code, per name
    # The other columns by source, (position in the ranker's order, name):
    named: list[tuple[int, str]] = field(default_factory=list)  # cross / retrieval features
    per_item: list[tuple[int, str]] = field(default_factory=list)  # request-time item columns
    per_user: list[tuple[int, str]] = field(default_factory=list)  # the user's values

    @classmethod
    def build(
        cls, bundle: ModelBundle, items: ItemTable, per_item: Collection[str] = ()
    ) -> ItemBlock:
        """`per_item`: item features computed per request (per-item on-demand views)."""
        codes = {name: _codes(c) for name, c in bundle.categories.items()}
        names = bundle.ranker_features
        values = np.full((len(items.frame), len(names)), np.nan, dtype=np.float32)
        block = cls(values, (bundle.version, items.stamp), codes)
        for j, name in enumerate(names):
            if name in items.columns and name != "item_id":
                values[:, j] = encode_column(items.columns[name], None, codes.get(name))
            elif name in NAMED:
                block.named.append((j, name))
            elif name in per_item:
                block.per_item.append((j, name))
            else:
                block.per_user.append((j, name))
        return block


def ranking_matrix(
    bundle: ModelBundle,
    block: ItemBlock,
    positions: np.ndarray,
    row: dict[str, Any],
    items: dict[str, np.ndarray],
    candidates: Candidates,
) -> np.ndarray:
    """X (candidates x ranker features, float32) for one user's candidates.

    `positions`: each candidate's row in the item table (-1 when unknown); `items`: the
    candidates' item columns plus per-item on-demand values (item_age_days)."""
    n = len(candidates)
    known = positions >= 0
    X = block.values[np.where(known, positions, 0)]
    if not known.all():
        X[~known] = np.nan
    cross = cross_features_for_user(row, {**items, "item_id": candidates.item_ids}, n)
    named = {
        **cross,
        RETRIEVAL_SCORE: candidates.scores,
        RETRIEVAL_RANK: np.arange(1, n + 1, dtype=np.float64),
    }
    for j, name in block.named:
        X[:, j] = named[name]
    for j, name in block.per_item:
        if name in items:
            X[:, j] = encode_column(items[name], None, block.codes.get(name))
    if block.per_user:
        X[:, [j for j, _ in block.per_user]] = [
            encode_value(row.get(name), block.codes.get(name)) for _, name in block.per_user
        ]
    return X


def encode_column(
    values: np.ndarray,
    categories: list[str] | None,
    codes: dict[str, int] | None = None,
) -> np.ndarray:
    """Float column: category codes (NaN if unseen/missing) or numbers (NaN if missing).
    `codes`: the categories' code table, when the caller keeps one."""
    if codes is None and categories is not None:
        codes = _codes(categories)
    if codes is not None:
        return np.array([encode_value(v, codes) for v in values], np.float32)
    if values.dtype != object:
        return values.astype(np.float32)
    return np.array([_number(v) for v in values], dtype=np.float32)


def encode_value(value: Any, codes: dict[str, int] | None) -> float:
    """One value as `encode_column` encodes it."""
    if codes is None:
        return _number(value)
    return np.nan if _absent(value) else codes.get(str(value), np.nan)


def _codes(categories: list[str]) -> dict[str, int]:
    return {c: i for i, c in enumerate(categories)}


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _number(value: Any) -> float:
    if value is None:
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


__all__ = ["CROSS_FEATURES", "ItemBlock", "encode_column", "encode_value", "ranking_matrix"]
