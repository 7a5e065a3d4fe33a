"""The ceiling on generated data: rank items by the generator's own true utility.

    ground_truth/ (users, items, world) --+
    clean user id -> ground-truth id -----+--> true_utility(user, item, at=window start)
    candidates (items existing, unseen) --+        --> top-k, like any recommender

The oracle has the same interface as the baselines, so the harness scores it the same
way. It knows every user's true taste, including users new in the window, but not the
noise of the simulation, so it is a practical ceiling rather than a perfect score.

Clean ids are the canonical ids after near-duplicate merging; each is a ground-truth
`user_id`, or else a `duplicate_user_id` that maps to one. Users in neither are skipped
(no recommendations, so they score 0) and listed in `skipped_users`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tailwise.synthetic.utility import load_ground_truth, true_utility
from training.baselines import BaseRecommender


class Oracle(BaseRecommender):
    """Recommends by `tailwise.synthetic.true_utility` at instant `at`."""

    name = "oracle"
    # true_utility materialises a (pairs x leaves) taste block: keep blocks small.
    score_block = 200_000

    def __init__(self, ground_truth_dir: Path, at: pd.Timestamp | None = None) -> None:
        self.ground_truth_dir = Path(ground_truth_dir)
        self.at = at
        self.skipped_users: list[str] = []

    def fit(self, train_events: pd.DataFrame, items: pd.DataFrame | None) -> Self:
        """Load the ground truth and index what each user has seen in `train_events`."""
        folder = self.ground_truth_dir
        # Accept the generated folder or its ground_truth/ sub-folder.
        root = folder.parent if folder.name == "ground_truth" else folder
        if not (root / "ground_truth" / "world.json").exists():
            raise FileNotFoundError(f"no ground_truth/world.json under {root}")
        self._gt_users, gt_items, self._world = load_ground_truth(root)
        super().fit(train_events, items)
        # Candidates are the given catalogue; items unknown to the generator score -inf.
        gt_item_ids = set(gt_items.column("item_id").to_pylist())
        self._scorable = np.array([i in gt_item_ids for i in self.item_ids], dtype=bool)
        keep = pc.is_in(gt_items.column("item_id"), pa.array(self.item_ids[self._scorable]))
        self._gt_items = gt_items.filter(keep)
        self._truth_id = _truth_ids(self._gt_users)
        stamp = pd.Timestamp(self.at) if self.at is not None else train_events["timestamp"].max()
        self._at = int(stamp.timestamp())
        self.skipped_users = []
        return self

    def recommend(self, user_ids: Iterable[str], k: int, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-k by true utility; `skipped_users` lists users unknown to the generator."""
        self.skipped_users = []
        return super().recommend(user_ids, k, exclude_seen)

    def _block_scores(self, users: np.ndarray, rows: np.ndarray) -> np.ndarray:
        scores = np.full((len(users), len(self.item_ids)), -np.inf)
        truth = pd.Series(users).map(self._truth_id)
        self.skipped_users.extend(users[truth.isna().to_numpy()].tolist())
        found = np.flatnonzero(truth.notna().to_numpy())
        if not len(found):
            return scores
        ids = truth.iloc[found].to_numpy()
        block_users = self._gt_users.filter(pc.is_in(self._gt_users["user_id"], pa.array(ids)))
        cols = np.flatnonzero(self._scorable)
        n_items = len(cols)
        utility = true_utility(
            block_users,
            self._gt_items,
            self._world,
            np.repeat(ids, n_items),
            np.tile(self.item_ids[cols], len(ids)),
            at=self._at,
        )
        scores[np.ix_(found, cols)] = utility.reshape(len(ids), n_items)
        return scores


def _truth_ids(users: pa.Table) -> dict[str, str]:
    """Clean id -> ground-truth id: the id itself, or the person a duplicate account is."""
    ids = users.column("user_id").to_pylist()
    mapping = {}
    if "duplicate_user_id" in users.column_names:
        dups = users.column("duplicate_user_id").to_pylist()
        mapping.update({d: u for d, u in zip(dups, ids, strict=True) if d is not None})
    mapping.update({u: u for u in ids})
    return mapping
