"""Every defect listed in the manifest is really present, and counts agree."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from tests.synthetic.conftest import Generated, parse_timestamps


def _listed(g: Generated, kind: str) -> pd.DataFrame:
    return g.defects[g.defects["kind"] == kind]


def test_counts_match_manifest(generated: Generated) -> None:
    counts = json.loads((generated.out / "defects.json").read_text())["counts"]
    per_kind = generated.defects["kind"].value_counts().to_dict()
    for kind, n in per_kind.items():
        assert counts[kind] == n, kind
    for kind in (
        "missing_demographics",
        "duplicate_events",
        "near_duplicate_users",
        "category_spellings",
        "impossible_values",
        "unknown_references",
        "malformed_timestamps",
        "mixed_timezones",
    ):
        assert counts.get(kind, 0) > 0, kind


def test_missing_demographics_are_null(generated: Generated) -> None:
    users = generated.users.set_index("user_id")
    rows = _listed(generated, "missing_demographics")
    for column, group in rows.groupby("column"):
        assert users.loc[group["id"], column].isna().all(), column
        listed = set(rows.loc[rows["column"] == column, "id"])
        assert set(users.index[users[column].isna()]) == listed, column


def test_duplicate_events_are_exact_copies(generated: Generated) -> None:
    ev = generated.events.drop(columns="ts")
    ids = _listed(generated, "duplicate_events")["id"]
    copies = ev[ev["event_id"].isin(ids)]
    assert (copies.groupby("event_id").size() >= 2).all()
    assert len(copies.drop_duplicates()) == ids.nunique()
    assert ev["event_id"].duplicated().sum() == len(ids)


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)[-7:]


def test_near_duplicate_users_match_their_person(generated: Generated) -> None:
    users = generated.users.set_index("user_id")
    rows = _listed(generated, "near_duplicate_users")
    gu = generated.truth_users.set_index("user_id")
    for row in rows.itertuples():
        new, old = users.loc[row.id], users.loc[row.related_id]
        assert _digits(new["phone"]) == _digits(old["phone"])
        name = sorted(re.sub(r"[,\s]+", " ", new["full_name"]).strip().lower().split())
        assert name == sorted(old["full_name"].lower().split())
        same = new["email"].strip().lower() == old["email"]
        assert same == (row.value == "reformatted_email")
        assert gu.loc[row.related_id, "duplicate_user_id"] == row.id
    different = (rows["value"] == "different_email").mean()
    assert 0.15 < different < 0.7
    moved = generated.events["user_id"].isin(rows["id"])
    assert moved.sum() > 0


def test_category_spellings_present(generated: Generated) -> None:
    items = generated.items.set_index("item_id")
    rows = _listed(generated, "category_spellings")
    assert (items.loc[rows["id"], "category"].to_numpy() == rows["value"].to_numpy()).all()
    assert (rows["value"] != rows["related_id"]).all()
    canon = generated.truth_items.set_index("item_id")["categories"].map("|".join)
    assert (canon.loc[rows["id"]].to_numpy() == rows["related_id"].to_numpy()).all()
    clean = ~items.index.isin(rows["id"])
    assert (items.loc[clean, "category"] == canon.loc[items.index[clean]]).all()


def test_impossible_values_present(generated: Generated) -> None:
    rows = _listed(generated, "impossible_values")
    users = generated.users.set_index("user_id")
    ages = rows[rows["table"] == "users"]
    assert users.loc[ages["id"], "age"].isin([250, -3]).all()
    assert set(users.index[(users["age"] < 0) | (users["age"] > 120)]) == set(ages["id"])
    items = generated.items.set_index("item_id")
    prices = rows[rows["table"] == "items"]
    assert set(items.index[items["price"] < 0]) == set(prices["id"])
    ev = generated.events
    listed = rows[rows["table"] == "events"]
    assert set(ev.loc[ev["price"] < 0, "event_id"]) == set(listed["id"])
    assert len(ages) and len(listed)


def test_unknown_references_present(generated: Generated) -> None:
    rows = _listed(generated, "unknown_references")
    ev = generated.events.drop_duplicates("event_id").set_index("event_id")
    known_users, known_items = set(generated.users["user_id"]), set(generated.items["item_id"])
    for column, known in (("user_id", known_users), ("item_id", known_items)):
        ids = rows.loc[rows["column"] == column, "id"]
        assert not ev.loc[ids, column].isin(known).any(), column
        assert set(ev.index[~ev[column].isin(known)]) == set(ids), column


def test_malformed_timestamps_present(generated: Generated) -> None:
    rows = _listed(generated, "malformed_timestamps")
    ev = generated.events.drop_duplicates("event_id").set_index("event_id")
    assert (ev.loc[rows["id"], "timestamp"].to_numpy() == rows["value"].to_numpy()).all()
    assert set(ev.index[np.isnan(ev["ts"])]) == set(rows["id"])


def test_mixed_timezones_counted_and_same_instant(generated: Generated) -> None:
    counts = json.loads((generated.out / "defects.json").read_text())["counts"]
    ev = generated.events.drop_duplicates("event_id")
    text = ev["timestamp"]
    canonical = text.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
    local = text.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")
    epoch = text.str.fullmatch(r"\d{10}")
    naive = text.str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
    assert local.sum() == counts["mixed_timezones.events.iso_local_offset"]
    assert epoch.sum() == counts["mixed_timezones.events.epoch_seconds"]
    assert naive.sum() == counts["mixed_timezones.events.naive_utc"]
    share = (local | epoch | naive).mean()
    assert abs(share - generated.cfg.defects.mixed_timezones) < 0.05
    assert canonical.sum() > 0
    signup = parse_timestamps(generated.users["signup_at"])
    assert np.isfinite(signup).all()
