"""The ranker's trees compiled for the request path: scores and reasons' contributions.

    XGBoost JSON model --Forest.from_booster (trees up to the best iteration)--> flat node
      arrays --numba--> margin scores of candidate rows; per-feature contributions
      (XGBoost's approximate SHAP, Saabas) of the chosen rows

Scores come from the trees as bit masks (QuickScorer: Lucchese et al., SIGIR 2015): each
tree's leaves are bits, left to right; every split a row goes right at clears the bits
of the leaves to its left, and the row's leaf is the lowest bit left. Splits are taken
one at a time over all rows (a vectorised loop over a feature's values) instead of one
row at a time down each tree (a branch per step). Features with one value across the
rows (the user's own, for one request's candidates) are decided once for all rows. On
a request's 200 candidates this is ~5x faster than the walk, which still computes the
contributions and scores trees of more than 64 leaves.

Why not XGBoost's own predict: on one request's 200 candidates it costs ~0.2-0.35 ms,
most of it fixed per call (proxy DMatrix, JSON configs, output copies), and its
contributions need a DMatrix (~0.08 ms) before predicting (~0.2 ms for 10 rows). These
loops walk the same trees in microseconds. XGBoost stays the reference: `check_forest`
compares both on probe rows (missing values, unseen and out-of-range categories, values on
every split threshold) before a version takes traffic, and the bundle refuses a version
where they differ.

Split semantics are XGBoost's (predictor/predict_fn.h): a missing value takes the node's
default child; a numerical split goes left when value < threshold (float32); a
categorical split goes right when the value's category is in the node's set, left when
it is not or is not a valid category (negative, or too large).

Only the trees up to the booster's `best_iteration` count: that is the model training
evaluated (the scikit-learn wrapper predicts with them); trees added after it are the
early-stopping window.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

# XGBoost's largest valid category (common/categorical.h: float can represent it exactly).
MAX_CATEGORY = 1 << 24
_NONE = np.zeros((0, 1), dtype=np.float32)  # no contributions wanted


class ForestError(ValueError):
    """The booster has a shape these loops do not walk (the message says which)."""


@dataclass(frozen=True)
class Forest:
    """All trees' nodes in flat arrays; node ids are global (tree offsets added)."""

    roots: np.ndarray  # int32, the root node of every tree used
    left: np.ndarray  # int32, -1 at leaves
    right: np.ndarray  # int32
    feature: np.ndarray  # int32 split feature
    threshold: np.ndarray  # float32 split value (numerical nodes)
    default_left: np.ndarray  # bool, where a missing value goes
    categorical: np.ndarray  # bool, a categorical split
    cat_start: np.ndarray  # int32, the node's categories in `cats` (sorted)
    cat_end: np.ndarray  # int32
    cats: np.ndarray  # int32
    value: np.ndarray  # float32, leaf value at leaves
    mean: np.ndarray  # float32, hessian-weighted mean of the leaves below (contributions)
    base: float  # base margin
    n_features: int
    quick: QuickForest | None = None  # the same trees as bit masks (None: too many leaves)

    @classmethod
    def from_booster(cls, booster: Any) -> Forest:
        """The trees XGBoost's scikit-learn predict would use (up to best_iteration)."""
        model = json.loads(booster.save_raw("json"))
        learner = model["learner"]
        gbm = learner["gradient_booster"]
        if gbm.get("name") != "gbtree":
            raise ForestError(f"booster {gbm.get('name')!r}: only gbtree is walked here")
        params = learner["learner_model_param"]
        if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) != 1:
            raise ForestError("only single-output boosters are walked here")
        trees = gbm["model"]["trees"]
        per_round = int(gbm["model"]["gbtree_model_param"].get("num_parallel_tree", "1"))
        best = booster.attr("best_iteration")
        if best is not None:
            trees = trees[: (int(best) + 1) * per_round]
        forest = cls.from_trees(trees, 0.0, booster.num_features())
        # The margin XGBoost adds to the trees' sum (base_score in the objective's margin
        # space), measured rather than re-derived per objective: an all-missing row.
        row = np.full((1, forest.n_features), np.nan, dtype=np.float32)
        margin = booster.inplace_predict(
            row, predict_type="margin", iteration_range=(0, len(forest.roots) // per_round)
        )
        base = float(np.asarray(margin).reshape(-1)[0]) - float(forest.predict(row)[0])
        return dataclasses.replace(forest, base=base, quick=QuickForest.of(forest))

    @classmethod
    def from_trees(cls, trees: list[dict[str, Any]], base: float, n_features: int) -> Forest:
        parts: dict[str, list[np.ndarray]] = {k: [] for k in _NODE_FIELDS}
        roots: list[int] = []
        cats: list[np.ndarray] = []
        offset = n_cats = 0
        for tree in trees:
            if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
                raise ForestError("vector leaves are not walked here")
            left = np.asarray(tree["left_children"], dtype=np.int32)
            right = np.asarray(tree["right_children"], dtype=np.int32)
            leaf = left == -1
            n = len(left)
            split_type = np.asarray(tree.get("split_type", [0] * n), dtype=np.int32)
            cat_start = np.zeros(n, dtype=np.int32)
            cat_end = np.zeros(n, dtype=np.int32)
            node_cats = tree.get("categories", [])
            for nid, start, size in zip(
                tree.get("categories_nodes", []),
                tree.get("categories_segments", []),
                tree.get("categories_sizes", []),
                strict=True,
            ):
                chosen = sorted(int(c) for c in node_cats[start : start + size])
                cat_start[nid], cat_end[nid] = n_cats, n_cats + len(chosen)
                n_cats += len(chosen)
                cats.append(np.asarray(chosen, dtype=np.int32))
            conditions = np.asarray(tree["split_conditions"], dtype=np.float32)
            parts["left"].append(np.where(leaf, -1, left + offset).astype(np.int32))
            parts["right"].append(np.where(leaf, -1, right + offset).astype(np.int32))
            parts["feature"].append(np.asarray(tree["split_indices"], dtype=np.int32))
            parts["threshold"].append(conditions)
            parts["default_left"].append(np.asarray(tree["default_left"], dtype=bool))
            parts["categorical"].append(np.asarray((split_type == 1) & ~leaf, dtype=bool))
            parts["cat_start"].append(cat_start)
            parts["cat_end"].append(cat_end)
            parts["value"].append(np.where(leaf, conditions, 0).astype(np.float32))
            hess = np.asarray(tree["sum_hessian"], dtype=np.float64)
            parts["mean"].append(_node_means(left, right, conditions, hess))
            roots.append(offset)
            offset += n
        flat = {
            k: np.concatenate(v) if v else np.zeros(0, dtype=_NODE_FIELDS[k])
            for k, v in parts.items()
        }
        arrays: dict[str, Any] = {
            k: np.ascontiguousarray(v, dtype=_NODE_FIELDS[k]) for k, v in flat.items()
        }
        forest = cls(
            roots=np.asarray(roots, dtype=np.int32),
            cats=np.concatenate(cats) if cats else np.zeros(0, dtype=np.int32),
            base=float(base),
            n_features=int(n_features),
            **arrays,
        )
        return dataclasses.replace(forest, quick=QuickForest.of(forest))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Margin scores (float64) of rows of X (float32, n_features columns, NaN missing)."""
        X = self._rows(X)
        scores = np.empty(len(X), dtype=np.float32)
        if self.quick is not None and len(X):
            self.quick.score(X, np.float32(self.base), scores)
        else:
            self.walk(X, scores)
        return scores.astype(np.float64)

    def predict_split(self, varying: np.ndarray, slot: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        """`predict` of rows given as the features that differ between them and those that
        do not: feature f of row r is varying[slot[f], r] where slot[f] >= 0, else fixed[f]
        (float32). One user's candidates share every user feature: their splits are decided
        once, and those columns are neither written per row nor read."""
        n = varying.shape[1]
        scores = np.empty(n, dtype=np.float32)
        if self.quick is not None and n:
            self.quick.score_split(varying, slot, fixed, np.float32(self.base), scores)
        else:
            self.walk(split_rows(varying, slot, fixed), scores)
        return scores.astype(np.float64)

    def walk(self, X: np.ndarray, scores: np.ndarray) -> None:
        """Scores by walking every row down every tree (what `predict` is checked against)."""
        _compiled(self._rows(X), *self._arrays(), np.float32(self.base), scores, _NONE)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature contributions of rows of X, bias last (XGBoost's approx_contribs)."""
        X = self._rows(X)
        scores = np.empty(len(X), dtype=np.float32)
        out = np.zeros((len(X), self.n_features + 1), dtype=np.float32)
        _compiled(X, *self._arrays(), np.float32(self.base), scores, out)
        return out

    def _rows(self, X: np.ndarray) -> np.ndarray:
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ForestError(f"rows of {self.n_features} features expected, got {X.shape}")
        return np.ascontiguousarray(X, dtype=np.float32)

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (
            self.roots,
            self.left,
            self.right,
            self.feature,
            self.threshold,
            self.default_left,
            self.categorical,
            self.cat_start,
            self.cat_end,
            self.cats,
            self.value,
            self.mean,
        )


def split_rows(
    varying: np.ndarray, slot: np.ndarray, fixed: np.ndarray, positions: np.ndarray | None = None
) -> np.ndarray:
    """The rows (float32, one per feature column) of rows given as in
    `Forest.predict_split`: all of them, or those at `positions`."""
    if positions is None:
        positions = np.arange(varying.shape[1])
    X = np.empty((len(positions), len(slot)), dtype=np.float32)
    _split_rows(varying, np.asarray(positions, dtype=np.int64), slot, fixed, X)
    return X


@njit(cache=True, nogil=True)
def _split_rows(
    varying: np.ndarray, positions: np.ndarray, slot: np.ndarray, fixed: np.ndarray, X: np.ndarray
) -> None:  # pragma: no cover - compiled
    for i in range(positions.shape[0]):
        for j in range(slot.shape[0]):
            X[i, j] = fixed[j] if slot[j] < 0 else varying[slot[j], positions[i]]


@dataclass(frozen=True)
class QuickForest:
    """The trees as bit masks over their leaves (see the module docstring).

    Splits are kept in two lists, numerical and categorical, each split with its tree,
    feature, where a missing value goes, and `keep`: the tree's leaves that stay possible
    when a row goes right (all but those of its left subtree)."""

    tree: np.ndarray  # int32, numerical splits
    feature: np.ndarray  # int32
    threshold: np.ndarray  # float32
    default_left: np.ndarray  # bool
    keep: np.ndarray  # uint64
    cat_tree: np.ndarray  # int32, categorical splits
    cat_feature: np.ndarray  # int32
    cat_default_left: np.ndarray  # bool
    cat_keep: np.ndarray  # uint64
    cat_right: np.ndarray  # bool (categorical splits, categories + 1): True goes right
    leaf_values: np.ndarray  # float32 (trees, 64), each tree's leaves left to right
    leaves: np.ndarray  # uint64 per tree: a bit per leaf

    @classmethod
    def of(cls, forest: Forest) -> QuickForest | None:
        """None when a tree has more than 64 leaves or categories are too many to tabulate."""
        n_trees = len(forest.roots)
        leaf_values = np.zeros((n_trees, LEAF_BITS), dtype=np.float32)
        leaves = np.zeros(n_trees, dtype=np.uint64)
        numerical: list[tuple[int, int, int]] = []  # (tree, node, keep)
        categorical: list[tuple[int, int, int]] = []
        for t, root in enumerate(forest.roots):
            count = 0
            stack: list[tuple[int, int]] = [(int(root), -1)]  # (node, leaf count at entry)
            while stack:  # depth first, left before right: leaves numbered left to right
                nid, entered = stack.pop()
                if forest.left[nid] == -1:
                    if count == LEAF_BITS:
                        return None
                    leaf_values[t, count] = forest.value[nid]
                    count += 1
                elif entered < 0:
                    stack.append((nid, count))
                    stack.append((int(forest.left[nid]), -1))
                else:  # left subtree done: its leaves are entered .. count-1
                    left_leaves = ((1 << count) - 1) ^ ((1 << entered) - 1)
                    keep = ~left_leaves & ALL_BITS
                    split = (t, nid, keep)
                    (categorical if forest.categorical[nid] else numerical).append(split)
                    stack.append((int(forest.right[nid]), -1))
            leaves[t] = (1 << count) - 1 if count < LEAF_BITS else ALL_BITS
        largest = int(forest.cats.max()) + 1 if len(forest.cats) else 0
        if largest > MAX_TABULATED:
            return None
        numerical.sort(key=lambda x: (int(forest.feature[x[1]]), x[0]))  # a feature's in a row
        cat_right = np.zeros((len(categorical), largest + 1), dtype=bool)  # last: invalid
        for k, (_, nid, _) in enumerate(categorical):
            cat_right[k, forest.cats[forest.cat_start[nid] : forest.cat_end[nid]]] = True
        num = np.array([n for _, n, _ in numerical], dtype=np.intp)
        cat = np.array([n for _, n, _ in categorical], dtype=np.intp)
        return cls(
            tree=np.array([t for t, _, _ in numerical], dtype=np.int32),
            feature=forest.feature[num],
            threshold=forest.threshold[num],
            default_left=forest.default_left[num],
            keep=np.array([k for _, _, k in numerical], dtype=np.uint64),
            cat_tree=np.array([t for t, _, _ in categorical], dtype=np.int32),
            cat_feature=forest.feature[cat],
            cat_default_left=forest.default_left[cat],
            cat_keep=np.array([k for _, _, k in categorical], dtype=np.uint64),
            cat_right=cat_right,
            leaf_values=leaf_values,
            leaves=leaves,
        )

    def score(self, X: np.ndarray, base: np.float32, scores: np.ndarray) -> None:
        """Margin scores of the rows of X (float32, at least one row) into `scores`."""
        n_features = X.shape[1]
        self.score_split(
            np.ascontiguousarray(X.T, dtype=np.float32),
            np.arange(n_features, dtype=np.int64),
            np.zeros(n_features, dtype=np.float32),
            base,
            scores,
        )

    def score_split(
        self,
        varying: np.ndarray,
        slot: np.ndarray,
        fixed: np.ndarray,
        base: np.float32,
        scores: np.ndarray,
    ) -> None:
        """`score` of rows given as in `Forest.predict_split`."""
        _quick(
            varying,
            slot,
            fixed,
            self.tree,
            self.feature,
            self.threshold,
            self.default_left,
            self.keep,
            self.cat_tree,
            self.cat_feature,
            self.cat_default_left,
            self.cat_keep,
            self.cat_right,
            self.leaf_values,
            self.leaves,
            _DE_BRUIJN_INDEX,
            base,
            scores,
        )


LEAF_BITS = 64
ALL_BITS = (1 << LEAF_BITS) - 1
MAX_TABULATED = 1 << 16  # categories per feature the categorical splits tabulate
# The lowest set bit's index: (bit * constant) >> 58 is a distinct 6-bit index per bit.
_DE_BRUIJN = 0x03F79D71B4CB0A89
_DE_BRUIJN_INDEX = np.zeros(LEAF_BITS, dtype=np.int64)
for _bit in range(LEAF_BITS):
    _DE_BRUIJN_INDEX[((1 << _bit) * _DE_BRUIJN & ALL_BITS) >> 58] = _bit


_NODE_FIELDS: dict[str, Any] = {
    "left": np.int32,
    "right": np.int32,
    "feature": np.int32,
    "threshold": np.float32,
    "default_left": np.bool_,
    "categorical": np.bool_,
    "cat_start": np.int32,
    "cat_end": np.int32,
    "value": np.float32,
    "mean": np.float32,
}


def probe_matrix(forest: Forest, categorical: list[int], rows: int = 64) -> np.ndarray:
    """Rows that visit both sides of every split: each feature's thresholds, the values
    just below them, missing values, and for categorical features their split categories,
    unseen ones, negatives and fractions."""
    rng = np.random.default_rng(0)
    X = np.full((rows, forest.n_features), np.nan, dtype=np.float32)
    internal = forest.left >= 0
    for j in range(forest.n_features):
        used = internal & (forest.feature == j)
        if j in categorical:
            seen = np.concatenate(
                [
                    forest.cats[s:e]
                    for s, e in zip(forest.cat_start[used], forest.cat_end[used], strict=True)
                ]
                or [np.zeros(0, dtype=np.int32)]
            ).astype(np.float32)
            pool = np.concatenate([seen, [0.0, 1.0, 2.0, 57.0, -1.0, 1.5, np.nan]])
        else:
            cut = forest.threshold[used & ~forest.categorical]
            below = np.nextafter(cut, np.float32(-np.inf))
            pool = np.concatenate([cut, below, [0.0, -1.0, 1e6, np.nan]]).astype(np.float32)
        X[:, j] = rng.choice(pool, size=rows)
    return X


def _node_means(
    left: np.ndarray, right: np.ndarray, leaf_value: np.ndarray, hess: np.ndarray
) -> np.ndarray:
    """XGBoost's FillNodeMeanValue: a leaf's value, else the hessian-weighted mean of its
    children's means (children have higher ids than their parent)."""
    mean = np.zeros(len(left), dtype=np.float32)
    for nid in range(len(left) - 1, -1, -1):
        if left[nid] == -1:
            mean[nid] = leaf_value[nid]
        else:
            lo, hi = left[nid], right[nid]
            total = np.float32(mean[lo] * np.float32(hess[lo]))
            total = np.float32(total + np.float32(mean[hi] * np.float32(hess[hi])))
            mean[nid] = np.float32(total / np.float32(hess[nid]))
    return mean


@njit(cache=True, nogil=True)
def _walk(
    X: np.ndarray,
    roots: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    default_left: np.ndarray,
    categorical: np.ndarray,
    cat_start: np.ndarray,
    cat_end: np.ndarray,
    cats: np.ndarray,
    value: np.ndarray,
    mean: np.ndarray,
    base: np.float32,
    scores: np.ndarray,
    contributions: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Every row down every tree: its score into `scores`, and when `contributions` has
    rows, each split's change of the node mean to the split feature (bias last).

    One function with the step written out: a helper called per node, even inlined,
    made the walk ~15x slower (array reference counting on every call)."""
    explain = contributions.shape[0] > 0
    bias = contributions.shape[1] - 1
    for r in range(X.shape[0]):
        total = np.float32(0.0)
        for t in range(roots.shape[0]):
            nid = roots[t]
            if explain:
                contributions[r, bias] += mean[nid]
            while left[nid] != -1:
                split = feature[nid]
                x = X[r, split]
                if np.isnan(x):
                    child = left[nid] if default_left[nid] else right[nid]
                elif categorical[nid]:
                    child = left[nid]  # not in the node's set, or not a valid category
                    if x >= 0 and x < MAX_CATEGORY:
                        category = np.int32(x)
                        lo, hi = cat_start[nid], cat_end[nid]
                        while lo < hi:  # binary search in the node's sorted categories
                            mid = (lo + hi) // 2
                            if cats[mid] < category:
                                lo = mid + 1
                            else:
                                hi = mid
                        if lo < cat_end[nid] and cats[lo] == category:
                            child = right[nid]
                else:
                    child = left[nid] if x < threshold[nid] else right[nid]
                if explain:
                    contributions[r, split] += mean[child] - mean[nid]
                nid = child
            total += value[nid]
        scores[r] = total + base
        if explain:
            contributions[r, bias] += base


@njit(cache=True, nogil=True)
def _quick(
    varying: np.ndarray,
    slot: np.ndarray,
    fixed: np.ndarray,
    tree: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    default_left: np.ndarray,
    keep: np.ndarray,
    cat_tree: np.ndarray,
    cat_feature: np.ndarray,
    cat_default_left: np.ndarray,
    cat_keep: np.ndarray,
    cat_right: np.ndarray,
    leaf_values: np.ndarray,
    leaves: np.ndarray,
    de_bruijn_index: np.ndarray,
    base: np.float32,
    scores: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """QuickForest's scores of rows given as in `Forest.predict_split`: `varying` holds
    the features that differ between rows as rows (features x rows, float32)."""
    n_features, n = slot.shape[0], varying.shape[1]
    everything = np.uint64(0xFFFFFFFFFFFFFFFF)
    invalid = cat_right.shape[1] - 1  # the column of categories outside every set
    top = np.float32(invalid)
    # Features with one value in every row (NaN counts as a value) are decided once:
    # the fixed ones, and varying ones that happen to be the same in every row.
    constant = np.zeros(n_features, dtype=np.bool_)
    first_value = np.empty(n_features, dtype=np.float32)
    for j in range(n_features):
        if slot[j] < 0:
            constant[j] = True
            first_value[j] = fixed[j]
            continue
        row = varying[slot[j]]
        first = row[0]
        first_value[j] = first
        same = True
        for r in range(1, n):
            x = row[r]
            if not (x == first or (x != x and first != first)):
                same = False
                break
        constant[j] = same
    start = leaves.copy()
    for k in range(tree.shape[0]):
        x = first_value[feature[k]]
        if constant[feature[k]] and ((x != x and not default_left[k]) or x >= threshold[k]):
            start[tree[k]] &= keep[k]
    for k in range(cat_tree.shape[0]):
        x = first_value[cat_feature[k]]
        if constant[cat_feature[k]]:
            code = np.int64(x) if (x >= 0 and x < top) else invalid
            if (x != x and not cat_default_left[k]) or (x == x and cat_right[k, code]):
                start[cat_tree[k]] &= cat_keep[k]
    alive = np.empty((leaves.shape[0], n), dtype=np.uint64)
    for t in range(leaves.shape[0]):
        for r in range(n):
            alive[t, r] = start[t]
    # The other splits, each over all rows at once (no branch in the loop body).
    for k in range(tree.shape[0]):
        if constant[feature[k]]:
            continue
        values, bits, cut = varying[slot[feature[k]]], alive[tree[k]], threshold[k]
        mask, missing_right = keep[k], not default_left[k]
        for r in range(n):
            x = values[r]
            right = (x >= cut) or (missing_right and x != x)
            bits[r] &= mask if right else everything
    for k in range(cat_tree.shape[0]):
        if constant[cat_feature[k]]:
            continue
        values, bits, table = varying[slot[cat_feature[k]]], alive[cat_tree[k]], cat_right[k]
        mask, missing_right = cat_keep[k], not cat_default_left[k]
        for r in range(n):
            x = values[r]
            code = np.int64(x) if (x >= 0 and x < top) else invalid
            right = table[code] or (missing_right and x != x)
            bits[r] &= mask if right else everything
    # Each row's leaf: the lowest bit left; trees summed in order, as the walk does.
    total = np.zeros(n, dtype=np.float32)
    for t in range(leaves.shape[0]):
        bits, values = alive[t], leaf_values[t]
        for r in range(n):
            v = bits[r]
            lowest = v & (~v + np.uint64(1))
            total[r] += values[
                de_bruijn_index[(lowest * np.uint64(0x03F79D71B4CB0A89)) >> np.uint64(58)]
            ]
    for r in range(n):
        scores[r] = total[r] + base


_compiled: Any = _walk  # numba's dispatcher, called with the arrays above
