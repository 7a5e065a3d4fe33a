"""Near-duplicate user accounts: a second record of the same real person.

For a share of people, a new user id is issued (numbered after all real
people), the contact data is reformatted (case, whitespace, phone style,
"Last, First" order) or, for ~40% of them, the email is a different address so
only phone + name still match. The person's events from a split instant on are
moved to the new id, and the new account's signup precedes that instant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tailwise.synthetic import catalog, formats
from tailwise.synthetic.people import People, phone_parts

DIFFERENT_EMAIL_SHARE = 0.4


@dataclass
class NearDuplicates:
    """Duplicate accounts of one chunk; `pos` are local positions of the people."""

    pos: np.ndarray
    numbers: np.ndarray
    signup_at: np.ndarray
    contact: dict[str, pa.Array]
    different_email: np.ndarray


def make_near_duplicates(
    rng: np.random.Generator,
    p: People,
    contact: dict[str, pa.Array],
    rate: float,
    first_number: int,
    lower: np.ndarray,
    upper: np.ndarray,
) -> tuple[NearDuplicates, np.ndarray]:
    """Pick people, render their second account and the instant their events move."""
    pos = np.flatnonzero(rng.random(len(p)) < rate)
    k = len(pos)
    span = np.maximum(upper[pos] - lower[pos], 0)
    split = lower[pos] + (rng.uniform(0.3, 0.9, k) * span).astype(np.int64)
    signup = np.maximum(p.signup_at[pos], split - rng.integers(0, 2 * 86_400, k))
    different = rng.random(k) < DIFFERENT_EMAIL_SHARE
    dup = NearDuplicates(
        pos=pos,
        numbers=first_number + np.arange(k, dtype=np.int64),
        signup_at=signup,
        contact={
            "email": _emails(rng, p, pos, contact["email"], different),
            "full_name": _names(rng, p, pos),
            "phone": _phones(rng, p, pos),
        },
        different_email=different,
    )
    return dup, split


def move_events(
    p: People, dup: NearDuplicates, split: np.ndarray, user: np.ndarray, ts: np.ndarray
) -> np.ndarray:
    """User number of each event: the person's own, or the duplicate's after the split."""
    slot = np.full(len(p), -1, dtype=np.int64)
    slot[dup.pos] = np.arange(len(dup.pos))
    s = slot[user]
    moved = s >= 0
    moved[moved] = ts[moved] >= split[s[moved]]
    number = p.idx[user].copy()
    number[moved] = dup.numbers[s[moved]]
    return number


def _emails(
    rng: np.random.Generator, p: People, pos: np.ndarray, email: pa.Array, different: np.ndarray
) -> pa.Array:
    out = []
    style = rng.integers(0, 4, len(pos))
    for j, k in enumerate(pos):
        if different[j]:
            first = catalog.FIRST_NAMES_FEMALE + catalog.FIRST_NAMES_MALE
            last = catalog.LAST_NAMES[p.last_name[k]].replace(" ", "").lower()
            out.append(
                f"{last}.{first[p.first_name[k]].lower()}{p.idx[k]}@{catalog.ALT_EMAIL_DOMAIN}"
            )
            continue
        text = email[int(k)].as_py()
        out.append([text.upper(), text.capitalize(), f"  {text} ", f" {text.upper()}"][style[j]])
    return pa.array(out, pa.string())


def _names(rng: np.random.Generator, p: People, pos: np.ndarray) -> pa.Array:
    first = catalog.FIRST_NAMES_FEMALE + catalog.FIRST_NAMES_MALE
    out = []
    for k, style in zip(pos, rng.integers(0, 5, len(pos)), strict=True):
        f, last = first[p.first_name[k]], catalog.LAST_NAMES[p.last_name[k]]
        out.append(
            [
                f"{last}, {f}",
                f"{f} {last}".upper(),
                f"{f} {last}".lower(),
                f"{f}  {last}",
                f" {f} {last} ",
            ][int(style)]
        )
    return pa.array(out, pa.string())


def _phones(rng: np.random.Generator, p: People, pos: np.ndarray) -> pa.Array:
    parts = phone_parts(p.idx[pos], p.country[pos])
    return formats.phone_styles(*parts, rng.integers(1, 5, len(pos)))
