"""Raw and ground-truth tables have the contract's columns, types and ids."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from tests.synthetic.conftest import Generated

S, F, INT, B = pa.string(), pa.float64(), pa.int64(), pa.bool_()
EXPECTED = {
    "users.parquet": [
        ("user_id", S),
        ("email", S),
        ("full_name", S),
        ("phone", S),
        ("age", INT),
        ("gender", S),
        ("country", S),
        ("region", S),
        ("income_band", S),
        ("signup_at", S),
        ("consent_personalization", B),
        ("consent_tracking", B),
        ("marketing_source", S),
    ],
    "items.parquet": [
        ("item_id", S),
        ("title", S),
        ("description", S),
        ("category", S),
        ("brand", S),
        ("price", F),
        ("created_at", S),
    ],
    "events.parquet": [
        ("event_id", S),
        ("user_id", S),
        ("item_id", S),
        ("event_type", S),
        ("timestamp", S),
        ("value", F),
        ("price", F),
        ("session_id", S),
        ("device", S),
        ("channel", S),
        ("country", S),
    ],
    "defects.parquet": [(c, S) for c in ("kind", "table", "id", "column", "value", "related_id")],
}


def test_raw_schemas(generated: Generated) -> None:
    for name, fields in EXPECTED.items():
        assert pq.read_schema(generated.out / name) == pa.schema(fields), name


def test_row_counts_and_ids(generated: Generated) -> None:
    cfg, users, items = generated.cfg, generated.users, generated.items
    n_dups = (generated.defects["kind"] == "near_duplicate_users").sum()
    assert len(generated.truth_users) == cfg.users
    assert len(users) == cfg.users + n_dups
    assert users["user_id"].is_unique and users["user_id"].str.fullmatch(r"u\d{7}").all()
    assert len(items) == cfg.items and items["item_id"].str.fullmatch(r"i\d{6}").all()
    real = users.iloc[: cfg.users]
    assert real["email"].is_unique and real["phone"].is_unique


def test_value_domains(generated: Generated) -> None:
    users, ev = generated.users, generated.events
    assert set(users["gender"].dropna()) <= {"female", "male", "non_binary"}
    assert set(users["income_band"].dropna()) <= {"low", "lower_mid", "upper_mid", "high"}
    assert set(users["country"].dropna()) <= {
        "DE",
        "FR",
        "GB",
        "US",
        "ES",
        "IT",
        "NL",
        "PL",
        "SE",
        "BR",
    }
    assert 0.9 < users["consent_personalization"].mean() <= 1.0
    assert 0.75 < users["consent_tracking"].mean() < 0.95
    assert set(ev["event_type"]) == {
        "page_view",
        "product_view",
        "add_to_cart",
        "purchase",
        "rating",
    }
    assert set(ev["device"]) <= {"mobile", "desktop", "tablet"}
    assert set(ev["channel"]) <= {"organic", "search", "email", "social", "paid"}
    ratings = ev.loc[ev["event_type"] == "rating", "value"]
    assert ratings.between(1, 5).all()
    priced = ev["event_type"].isin(["add_to_cart", "purchase"])
    assert ev.loc[priced, "price"].notna().all() and ev.loc[~priced, "price"].isna().all()


def test_ground_truth_holds_parameters(generated: Generated) -> None:
    gu, gi = generated.truth_users, generated.truth_items
    for col in (
        "taste",
        "favourite_brands",
        "price_sensitivity",
        "activity",
        "buy_propensity",
        "lapse_at",
        "device_probs",
        "archetype",
        "duplicate_user_id",
    ):
        assert col in gu.columns, col
    for col in ("quality", "base_popularity", "category", "categories", "created_at"):
        assert col in gi.columns, col
    assert set(gu["archetype"]) == {"regular", "lapsed", "browser", "new", "frequent_buyer"}
    assert (generated.out / "ground_truth" / "world.json").exists()
