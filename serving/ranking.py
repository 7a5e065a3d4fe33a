"""Ranking on the request path: candidates -> the ranker's feature matrix -> scores.

    catalogue item features --once per (model, materialisation)--> ItemBlock, in the
      model's item order (retrieval's rows): the catalogue's rows of the ranker's matrix
      (float32, categoricals as codes of the training categories) with the item columns
      filled, the cross features' item side encoded (CrossItems), the text columns rules
      and reasons read, and which source fills each other column
    per request: the candidates' rows of the block (one gather), then cross features
      (tailwise.features.cross.cross_matrix, parity-tested against the
      training definition), per-item on-demand values and the user's scalars (one
      assignment) --> X --> the ranker (serving.forest)

Unseen or missing categories and values become NaN, XGBoost's missing. A parity test
checks this matrix and its scores against training's `ranker.encode` on the same rows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from serving.bundle import ModelBundle
from serving.forest import split_rows
from serving.retrieval import Candidates
from serving.rules import FIELDS, text_missing
from tailwise.features.cross import CROSS_FEATURES, CROSS_INPUTS, CrossItems, cross_matrix
from tailwise.features.online import ItemTable

RETRIEVAL_SCORE, RETRIEVAL_RANK = "retrieval_score", "retrieval_rank"
NAMED = {*CROSS_FEATURES, RETRIEVAL_SCORE, RETRIEVAL_RANK}
TEXT = FIELDS  # what rules and reasons read
AGE = "item_age_days"


@dataclass
class ItemBlock:
    """Everything per item a request needs, in the model's item order (`bundle.item_ids`,
    the rows retrieval returns), built once per (model, materialisation): the ranker's
    item-level columns for the whole catalogue (NaN on items the feature store does not
    know), the cross features' item side, the text columns, and the plan for the other
    columns. A request gathers its candidates' rows and fills the other columns.

    The columns that differ between one user's candidates (`varying`: item, cross,
    retrieval and per-item columns) are built as rows of a features x candidates matrix;
    the user's columns are the same for every candidate and are given once
    (`RankInputs`).
    """

    values: np.ndarray  # float32 (model items, item_columns): the item-level columns
    stamp: tuple[str, str | None]  # (model version, materialisation stamp)
    table_rows: np.ndarray  # each model item's row in the item table, -1 where unknown
    cross: CrossItems
    text: dict[str, np.ndarray]  # TEXT columns, object, None where unknown or missing
    missing: np.ndarray  # rules.text_missing of `text`: what reasons may not name
    codes: dict[str, dict[str, int]] = field(default_factory=dict)  # category -> code, per name
    # The other columns by source, (position in the ranker's order, name):
    named: list[tuple[int, str]] = field(default_factory=list)  # retrieval features
    per_item: list[tuple[int, str]] = field(default_factory=list)  # request-time item columns
    score_column: int = -1  # retrieval_score's column (-1: not a ranker feature)
    rank_column: int = -1  # retrieval_rank's
    per_item_columns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    # Cross features: their columns in X, and each one's column of `cross_matrix`.
    cross_columns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    cross_sources: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    # The user's values: their columns in X, names, and code tables (None: a number).
    user_columns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    user_names: list[str] = field(default_factory=list)
    user_codes: list[dict[str, int] | None] = field(default_factory=list)
    item_columns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    # The varying columns in RankInputs.varying's row order (item, cross, retrieval score,
    # retrieval rank, per-item) and each ranker feature's row there (-1: the user's).
    varying: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    slot: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

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
        item_columns = [j for j, name in enumerate(names) if name in columns]
        values = np.empty((n, len(item_columns)), dtype=np.float32)
        inputs = {k: columns[k] for k in CROSS_INPUTS if k in columns}
        inputs["item_id"] = bundle.item_ids
        text = {k: columns.get(k, np.full(n, None, dtype=object)) for k in TEXT}
        block = cls(
            values,
            (bundle.version, items.stamp),
            table_rows,
            CrossItems.encode(inputs, n),
            text,
            text_missing(text, n),
            codes,
        )
        cross: list[tuple[int, int]] = []
        user: list[int] = []
        for j, name in enumerate(names):
            if name in columns:
                values[:, item_columns.index(j)] = encode_column(
                    columns[name], None, codes.get(name)
                )
            elif name in CROSS_FEATURES:
                cross.append((j, CROSS_FEATURES.index(name)))
            elif name in NAMED:
                block.named.append((j, name))
            elif name in per_item:
                block.per_item.append((j, name))
            else:
                user.append(j)
        block.cross_columns = np.array([j for j, _ in cross], dtype=np.intp)
        named_columns = {name: j for j, name in block.named}
        block.score_column = named_columns.get(RETRIEVAL_SCORE, -1)
        block.rank_column = named_columns.get(RETRIEVAL_RANK, -1)
        block.per_item_columns = np.array([j for j, _ in block.per_item], dtype=np.intp)
        block.cross_sources = np.array([k for _, k in cross], dtype=np.intp)
        block.user_columns = np.array(user, dtype=np.intp)
        block.user_names = [names[j] for j in user]
        block.user_codes = [codes.get(name) for name in block.user_names]
        block.item_columns = np.array(item_columns, dtype=np.intp)
        retrieval = [j for j in (block.score_column, block.rank_column) if j >= 0]
        block.varying = np.concatenate(
            [block.item_columns, block.cross_columns, retrieval, block.per_item_columns]
        ).astype(np.intp)
        block.slot = np.full(len(names), -1, dtype=np.int64)
        block.slot[block.varying] = np.arange(len(block.varying))
        return block

    def on_demand(self, values: Mapping[str, np.ndarray]) -> OnDemandItems:
        """Per-item on-demand values over the item table, in the model's item order, and
        the ranker's per-item columns encoded from them."""
        columns = {name: _in_model_order(v, self.table_rows) for name, v in values.items()}
        encoded = np.full((len(self.table_rows), len(self.per_item)), np.nan, np.float32)
        for k, (_, name) in enumerate(self.per_item):
            if name in columns:
                encoded[:, k] = encode_column(columns[name], None, self.codes.get(name))
        return OnDemandItems(columns, encoded)


