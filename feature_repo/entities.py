"""The two things Tailwise knows features about: people and catalogue items."""

from feast import Entity, ValueType

OWNER = "ml-platform@tailwise.dev"

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A person who consented to personalization (canonical id after merging).",
    owner=OWNER,
    tags={"domain": "customer"},
)

item = Entity(
    name="item",
    join_keys=["item_id"],
    value_type=ValueType.STRING,
    description="A catalogue item.",
    owner=OWNER,
    tags={"domain": "catalogue"},
)
