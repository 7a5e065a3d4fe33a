"""Model quality once outcomes arrive: served items attributed to later events.

    served items (request_id, user_id, ts, item_id, rank)
      + events (user_id, item_id, event_type, timestamp)
      --attribute(window)--> clicked / converted per served item
      --outcome_kpis--> ctr@K, conversion@K
    served items + events --relevant_after(window)--> (request, item) pairs
      --tailwise.ranking_metrics.per_user_metrics (a request is the "user")--> precision@K, ndcg@K

Definitions, for a served list (one request) and a cut-off K:
  - a served item is *clicked* when the same user has an event of a click type
    (product_view, add_to_cart, purchase by default) of that item at or after the serve
    time and at most `window` later; *converted* likewise with a purchase. Every serve that
    precedes the event within the window gets the credit (repeated serves all count).
  - ctr@K        = share of lists with at least one clicked item at rank <= K
  - conversion@K = share of lists with at least one converted item at rank <= K
  - precision@K and ndcg@K are the offline evaluation's formulas (tailwise/ranking_metrics.py),
    with the relevant set of a request = every item the user clicked (any item, served or
    not) within the window after the serve; requests without one are not measured, as
    users without a relevant item are not measured offline. So the figures are comparable
    with the model's metrics.json, on a shorter horizon.

Pure functions over DataFrames: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

import numpy as np
import pandas as pd

from tailwise.ranking_metrics import per_user_metrics

SERVED_COLUMNS = ("request_id", "user_id", "ts", "item_id", "rank")
EVENT_COLUMNS = ("user_id", "item_id", "event_type", "timestamp")


def attribute(
    served: pd.DataFrame,
    events: pd.DataFrame,
    window: timedelta,
    click_types: Iterable[str],
    conversion_types: Iterable[str],
) -> pd.DataFrame:
    """`served` (in its order) with boolean columns clicked and converted."""
    _require(served, SERVED_COLUMNS, "served items")
    _require(events, EVENT_COLUMNS, "events")
    out = served.reset_index(drop=True)
    out = out.assign(clicked=_followed_by(out, events, window, click_types))
    return out.assign(converted=_followed_by(out, events, window, conversion_types))


def outcome_kpis(attributed: pd.DataFrame, ks: Sequence[int]) -> dict[str, float]:
    """ctr@K and conversion@K over the requests of `attributed` (NaN without requests)."""
    _require(attributed, ("request_id", "rank", "clicked", "converted"), "attributed items")
    requests = attributed["request_id"].nunique()
    kpis: dict[str, float] = {}
    for k in ks:
        top = attributed.loc[attributed["rank"] <= k]
        for name, column in (("ctr", "clicked"), ("conversion", "converted")):
            hit = top.loc[top[column], "request_id"].nunique()
            kpis[f"{name}@{k}"] = hit / requests if requests else float("nan")
    return kpis


def relevant_after(
    served: pd.DataFrame, events: pd.DataFrame, window: timedelta, types: Iterable[str]
) -> pd.DataFrame:
    """(request_id, item_id): items the request's user clicked within `window` after it."""
    _require(served, ("request_id", "user_id", "ts"), "served items")
    _require(events, EVENT_COLUMNS, "events")
    requests = served[["request_id", "user_id", "ts"]].drop_duplicates("request_id")
    wanted = events.loc[_of_types(events, types), ["user_id", "item_id", "timestamp"]]
    pairs = requests.merge(wanted, on="user_id", how="inner")
    delay = _utc(pairs["timestamp"]) - _utc(pairs["ts"])
    pairs = pairs.loc[(delay >= pd.Timedelta(0)) & (delay <= pd.Timedelta(window))]
    return pairs[["request_id", "item_id"]].drop_duplicates().reset_index(drop=True)


def ranking_kpis(
    served: pd.DataFrame, relevant: pd.DataFrame, ks: Sequence[int]
) -> tuple[dict[str, float], int]:
    """precision@K and ndcg@K averaged over the requests with a relevant item, and how
    many requests that is."""
    _require(served, ("request_id", "item_id", "rank"), "served items")
    if relevant.empty:
        return {f"{m}@{k}": float("nan") for k in ks for m in ("precision", "ndcg")}, 0
    recs = served[["request_id", "item_id", "rank"]].drop_duplicates(["request_id", "item_id"])
    per_request = per_user_metrics(
        recs.rename(columns={"request_id": "user_id"}),
        relevant.rename(columns={"request_id": "user_id"}),
        ks,
    )
    means = per_request.groupby("k")[["precision", "ndcg"]].mean()
    kpis = {f"{m}@{k}": float(means.loc[k, m]) for k in ks for m in ("precision", "ndcg")}
    return kpis, int(relevant["request_id"].nunique())


def _followed_by(
    served: pd.DataFrame, events: pd.DataFrame, window: timedelta, types: Iterable[str]
) -> np.ndarray:
    """For each served row: an event of `types` of the same (user, item) in [ts, ts+window]."""
    wanted = events.loc[_of_types(events, types), ["user_id", "item_id", "timestamp"]]
    if served.empty or wanted.empty:
        return np.zeros(len(served), dtype=bool)
    left = pd.DataFrame(
        {
            "row": np.arange(len(served)),
            "user_id": served["user_id"].astype(str).to_numpy(),
            "item_id": served["item_id"].astype(str).to_numpy(),
            "t": _utc(served["ts"]).to_numpy(),
        }
    ).sort_values("t", kind="stable")
    right = pd.DataFrame(
        {
            "user_id": wanted["user_id"].astype(str).to_numpy(),
            "item_id": wanted["item_id"].astype(str).to_numpy(),
            "t": _utc(wanted["timestamp"]).to_numpy(),
            "seen": True,
        }
    ).sort_values("t", kind="stable")
    # The first matching event at or after the serve, if no later than `window`.
    matched = pd.merge_asof(
        left,
        right,
        on="t",
        by=["user_id", "item_id"],
        direction="forward",
        tolerance=pd.Timedelta(window),
    )
    hit = np.zeros(len(served), dtype=bool)
    hit[matched["row"].to_numpy()] = matched["seen"].eq(True).to_numpy()
    return hit


def _of_types(events: pd.DataFrame, types: Iterable[str]) -> pd.Series:
    wanted = {t.lower() for t in types}
    return events["event_type"].astype(str).str.lower().isin(wanted) & events["item_id"].notna()


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")


def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lack column(s) {missing}; got {list(frame.columns)}")
