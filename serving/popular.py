"""Popular lists per request context, and the item tables the rules read, for one version.

    bundle.cold_start (blended per device and country) or the items' 7-day popularity rank
      --per (device, country), coded for the category rules--> cold-start lists, top-ups

The item block (serving.ranking.ItemBlock) and the rules per category are rebuilt when the
item table is reloaded (a materialisation) or the version changes; the popular list of a
context is kept until then (bounded: contexts are free text).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from serving.bundle import ModelBundle
from serving.config import RulesConfig
from serving.features import FeatureReader
from serving.ranking import ItemBlock
from serving.rules import CategoryRules, Ranked

POPULAR_CONTEXTS = 256
Context = tuple[str | None, str | None]  # (device, country)
Coded = tuple[np.ndarray, np.ndarray, np.ndarray, CategoryRules]  # ids, scores, codes, rules


class PopularLists:
    """Cold-start lists and top-ups in the request's context."""

    def __init__(self, bundle: ModelBundle, reader: FeatureReader, rules: RulesConfig) -> None:
        self.bundle, self.reader, self.rules = bundle, reader, rules
        self._block: ItemBlock | None = None
        # (block, rules per category of the item table, the block's items' category codes)
        self._category_rules: tuple[ItemBlock, CategoryRules, np.ndarray] | None = None
        self._lists: OrderedDict[Context, Coded] = OrderedDict()
        self._lists_rules: Any = None  # the CategoryRules `_lists` were coded for

    def block(self) -> ItemBlock:
        stamp = (self.bundle.version, self.reader.items.stamp)
        if self._block is None or self._block.stamp != stamp:
            self._block = ItemBlock.build(
                self.bundle, self.reader.items, self.reader.request_item_features
            )
        return self._block

    def category_rules(self) -> tuple[CategoryRules, np.ndarray]:
        """The rules per category of the item table, and the category code of each of the
        model's items (`ItemBlock` order), rebuilt with the block."""
        block = self.block()
        found = self._category_rules
        if found is None or found[0] is not block:
            table = CategoryRules.build(self.rules, self.reader.items.columns.get("category", ()))
            found = self._category_rules = (block, table, table.encode(block.text["category"]))
        return found[1], found[2]

    def cold_start(
        self, k: int, device: str | None, country: str | None, exclude: set[str]
    ) -> tuple[list[str], list[float], list[str]]:
        """Item ids, scores and reasons of the popular list for the context, topped up from
        the catalogue when short."""
        ids, scores, codes, table = self.in_context((device, country))
        dropped = np.array([i in exclude for i in ids], np.bool_) if exclude else None
        pos, adjusted = table.choose_full(scores, codes, k, dropped)
        chosen = Ranked(ids[pos].tolist(), adjusted.tolist(), pos.tolist())
        where = " ".join(
            p for p in (f"on {device}" if device else "", f"in {country}" if country else "") if p
        )
        why = f"popular {where}".strip() if where else "popular right now"
        out_ids, out_scores = chosen.item_ids, chosen.scores
        out_why = [why] * len(out_ids)
        if len(out_ids) < k:  # a short popular list: the rest of the catalogue
            more, more_scores, more_why = self.top_up(
                k, device, country, exclude | set(out_ids), out_scores
            )
            out_ids, out_scores = out_ids + more, out_scores + more_scores
            out_why = out_why + more_why
        return out_ids, out_scores, out_why

    def top_up(
        self, k: int, device: str | None, country: str | None, taken: set[str], scores: list[float]
    ) -> tuple[list[str], list[float], list[str]]:
        """Items to fill a list `scores` long up to `k`: popular items for the context,
        then the rest of the catalogue in the model's order, none of `taken` nor of an
        excluded category; scored below the list's lowest score so the response stays in
        score order."""
        need = k - len(scores)
        ids, _, codes, table = self.in_context((device, country))
        _, catalogue_codes = self.category_rules()
        pool = np.concatenate([ids, self.bundle.item_ids]).astype(object)
        pool_codes = np.concatenate([codes, catalogue_codes]).astype(np.int64)
        dropped = np.array([str(i) in taken for i in pool], np.bool_)
        _, first = np.unique(pool.astype(str), return_index=True)  # each item once
        repeated = np.ones(len(pool), np.bool_)
        repeated[first] = False
        order = -np.arange(len(pool), dtype=np.float64)  # popular first, then catalogue
        pos, _ = table.choose(order, pool_codes, need, dropped | repeated, diverse=False)
        low = min(scores) if scores else 0.0
        more = [str(i) for i in pool[pos]]
        return more, [low - 1.0 - n for n in range(len(more))], ["popular right now"] * len(more)

    def in_context(self, context: Context) -> Coded:
        """(ids, scores, category codes, the rules they are coded for) of the popular list
        for `context`, kept until the item table is reloaded or the model switches."""
        table, _ = self.category_rules()
        if self._lists_rules is not table:
            self._lists.clear()
            self._lists_rules = table
        found = self._lists.get(context)
        if found is None:
            ids, scores = self._popular(context)
            categories = self.reader.items.lookup(list(ids))["category"]
            found = self._lists[context] = (ids, scores, table.encode(categories), table)
            if len(self._lists) > POPULAR_CONTEXTS:  # contexts are free text: bounded
                self._lists.popitem(last=False)
        return found

    def _popular(self, context: Context) -> tuple[np.ndarray, np.ndarray]:
        blended = self.bundle.cold_start.scores(*context)
        if len(blended):
            return blended.index.to_numpy(object), blended.to_numpy(np.float64)
        rank = self.reader.items.columns.get("item_popularity_rank_7d")
        ids = self.reader.items.columns["item_id"]
        if rank is None:
            return ids, np.zeros(len(ids))
        score = -np.nan_to_num(np.asarray(rank, dtype=np.float64), nan=1e9)
        order = np.argsort(-score, kind="stable")
        return ids[order], score[order]


def answer_body(
    request_id: str, version: str, ids: list[str], scores: list[float], why: list[str]
) -> dict[str, Any]:
    """A /recommend response body (serving.api.RecommendResponse's shape)."""
    return {
        "request_id": request_id,
        "model_version": version,
        "items": [
            {"item_id": i, "score": round(float(s), 6), "reason": r}
            for i, s, r in zip(ids, scores, why, strict=True)
        ],
        "degraded": False,
    }
