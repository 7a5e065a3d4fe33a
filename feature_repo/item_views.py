"""Item feature views: catalogue attributes and popularity/conversion windows."""

from datetime import timedelta

from entities import OWNER, item
from feast import FeatureView, Field
from feast.types import Array, Float64, Int64, String
from sources import ITEM_DAILY_COLUMNS, item_catalog_source, item_daily_source

item_profile_catalog = FeatureView(
    name="item_profile_catalog",
    entities=[item],
    ttl=timedelta(0),
    schema=[
        Field(name="category", dtype=String),
        Field(name="category_l1", dtype=String),
        Field(name="categories", dtype=Array(String)),
        Field(name="brand", dtype=String),
        Field(name="price", dtype=Float64),
        Field(name="price_band", dtype=String),
        Field(name="title", dtype=String),
        Field(name="created_epoch", dtype=Int64),
    ],
    source=item_catalog_source,
    online=True,
    description="Category path, brand, price and price band within the top-level category.",
    owner=OWNER,
    tags={"kind": "item"},
)

item_daily_popularity = FeatureView(
    name="item_daily_popularity",
    entities=[item],
    ttl=timedelta(0),  # snapshots decay to zero; no expiry for data of any era
    schema=[
        Field(name=f"item_{c}", dtype=Float64 if c.startswith("conversion") else Int64)
        for c in ITEM_DAILY_COLUMNS
    ],
    source=item_daily_source,
    online=True,
    description="Views, carts, purchases, conversion and popularity rank over 1, 7, 30 days.",
    owner=OWNER,
    tags={"kind": "item"},
)
