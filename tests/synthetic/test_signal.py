"""Behaviour a person would recognise, checked against the ground truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tests.synthetic.conftest import Generated, parse_timestamps


def _views(ev: pd.DataFrame, g: Generated) -> pd.DataFrame:
    views = ev[ev["event_type"] == "product_view"]
    leaf = g.truth_items.set_index("item_id")["category"]
    return views.assign(leaf=views["item_id"].map(leaf))


def test_top_taste_category_over_represented(
    generated: Generated, clean_events: pd.DataFrame
) -> None:
    world = json.loads((generated.out / "ground_truth" / "world.json").read_text())
    leaves = np.array(world["taxonomy"]["leaves"])
    gu = generated.truth_users.set_index("user_id")
    top = pd.Series(leaves[np.stack(gu["taste"].to_numpy()).argmax(axis=1)], index=gu.index)
    views = _views(clean_events, generated)
    base = views["leaf"].value_counts(normalize=True)
    per_user = views.assign(hit=views["leaf"].to_numpy() == top.loc[views["person"]].to_numpy())
    share = per_user.groupby("person")["hit"].mean()
    expected = base.reindex(top.loc[share.index]).fillna(0).to_numpy()
    assert share.mean() > 2.5 * expected.mean()


def test_funnel_rates_in_range(generated: Generated, clean_events: pd.DataFrame) -> None:
    n = clean_events["event_type"].value_counts()
    assert 0.06 < n["add_to_cart"] / n["product_view"] < 0.14
    assert 0.28 < n["purchase"] / n["add_to_cart"] < 0.55
    raw = generated.events.drop_duplicates("event_id")
    landing = raw[raw["event_type"] == "page_view"].groupby("session_id").size()
    assert (landing == 1).all() and len(landing) == raw["session_id"].nunique()
    assert 0 < n["rating"] < n["purchase"]


def test_sessions_stay_mostly_in_one_category(
    generated: Generated, clean_events: pd.DataFrame
) -> None:
    views = _views(clean_events, generated)
    multi = views.groupby("session_id").filter(lambda s: len(s) >= 3)
    modal = multi.groupby("session_id")["leaf"].agg(lambda s: s.value_counts().iloc[0] / len(s))
    assert modal.mean() > 0.7


def test_no_event_before_item_created_or_user_signup(
    generated: Generated, clean_events: pd.DataFrame
) -> None:
    ev = clean_events[clean_events["item_id"].isin(generated.truth_items["item_id"])]
    created = generated.truth_items.set_index("item_id")["created_at"]
    created_s = (created - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()
    assert (ev["ts"].to_numpy() >= created_s.loc[ev["item_id"]].to_numpy()).all()
    signup = parse_timestamps(generated.users["signup_at"])
    signup.index = generated.users["user_id"]
    known = ev[ev["user_id"].isin(signup.index)]
    assert (known["ts"].to_numpy() >= signup.loc[known["user_id"]].to_numpy()).all()
    window = generated.cfg
    assert ev["ts"].min() >= window.window_start.timestamp()
    assert ev["ts"].max() < window.window_end.timestamp()


def test_lapsed_people_stop(generated: Generated, clean_events: pd.DataFrame) -> None:
    gu = generated.truth_users.set_index("user_id")
    lapse = gu["lapse_at"].dropna()
    lapse_s = (lapse - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()
    ev = clean_events[clean_events["person"].isin(lapse_s.index)]
    assert len(ev) > 0
    assert (ev["ts"].to_numpy() < lapse_s.loc[ev["person"]].to_numpy()).all()


def test_user_types_emerge(generated: Generated, clean_events: pd.DataFrame) -> None:
    gu = generated.truth_users.set_index("user_id")
    ev = clean_events.assign(archetype=clean_events["person"].map(gu["archetype"]))
    counts = ev.groupby(["archetype", "event_type"]).size().unstack(fill_value=0)
    conversion = counts["purchase"] / counts["product_view"]
    assert conversion["frequent_buyer"] > 2 * conversion["browser"]
    views_per_session = counts["product_view"] / counts["page_view"]
    assert views_per_session["browser"] > views_per_session["frequent_buyer"]
    new = gu[gu["archetype"] == "new"]
    assert (new["signup_at"] >= pd.Timestamp(generated.cfg.window_start)).all()


def test_devices_follow_user_mix(generated: Generated, clean_events: pd.DataFrame) -> None:
    gu = generated.truth_users.set_index("user_id")
    sessions = clean_events.drop_duplicates("session_id")
    mobile = np.stack(gu["device_probs"].to_numpy())[:, 0]
    expected = pd.Series(mobile, index=gu.index).loc[sessions["person"]].to_numpy()
    observed = (sessions["device"] == "mobile").to_numpy()
    assert np.corrcoef(expected, observed)[0, 1] > 0.3
