"""Real people of one user chunk: demographics, contact data and latent behaviour.

`draw_people` samples every person's demographics and continuous behavioural
parameters (taste logits per leaf category, favourite brands, price
sensitivity, activity, buy propensity, browse depth, lapse date, device mix).
User types (frequent buyer, browser, lapsed, new) are not inputs: the
descriptive `archetype` label is derived from the parameters afterwards.
`contact_columns` renders the personal data (email, name, phone) that is
unique per person and so gives near-duplicate matching its ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tailwise.synthetic import catalog, formats
from tailwise.synthetic.config import GenerateConfig
from tailwise.synthetic.world import AGE_TOP, DAY, GENDER_TOP, World

COUNTRY_CODES = list(catalog.COUNTRIES)
REGION_LIST = [(c, r, tz) for c in COUNTRY_CODES for r, tz in catalog.REGIONS[c]]
FIRST_NAMES = catalog.FIRST_NAMES_FEMALE + catalog.FIRST_NAMES_MALE
SENSITIVITY_BY_INCOME = np.array([1.4, 1.0, 0.7, 0.4])
N_FAVOURITE_BRANDS = 3


@dataclass
class People:
    """Column arrays of one chunk of real people (global index `idx`)."""

    idx: np.ndarray
    country: np.ndarray
    region: np.ndarray
    tz: np.ndarray
    age: np.ndarray
    gender: np.ndarray
    income: np.ndarray
    signup_at: np.ndarray
    lapse_at: np.ndarray  # -1 when the person never lapses
    taste: np.ndarray  # (n, L) float32 leaf logits
    favourite_brands: np.ndarray  # (n, 3) brand indices
    price_sensitivity: np.ndarray
    activity: np.ndarray
    buy_propensity: np.ndarray
    browse_depth: np.ndarray
    device_probs: np.ndarray  # (n, 3)
    first_name: np.ndarray
    last_name: np.ndarray
    consent_personalization: np.ndarray
    consent_tracking: np.ndarray
    marketing_source: np.ndarray

    def __len__(self) -> int:
        return len(self.idx)


def draw_people(
    cfg: GenerateConfig, world: World, rng: np.random.Generator, lo: int, hi: int
) -> People:
    """Sample people lo..hi-1 of the population."""
    n = hi - lo
    shares = np.array([v[0] for v in catalog.COUNTRIES.values()])
    country = rng.choice(len(COUNTRY_CODES), n, p=shares / shares.sum())
    region = _draw_region(rng, country)
    age = np.clip(np.round(18 + rng.gamma(2.2, 9.0, n)), 18, 90).astype(np.int64)
    gender = rng.choice(3, n, p=[0.49, 0.48, 0.03])
    income_score = rng.normal(0, 1, n) + 0.03 * (np.minimum(age, 55) - 35)
    income = np.searchsorted([-0.8, 0.2, 1.0], income_score)
    signup_at, lapse_at = _draw_lifecycle(cfg, rng, n)
    z_buy = rng.normal(0, 1, n)
    first = np.where(
        gender == 0,
        rng.integers(0, 20, n),
        np.where(gender == 1, rng.integers(20, 40, n), rng.integers(0, 40, n)),
    )
    return People(
        idx=np.arange(lo, hi, dtype=np.int64),
        country=country,
        region=region,
        tz=np.array([world.tz_names.index(t) for _, _, t in REGION_LIST])[region],
        age=age,
        gender=gender,
        income=income,
        signup_at=signup_at,
        lapse_at=lapse_at,
        taste=_draw_taste(rng, world, country, age, gender),
        favourite_brands=_draw_favourite_brands(rng, world, n),
        price_sensitivity=SENSITIVITY_BY_INCOME[income] * rng.lognormal(0, 0.3, n),
        activity=rng.lognormal(-0.5 * 0.9**2, 0.9, n),
        buy_propensity=0.7 * z_buy,
        browse_depth=np.exp(rng.normal(np.log(2.5), 0.5, n) - 0.35 * z_buy),
        device_probs=_draw_devices(rng, age),
        first_name=first,
        last_name=rng.integers(0, len(catalog.LAST_NAMES), n),
        consent_personalization=rng.random(n) < 0.95,
        consent_tracking=rng.random(n) < 0.85,
        marketing_source=rng.integers(0, len(catalog.MARKETING_SOURCES), n),
    )


def _draw_region(rng: np.random.Generator, country: np.ndarray) -> np.ndarray:
    counts = np.array([len(catalog.REGIONS[c]) for c in COUNTRY_CODES])
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return first[country] + (rng.random(len(country)) * counts[country]).astype(np.int64)


def _draw_lifecycle(cfg: GenerateConfig, rng: np.random.Generator, n: int) -> tuple:
    """Signup (12% inside the window: new users) and lapse (18%: activity stops)."""
    start, end = int(cfg.window_start.timestamp()), int(cfg.window_end.timestamp())
    is_new = rng.random(n) < 0.12
    signup = np.where(
        is_new,
        start + rng.integers(0, max(end - start - 2 * DAY, 1), n),
        start - rng.integers(DAY, 3 * 365 * DAY, n),
    )
    earliest = np.maximum(signup, start) + 7 * DAY
    latest = end - 3 * DAY
    can_lapse = (rng.random(n) < 0.18) & (latest > earliest)
    lapse = earliest + (rng.random(n) * np.maximum(latest - earliest, 0)).astype(np.int64)
    return signup.astype(np.int64), np.where(can_lapse, lapse, -1).astype(np.int64)


def _draw_taste(
    rng: np.random.Generator, world: World, country: np.ndarray, age: np.ndarray, gender: np.ndarray
) -> np.ndarray:
    """Leaf logits = demographic shift of the top level + personal noise."""
    bucket = np.searchsorted([30, 50], age, side="right")
    top = (
        np.asarray(GENDER_TOP)[gender]
        + np.asarray(AGE_TOP)[bucket]
        + world.country_top[country]
        + rng.normal(0, 1.0, (len(age), len(GENDER_TOP[0])))
    )
    leaf = top[:, world.leaf_top] + rng.normal(0, 0.7, (len(age), world.n_leaves))
    return leaf.astype(np.float32)


def _draw_favourite_brands(rng: np.random.Generator, world: World, n: int) -> np.ndarray:
    return rng.integers(0, len(world.brand_names), (n, N_FAVOURITE_BRANDS))


def _draw_devices(rng: np.random.Generator, age: np.ndarray) -> np.ndarray:
    """Device mix: young people lean mobile, older desktop and tablet."""
    logits = np.stack(
        [
            1.0 + 0.6 * (age < 30) - 0.02 * (age - 40),
            0.3 + 0.02 * (age - 40),
            -0.8 + 0.4 * (age > 55),
        ],
        axis=1,
    )
    logits = logits + rng.normal(0, 0.8, logits.shape)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def archetype(p: People, cfg: GenerateConfig) -> np.ndarray:
    """Descriptive label derived from the continuous parameters (never an input)."""
    new = p.signup_at >= int(cfg.window_start.timestamp())
    frequent = (p.activity > 1.3) & (p.buy_propensity > 0.3)
    browser = (p.browse_depth > 3.5) & (p.buy_propensity < -0.3)
    label = np.select(
        [new, p.lapse_at >= 0, frequent, browser],
        ["new", "lapsed", "frequent_buyer", "browser"],
        "regular",
    )
    return label


def phone_parts(
    idx: np.ndarray, country: np.ndarray
) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """Calling code, trunk prefix, mobile prefix and a 7-digit number that is a
    bijection of the person index (7919 is coprime with 10**7)."""
    meta = list(catalog.COUNTRIES.values())
    number = (idx.astype(np.int64) * 7919 + 1_234_567) % 10_000_000
    digits = pc.utf8_lpad(pc.cast(pa.array(number), pa.string()), 7, "0")
    cc, trunk, prefix = (formats.take([str(m[k]) for m in meta], country) for k in (1, 2, 3))
    return cc, trunk, prefix, digits


def contact_columns(p: People) -> dict[str, pa.Array]:
    """Email, full name and phone in their canonical form (unique per person)."""
    first = formats.take(FIRST_NAMES, p.first_name)
    last = formats.take(catalog.LAST_NAMES, p.last_name)
    local = pc.utf8_lower(pc.replace_substring(last, " ", ""))
    domain = formats.take(catalog.EMAIL_DOMAINS, p.idx % len(catalog.EMAIL_DOMAINS))
    email = formats.join(
        pc.utf8_lower(first), ".", local, pc.cast(pa.array(p.idx), pa.string()), "@", domain
    )
    phone = formats.phone_styles(*phone_parts(p.idx, p.country), np.zeros(len(p), np.int64))
    return {"email": email, "full_name": formats.join(first, " ", last), "phone": phone}