@dataclass(frozen=True)
class OnDemandItems:
    """Per-item on-demand values at one request time (they change once per second)."""

    columns: dict[str, np.ndarray]  # name -> values in the model's item order
    encoded: np.ndarray  # float32 (model items, ItemBlock.per_item): X's per-item columns


@dataclass(frozen=True)
class RankInputs:
    """One user's candidates as the ranker reads them: feature f of candidate i is
    varying[slot[f], i] where slot[f] >= 0, else fixed[f] (the user's values)."""

    varying: np.ndarray  # float32 (ItemBlock.varying, candidates)
    slot: np.ndarray  # int64 per ranker feature
    fixed: np.ndarray  # float32 per ranker feature (NaN where slot >= 0)

    def rows(self, positions: np.ndarray | None = None) -> np.ndarray:
        """X (candidates x ranker features, float32) of the candidates at `positions`
        (all by default)."""
        return split_rows(self.varying, self.slot, self.fixed, positions)


def ranking_matrix(
    bundle: ModelBundle,
    block: ItemBlock,
    row: dict[str, Any],
    on_demand: OnDemandItems,
    candidates: Candidates,
) -> np.ndarray:
    """X (candidates x ranker features, float32) for one user's candidates."""
    return ranking_inputs(bundle, block, row, on_demand, candidates).rows()


def ranking_inputs(
    bundle: ModelBundle,
    block: ItemBlock,
    row: dict[str, Any],
    on_demand: OnDemandItems,
    candidates: Candidates,
) -> RankInputs:
    """The ranker's inputs for one user's candidates (`ranking_matrix`'s X, split).

    `on_demand`: per-item on-demand values (item_age_days) at the request time
    (`ItemBlock.on_demand`). The cross features come from `cross_matrix`; the varying
    rows are filled in one compiled pass (`_fill`)."""
    rows = candidates.rows
    n = len(rows)
    age = on_demand.columns.get(AGE)
    cross = cross_matrix(
        row, block.cross, rows, age[rows] if age is not None else np.full(n, np.nan)
    )
    fixed = np.full(len(block.slot), np.nan, dtype=np.float32)
    fixed[block.user_columns] = [
        value if codes is None and value.__class__ is float else encode_value(value, codes)
        for codes, value in zip(block.user_codes, map(row.get, block.user_names), strict=True)
    ]
    varying = np.empty((len(block.varying), n), dtype=np.float32)
    _fill(
        varying,
        block.values,
        np.asarray(rows, dtype=np.int64),
        cross,
        block.cross_sources,
        block.score_column >= 0,
        block.rank_column >= 0,
        np.asarray(candidates.scores, dtype=np.float64),
        on_demand.encoded,
    )
    return RankInputs(varying, block.slot, fixed)


def with_columns(inputs: RankInputs, columns: dict[int, np.ndarray]) -> RankInputs:
    """`inputs` with ranker feature j of candidate i set to columns[j][i]: values that
    differ per candidate and come from neither the item table nor the cross features
    (the per-(user, item) history features, serving.history)."""
    if not columns:
        return inputs
    slot, fixed = inputs.slot.copy(), inputs.fixed.copy()
    rows = [inputs.varying]
    at = len(inputs.varying)
    for j, values in columns.items():
        rows.append(np.asarray(values, dtype=np.float32).reshape(1, -1))
        slot[j], fixed[j] = at, np.nan
        at += 1
    return RankInputs(np.ascontiguousarray(np.vstack(rows)), slot, fixed)


@njit(cache=True, nogil=True)
def _fill(
    varying: np.ndarray,
    values: np.ndarray,
    rows: np.ndarray,
    cross: np.ndarray,
    cross_sources: np.ndarray,
    with_score: bool,
    with_rank: bool,
    scores: np.ndarray,
    per_item: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """The varying rows in ItemBlock.varying's order: the block's item columns of
    rows[i], the cross features, the retrieval score and rank when the ranker reads
    them, the per-item on-demand columns (float32 casts, as numpy's assignment)."""
    n = rows.shape[0]
    for i in range(n):
        r = rows[i]
        for j in range(values.shape[1]):
            varying[j, i] = values[r, j]
    at = values.shape[1]
    for c in range(cross_sources.shape[0]):
        for i in range(n):
            varying[at, i] = np.float32(cross[i, cross_sources[c]])
        at += 1
    if with_score:
        for i in range(n):
            varying[at, i] = np.float32(scores[i])
        at += 1
    if with_rank:
        for i in range(n):
            varying[at, i] = np.float32(i + 1)
        at += 1
    for c in range(per_item.shape[1]):
        for i in range(n):
            varying[at, i] = per_item[rows[i], c]
        at += 1


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
    "RankInputs",
    "encode_column",
    "encode_value",
    "ranking_inputs",
    "ranking_matrix",
    "with_columns",
]
