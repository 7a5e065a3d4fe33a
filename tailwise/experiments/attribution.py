"""Attribution: consumed events credited to the exposures they follow, as the `outcomes` table.

    exposures (tailwise.experiments.__init__), events (served events with their optional
    request_id, slot, position)
      1. by request id: an event naming a request credits every exposure of that request
         (one per experiment the request was in)
      2. else by window: per experiment, the user's latest exposure at or before the event
         and at most `window` before it (both edges included)
      --> outcomes: one row per (event, experiment), revenue = price x quantity of a
          purchase (quantity: the event's value when above 0, else 1), 0 otherwise

Batch and pure (DataFrames in and out): the event consumer (`tailwise events consume`)
runs it over the Parquet tables, the report and the posteriors read its outcomes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

EXPOSURE_COLUMNS = [
    "request_id",
    "user_id",
    "experiment",
    "variant",
    "propensity",
    "slot",
    "timestamp",
]
OUTCOME_COLUMNS = [
    "request_id",
    "user_id",
    "experiment",
    "variant",
    "event_type",
    "revenue",
    "position",
    "timestamp",
]
PURCHASE = "purchase"


def attribute(exposures: pd.DataFrame, events: pd.DataFrame, window: pd.Timedelta) -> pd.DataFrame:
    """The outcomes of `events` against `exposures` (columns as in OUTCOME_COLUMNS);
    events that match no exposure are left out."""
    if window <= pd.Timedelta(0):
        raise ValueError(f"attribution window must be positive, got {window}")
    exp = _exposures(exposures)
    ev = _events(events)
    if exp.empty or ev.empty:
        return empty_outcomes()
    by_request = ev.merge(
        exp[["request_id", "experiment", "variant"]].dropna(subset=["request_id"]),
        on="request_id",
        how="inner",
    )
    matched = ev["request_id"].isin(set(exp["request_id"].dropna()))
    by_window = _window(ev.loc[~matched], exp, window)
    out = pd.concat([by_request, by_window], ignore_index=True)
    if out.empty:
        return empty_outcomes()
    out["revenue"] = _revenue(out)
    out = out.sort_values(["timestamp", "experiment"], kind="stable", ignore_index=True)
    return out[OUTCOME_COLUMNS]


def _window(events: pd.DataFrame, exposures: pd.DataFrame, window: pd.Timedelta) -> pd.DataFrame:
    """Each event credited to the user's latest exposure per experiment within `window`;
    the request id of the outcome is the exposure's."""
    if events.empty:
        return pd.DataFrame()
    frames = []
    left = events.drop(columns="request_id").sort_values("timestamp", kind="stable")
    for experiment, group in exposures.groupby("experiment", sort=True):
        right = group[["user_id", "timestamp", "request_id", "variant"]].sort_values(
            "timestamp", kind="stable"
        )
        right = right.rename(columns={"timestamp": "exposed_at"})
        right["timestamp"] = right["exposed_at"]
        joined = pd.merge_asof(
            left,
            right,
            on="timestamp",
            by="user_id",
            direction="backward",
            tolerance=window,
            allow_exact_matches=True,
        )
        joined = joined.dropna(subset=["variant"]).drop(columns="exposed_at")
        joined["experiment"] = experiment
        frames.append(joined)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _exposures(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [
        c for c in ("request_id", "user_id", "experiment", "variant", "timestamp") if c not in frame
    ]
    if missing:
        raise ValueError(f"exposures lack column(s) {missing}")
    out = frame.copy()
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True).astype("datetime64[us, UTC]")
    out["user_id"] = out["user_id"].astype(str)
    return out.drop_duplicates(["request_id", "experiment"], keep="first")


def _events(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("user_id", "event_type", "timestamp") if c not in frame]
    if missing:
        raise ValueError(f"events lack column(s) {missing}")
    out = pd.DataFrame(
        {
            "request_id": frame.get("request_id", pd.Series(None, index=frame.index, dtype=object)),
            "user_id": frame["user_id"].astype(str),
            "event_type": frame["event_type"],
            "price": pd.to_numeric(frame.get("price"), errors="coerce")
            if "price" in frame
            else np.nan,
            "value": pd.to_numeric(frame.get("value"), errors="coerce")
            if "value" in frame
            else np.nan,
            "position": frame.get("position", pd.Series(None, index=frame.index, dtype="Int64")),
            "timestamp": pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[us, UTC]"),
        }
    )
    if "event_id" in frame:
        keep = ~frame["event_id"].notna() | ~frame["event_id"].duplicated(keep="first")
        out = out.loc[keep.to_numpy()]
    out["position"] = out["position"].astype("Int64")
    return out.reset_index(drop=True)


def _revenue(out: pd.DataFrame) -> pd.Series:
    quantity = out["value"].where(out["value"] > 0, 1.0)
    paid = (out["price"].fillna(0.0) * quantity).where(out["event_type"] == PURCHASE, 0.0)
    return paid.astype(np.float64)


def empty_outcomes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": pd.Series(dtype=object),
            "user_id": pd.Series(dtype=object),
            "experiment": pd.Series(dtype=object),
            "variant": pd.Series(dtype=object),
            "event_type": pd.Series(dtype=object),
            "revenue": pd.Series(dtype=np.float64),
            "position": pd.Series(dtype="Int64"),
            "timestamp": pd.Series(dtype="datetime64[us, UTC]"),
        }
    )


def read_table(folder: Path) -> pd.DataFrame | None:
    """Every Parquet file under `folder` (hive partitions left out), or None."""
    files = sorted(p for p in Path(folder).rglob("*.parquet") if not p.name.startswith((".", "_")))
    if not files:
        return None
    return pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)


def attribute_served(served_dir: Path, window: pd.Timedelta) -> pd.DataFrame:
    """The outcomes of the consumer's tables under `served_dir` (exposures/, events/)."""
    exposures = read_table(Path(served_dir) / "exposures")
    events = read_table(Path(served_dir) / "events")
    if exposures is None or events is None:
        return empty_outcomes()
    return attribute(exposures, events, window)
