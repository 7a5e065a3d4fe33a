"""The optional distribution shift: what changes in the world from `shift.at` on.

`attach_shift(cfg, world, rng)` returns the world with `World.shift` set: the
top-level taste shift and device mix as arrays, and the batch of new items
appended to `World.item` (ids continue after the original catalogue, created
within 2 days of `at`, drawn from their own RNG so the original catalogue and
every pre-shift draw stay the same). `sessions.py` applies the shift to
sessions and views at or after `at`; `shift_json` records it in world.json so
`utility.true_utility` (and the oracle through it) can score shifted instants.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tailwise.synthetic import catalog, formats
from tailwise.synthetic.config import GenerateConfig
from tailwise.synthetic.world import (
    DAY,
    TOPS,
    World,
    WorldShift,
    draw_item_attributes,
    leaf_sampling_keys,
)

# New items arrive over this many days from the shift (created_at in [at, at + 2 days)).
ARRIVAL_DAYS = 2


def attach_shift(cfg: GenerateConfig, world: World, rng: np.random.Generator) -> World:
    """The world with `cfg.shift` attached; unchanged when there is no shift."""
    shift = cfg.shift
    if shift is None or cfg.shift_start is None:
        return world
    at = int(cfg.shift_start.timestamp())
    old = world.item
    m = len(old["leaf"])
    # New items land in leaves in proportion to how many items each already stocks.
    leaf = old["leaf"][rng.integers(0, m, shift.new_items)]
    attrs = draw_item_attributes(rng, world, leaf)
    span = max(min(ARRIVAL_DAYS * DAY, int(cfg.window_end.timestamp()) - at), 1)
    created = at + rng.integers(0, span, shift.new_items)
    popularity = np.concatenate([old["popularity"], attrs["popularity"]])
    all_leaf = np.concatenate([old["leaf"], leaf])
    total_before = np.bincount(old["leaf"], weights=old["popularity"], minlength=world.n_leaves)
    total_after = np.bincount(all_leaf, weights=popularity, minlength=world.n_leaves)
    item = {
        **{k: np.concatenate([old[k], attrs[k]]) for k in attrs},
        # Original items keep their pre-shift share; the batch's is of the shifted leaf.
        "log_share": np.concatenate(
            [old["log_share"], np.log(attrs["popularity"] / total_after[leaf])]
        ),
        "created_at": np.concatenate([old["created_at"], created.astype(np.int64)]),
        "is_new": np.concatenate([old["is_new"], np.ones(shift.new_items, bool)]),
    }
    order, keys, _, _ = leaf_sampling_keys(world, all_leaf, popularity)
    stocked = total_before > 0
    dilution = np.zeros(world.n_leaves)
    dilution[stocked] = np.log(total_before[stocked] / total_after[stocked])
    device = shift.device_vector()
    return replace(
        world,
        item=item,
        shift=WorldShift(
            at=at,
            top=np.asarray(shift.top_vector()),
            device_probs=None if device is None else np.asarray(device),
            first_new_item=m,
            leaf_order=order,
            leaf_keys=keys,
            leaf_log_dilution=dilution,
        ),
    )


def shift_json(cfg: GenerateConfig, world: World, item_width: int) -> dict | None:
    """The shift as world.json records it (None without a shift)."""
    if cfg.shift is None or world.shift is None or cfg.shift_start is None:
        return None
    ws = world.shift
    return {
        "at": cfg.shift_start.isoformat(),
        "top_taste": dict(zip(TOPS, ws.top.tolist(), strict=True)),
        "device_mix": (
            None
            if ws.device_probs is None
            else dict(zip(catalog.DEVICES, ws.device_probs.tolist(), strict=True))
        ),
        "new_items": cfg.shift.new_items,
        "new_item_ids": formats.format_ids(
            "i", np.arange(ws.first_new_item, len(world.item["leaf"])), item_width
        ).to_pylist(),
        "leaf_log_dilution": ws.leaf_log_dilution.round(6).tolist(),
        "note": (
            "From `at` on: category logits += top_taste[top of leaf]; sessions draw "
            "their device from device_mix (null: each person's own mix); new_item_ids "
            "were added at the shift; the other items' popularity_log_share (their share "
            "before the shift) += leaf_log_dilution[leaf] after it."
        ),
    }
