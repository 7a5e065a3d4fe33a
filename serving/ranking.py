"""Ranking on the request path: candidates -> the ranker's feature matrix -> scores.

    catalogue item features --once per (model, materialisation)--> ItemBlock, in the
      model's item order (retrieval's rows): the catalogue's rows of the ranker's matrix
      (float32, categoricals as codes of the training categories) with the item columns
      filled, the cross features' item side encoded (tailwise.features.cross.CrossItems),
      the text columns rules and reasons read, and which source fills each other column
    per request: the candidates' rows of the block (one gather), the cross features
      (the candidates' rows of the encoded item side and the user's values,
      tailwise.features.cross.user_cross_features, the definition training uses),
      retrieval score and rank, per-item on-demand values and the user's values, each
      into its columns --> X --> ModelBundle.rank (XGBoost's inplace_predict)

Categoricals are codes of the categories training saved (ranker.json), the codes pandas
gave XGBoost in training; unseen or missing categories and values become NaN, XGBoost's
missing. A parity test checks this matrix and its scores against training's
`ranker.encode` and the trained model's predict on the same rows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from serving.bundle import ModelBundle
from serving.retrieval import Candidates
from serving.rules import WORDED_FIELDS, text_missing
from tailwise.features.cross import (
    CROSS_FEATURES,
    CROSS_ITEM_INPUTS,
    CrossItems,
    user_cross_features,
)
from tailwise.features.online import ItemTable

RETRIEVAL_SCORE, RETRIEVAL_RANK = "retrieval_score", "retrieval_rank"

AGE = "item_age_days"


@dataclass
class ItemBlock:
    """Everything per item a request needs, in the model's item order (`bundle.item_ids`,
    the rows retrieval returns), built once per (model, materialisation): the ranker's
    matrix for the whole catalogue with the item-level columns filled (NaN on items the
    feature store does not know, and in every other column), the cross features' item
    side encoded, the text columns, and where each other column of the ranker's matrix
    comes from. A request gathers its candidates' rows and fills the other columns
    (`ranking_matrix`)."""

    values: np.ndarray  # float32 (model items, ranker features): item columns filled
    stamp: tuple[str, str | None]  # (model version, materialisation stamp)
    table_rows: np.ndarray  # each model item's row in the item table, -1 where unknown
    cross_items: CrossItems  # the cross features' item side (the age: per request)
    text: dict[
        str, np.ndarray
    ]  # rules.WORDED_FIELDS columns, object, None where unknown or missing
    missing: np.ndarray  # rules.text_missing of `text`: what reasons may not name
    codes: dict[str, dict[str, int]] = field(default_factory=dict)  # category -> code, per name
    # The other columns by source, (position in the ranker's order, name):
    cross: list[tuple[int, str]] = field(default_factory=list)  # cross features
    per_item: list[tuple[int, str]] = field(default_factory=list)  # request-time item columns
    user: list[tuple[int, str]] = field(default_factory=list)  # the user's values
    score_column: int = -1  # retrieval_score's column (-1: not a ranker feature)
    rank_column: int = -1  # retrieval_rank's

    @cached_property
    def user_positions(self) -> np.ndarray:
        return np.array([j for j, _ in self.user], dtype=np.intp)

    @classmethod
    def build(
        cls, bundle: ModelBundle, items: ItemTable, per_item: Collection[str] = ()
    ) -> ItemBlock:
        """`per_item`: item features computed per request (per-item on-demand views)."""
        rows = {str(i): n for n, i in enumerate(items.columns["item_id"])}
        table_rows = np.array([rows.get(str(i), -1) for i in bundle.item_ids], dtype=np.intp)
        columns = {
            name: _in_model_order(values, table_rows)
            for name, values in items.columns.items()
            if name != "item_id"
        }
        n = len(table_rows)
        codes = {name: _codes(c) for name, c in bundle.categories.items()}
        names = bundle.ranker_features
        cross_inputs = {k: columns[k] for k in CROSS_ITEM_INPUTS if k in columns and k != AGE}
        cross_inputs["item_id"] = np.asarray(bundle.item_ids, dtype=object)
        text = {k: columns.get(k, np.full(n, None, dtype=object)) for k in WORDED_FIELDS}
        block = cls(
            np.full((n, len(names)), np.nan, dtype=np.float32),
            (bundle.version, items.stamp),
            table_rows,
            CrossItems.encode(cross_inputs, n),
            text,
            text_missing(text, n),
            codes,
        )
        for j, name in enumerate(names):
            if name in columns:
                block.values[:, j] = encode_column(columns[name], None, codes.get(name))
            elif name in CROSS_FEATURES:
                block.cross.append((j, name))
            elif name == RETRIEVAL_SCORE:
                block.score_column = j
            elif name == RETRIEVAL_RANK:
                block.rank_column = j
            elif name in per_item:
                block.per_item.append((j, name))
            else:
                block.user.append((j, name))
        return block

    def on_demand(self, values: Mapping[str, np.ndarray]) -> OnDemandItems:
        """Per-item on-demand values over the item table, in the model's item order, and
        the ranker's per-item columns encoded from them."""
        columns = {name: _in_model_order(v, self.table_rows) for name, v in values.items()}
        encoded = np.full((len(self.table_rows), len(self.per_item)), np.nan, np.float32)
        for k, (_, name) in enumerate(self.per_item):
            if name in columns:
                encoded[:, k] = encode_column(columns[name], None, self.codes.get(name))
        return OnDemandItems(columns, encoded, np.array([j for j, _ in self.per_item], np.intp))


