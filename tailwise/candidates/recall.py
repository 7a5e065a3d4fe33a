"""Candidate recall: how much of what people chose next the candidates hold.

    {source: candidates (user_id, item_id, source, score, rank)} + relevant pairs
    (user_id, item_id of a window after the cut) + evaluated users (user_id, status:
    new | returning) --candidate_recall(ns)--> one row per (source, n, slice):
        recall       share of the slice's relevant pairs among the candidates of rank <= n
        found        relevant pairs found
        relevant     relevant pairs in the slice
        candidates   mean candidates per evaluated user of the slice

The row `source='union'` takes every source's top n together (union_candidates), so its
mean candidates per user is the union's size at that n. Users without candidates count:
their relevant pairs are in the denominator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from tailwise.candidates.base import positive_int
from tailwise.candidates.union import KEYS, union_candidates

UNION = "union"
RECALL_COLUMNS = ("source", "n", "slice", "recall", "found", "relevant", "candidates")


def candidate_recall(
    frames: Mapping[str, pd.DataFrame],
    relevant: pd.DataFrame,
    users: pd.DataFrame | None = None,
    ns: Sequence[int] = (50, 100, 200),
) -> pd.DataFrame:
    """Recall of each source and of their union at every n (see the module docstring)."""
    if UNION in frames:
        raise ValueError(f"candidate_recall: {UNION!r} is reserved; rename that source")
    ns = [positive_int(n, "candidate_recall: ns") for n in ns]
    if not ns:
        raise ValueError("candidate_recall: ns must hold at least one n")
    truth = relevant[KEYS].astype(str).drop_duplicates()
    status = _status(truth, users)
    rows = []
    for n in ns:
        found_by = {
            source: frame.loc[frame["rank"] <= n, KEYS].astype(str).drop_duplicates()
            for source, frame in frames.items()
        }
        found_by[UNION] = union_candidates(frames, n)[KEYS]
        for source, pairs in found_by.items():
            rows += _rows(source, n, pairs, truth, status)
    return pd.DataFrame(rows, columns=list(RECALL_COLUMNS))


def _status(truth: pd.DataFrame, users: pd.DataFrame | None) -> pd.Series:
    """Each evaluated user's slice ('new' / 'returning'); users with relevant pairs only."""
    evaluated = pd.Index(truth["user_id"].unique(), name="user_id")
    if users is None:
        return pd.Series("all", index=evaluated)
    for column in ("user_id", "status"):
        if column not in users.columns:
            raise ValueError(f"candidate_recall: users lack column {column!r}")
    given = pd.Series(users["status"].astype(str).to_numpy(), index=users["user_id"].astype(str))
    return given[~given.index.duplicated()].reindex(evaluated).fillna("unknown")


def _rows(
    source: str, n: int, pairs: pd.DataFrame, truth: pd.DataFrame, status: pd.Series
) -> list[dict[str, object]]:
    hits = truth.merge(pairs, on=KEYS)
    per_user = pairs[pairs["user_id"].isin(status.index)].groupby("user_id").size()
    per_user = per_user.reindex(status.index, fill_value=0)
    out = []
    slices = ["all", *sorted(set(status) - {"all"})]
    for name in slices:
        members = status.index if name == "all" else status.index[status == name]
        relevant = int(truth["user_id"].isin(members).sum())
        found = int(hits["user_id"].isin(members).sum())
        out.append(
            {
                "source": source,
                "n": n,
                "slice": name,
                "recall": found / relevant if relevant else float("nan"),
                "found": found,
                "relevant": relevant,
                "candidates": float(per_user[members].mean()) if len(members) else 0.0,
            }
        )
    return out
