"""The union of candidate sources: one row per (user, item), every source's view kept.

    {source: DataFrame[user_id, item_id, source, score, rank]} --union_candidates(n)-->
        DataFrame[user_id, item_id, n_sources,
                  <source>_score, <source>_rank, <source>_norm  for every source]

Each source contributes its top `n` per user (all it gave when n is None). A source that
did not propose the pair leaves NaN in its columns. `<source>_norm` is the score scaled
within the user to [0, 1] by that source's lowest and highest score for the user (1 when
they are equal), so a ranker can compare sources whose scores have different units.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from tailwise.candidates.base import CANDIDATE_COLUMNS, positive_int, text_codes

KEYS = ["user_id", "item_id"]


def union_candidates(frames: Mapping[str, pd.DataFrame], n: int | None = None) -> pd.DataFrame:
    """Deduplicated union of the sources' candidates (see the module docstring)."""
    if not frames:
        raise ValueError("union_candidates: frames must name at least one source")
    if n is not None:
        n = positive_int(n, "union_candidates: n")
    parts = []
    for source, frame in frames.items():
        missing = [c for c in CANDIDATE_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"union_candidates: frame of {source!r} lacks column(s) {missing}")
        part = frame if n is None else frame[frame["rank"] <= n]
        parts.append(part.drop_duplicates(KEYS))
    # One row per pair, in (user_id, item_id) order, each source's values in its columns:
    # the pairs are numbered by integer codes (millions of rows, not a merge per source).
    user_codes, users = text_codes(np.concatenate([p["user_id"].to_numpy(object) for p in parts]))
    item_codes, items = text_codes(np.concatenate([p["item_id"].to_numpy(object) for p in parts]))
    width = max(len(items), 1)
    pair_codes, pairs = pd.factorize(user_codes * width + item_codes, sort=True)
    merged = pd.DataFrame({"user_id": users[pairs // width], "item_id": items[pairs % width]})
    values = {}
    start = 0
    for source, part in zip(frames, parts, strict=True):
        rows = pair_codes[start : start + len(part)]
        start += len(part)
        for column, value in (
            ("score", part["score"].to_numpy(np.float64)),
            ("rank", part["rank"].to_numpy(np.float64)),
            ("norm", _normalised(part)),
        ):
            filled = np.full(len(pairs), np.nan)
            filled[rows] = value
            values[f"{source}_{column}"] = filled
    ranks = [f"{s}_rank" for s in frames]
    counts = sum((~np.isnan(values[r])).astype(np.int64) for r in ranks)
    return pd.concat([merged, pd.DataFrame({"n_sources": counts, **values})], axis=1)


def _normalised(part: pd.DataFrame) -> np.ndarray:
    scores = part["score"].astype(np.float64)
    by_user = scores.groupby(part["user_id"].to_numpy())
    low, high = by_user.transform("min"), by_user.transform("max")
    span = (high - low).to_numpy()
    out = np.ones(len(part))
    varied = span > 0
    out[varied] = ((scores - low).to_numpy()[varied]) / span[varied]
    return out