@dataclass(frozen=True)
class OnDemandItems:
    """Per-item on-demand values at one request time (they change once per second)."""

    columns: dict[str, np.ndarray]  # name -> values in the model's item order
    encoded: np.ndarray  # float32 (model items, ItemBlock.per_item): X's per-item columns
    positions: np.ndarray  # intp: each encoded column's position in X


def ranking_matrix(
    bundle: ModelBundle,
    block: ItemBlock,
    row: dict[str, Any],
    on_demand: OnDemandItems,
    candidates: Candidates,
) -> np.ndarray:
    """X (candidates x ranker features, float32, C order: what XGBoost's inplace_predict
    reads without a copy) for one user's candidates.

    `on_demand`: per-item on-demand values (item_age_days) at the request time
    (`ItemBlock.on_demand`)."""
    rows = candidates.rows
    n = len(rows)
    X = block.values.take(rows, axis=0)
    if block.cross:
        age = on_demand.columns.get(AGE)
        items = block.cross_items.take(rows, {AGE: age[rows]} if age is not None else None)
        cross = user_cross_features(row, items)
        for j, name in block.cross:
            X[:, j] = cross[name]
    if block.score_column >= 0:
        X[:, block.score_column] = candidates.scores
    if block.rank_column >= 0:
        X[:, block.rank_column] = np.arange(1, n + 1)
    if block.per_item:
        X[:, on_demand.positions] = on_demand.encoded[rows]
    if block.user:  # one value per column for every candidate
        X[:, block.user_positions] = [
            encode_value(row.get(name), block.codes.get(name)) for _, name in block.user
        ]
    return X


def with_columns(X: np.ndarray, columns: dict[int, np.ndarray]) -> np.ndarray:
    """`X` with ranker feature j of candidate i set to columns[j][i]: values that differ
    per candidate and come from neither the item table nor the cross features (the
    per-(user, item) history features, serving.history)."""
    for j, values in columns.items():
        X[:, j] = values
    return X


def _in_model_order(values: np.ndarray, table_rows: np.ndarray) -> np.ndarray:
    """An item-table column in the model's item order: None (NaN in float columns) where
    the item table does not have the item."""
    missing = table_rows < 0
    if len(values) == 0:
        return np.full(len(table_rows), None, dtype=object)
    picked = values[np.where(missing, 0, table_rows)]
    if missing.any():
        floats = picked.dtype.kind == "f"
        picked = picked.astype(np.float64 if floats else object)
        picked[missing] = np.nan if floats else None
    return picked


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


__all__ = [
    "CROSS_FEATURES",
    "ItemBlock",
    "OnDemandItems",
    "encode_column",
    "encode_value",
    "ranking_matrix",
    "with_columns",
]
