"""Ranking on the request path: candidates -> the ranker's feature matrix -> scores.

    catalogue item features --once per (model, materialisation)--> ItemBlock: float32
      columns in the ranker's order (categoricals as codes of the training categories)
    per request: user scalars (converted once, set in one assignment), per-item on-demand values, cross features
      (tailwise.features.cross.cross_features_for_user, parity-tested against the
      training definition) and the item block's rows of the candidates --> X --> XGBoost

Unseen or missing categories and values become NaN, XGBoost's missing. A parity test
checks this matrix and its scores against training's `ranker.encode` on the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving.bundle import ModelBundle
from serving.retrieval import Candidates
from tailwise.features.cross import CROSS_FEATURES, cross_features_for_user
from tailwise.features.online import ItemTable

RETRIEVAL_SCORE, RETRIEVAL_RANK = "retrieval_score", "retrieval_rank"


@dataclass
class ItemBlock:
    """The item-level ranker columns for the whole catalogue, ready to index."""

    columns: list[int]  # positions in the ranker's feature order
    values: np.ndarray  # (catalogue items, len(columns)) float32
    stamp: tuple[str, str | None]  # (model version, materialisation stamp)
    codes: dict[str, dict[str, int]] = field(default_factory=dict)  # category -> code, per name

    @classmethod
    def build(cls, bundle: ModelBundle, items: ItemTable) -> ItemBlock:
        codes = {name: _codes(c) for name, c in bundle.categories.items()}
        columns, blocks = [], []
        for j, name in enumerate(bundle.ranker_features):
            if name in items.columns and name != "item_id":
                columns.append(j)
                blocks.append(encode_column(items.columns[name], None, codes.get(name)))
        values = np.stack(blocks, axis=1) if blocks else np.zeros((len(items.frame), 0))
        return cls(columns, values.astype(np.float32), (bundle.version, items.stamp), codes)


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
    X = np.full((n, len(bundle.ranker_features)), np.nan, dtype=np.float32)
    known = positions >= 0
    if block.columns:
        X[np.ix_(known, np.asarray(block.columns, dtype=np.intp))] = block.values[positions[known]]
    cross = cross_features_for_user(row, {**items, "item_id": candidates.item_ids}, n)
    named = {
        **cross,
        RETRIEVAL_SCORE: candidates.scores,
        RETRIEVAL_RANK: np.arange(1, n + 1, dtype=np.float64),
    }
    in_block = set(block.columns)
    user_columns, user_values = [], []  # the user's scalars: the same in every row
    for j, name in enumerate(bundle.ranker_features):
        if j in in_block:
            continue
        codes = block.codes.get(name)
        if name in named:
            X[:, j] = named[name]
        elif name in items:
            X[:, j] = encode_column(items[name], None, codes)
        else:
            user_columns.append(j)
            user_values.append(encode_value(row.get(name), codes))
    if user_columns:
        X[:, user_columns] = np.array(user_values, dtype=np.float32)
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
