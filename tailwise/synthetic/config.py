"""Typed configuration of the synthetic data generator.

Owns the pydantic models the CLI builds from its flags: `GenerateConfig`
(sizes, window, seed, chunking, mean activity), `DefectRates` (the share of
rows, cells or people that each kind of deliberate defect touches) and
`ShiftConfig` (an optional distribution shift part-way through the window).
All reject bad values with errors that name the field.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tailwise.synthetic import catalog


class DefectRates(BaseModel):
    """Share (0..1) of the relevant population that each defect kind touches.

    missing_demographics: per user row and demographic cell (age, gender, country,
    income_band); duplicate_events: per event row; near_duplicate_users: per real
    person; category_spellings: per item; mixed_timezones: per timestamp value
    (events.timestamp, users.signup_at); impossible_values: per row of users.age,
    items.price and cart/purchase events.price; unknown_references and
    malformed_timestamps: per event row.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    missing_demographics: float = Field(default=0.05, ge=0.0, le=1.0)
    duplicate_events: float = Field(default=0.01, ge=0.0, le=1.0)
    near_duplicate_users: float = Field(default=0.02, ge=0.0, le=1.0)
    category_spellings: float = Field(default=0.10, ge=0.0, le=1.0)
    mixed_timezones: float = Field(default=0.30, ge=0.0, le=1.0)
    impossible_values: float = Field(default=0.002, ge=0.0, le=1.0)
    unknown_references: float = Field(default=0.002, ge=0.0, le=1.0)
    malformed_timestamps: float = Field(default=0.001, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _event_row_defects_fit(self) -> DefectRates:
        total = self.unknown_references + self.malformed_timestamps + self.impossible_values
        if total > 0.9:
            raise ValueError(
                "unknown_references + malformed_timestamps + impossible_values must be "
                f"<= 0.9 (they pick disjoint event rows); got {total:.3f}"
            )
        return self

    @classmethod
    def off(cls) -> DefectRates:
        """Every rate 0: clean data (params.yaml: all eight keys set to 0)."""
        return cls(**dict.fromkeys(cls.model_fields, 0.0))


class ShiftConfig(BaseModel):
    """A distribution shift from UTC midnight of `at` to the end of the window.

    Sessions starting (and product views happening) at or after `at` see every
    user's top-level category logits moved by `top_taste` (names of the top
    categories, e.g. {"Toys": 1.5}), draw their device from `device_mix` (shares
    per device that must sum to 1; None keeps each person's own mix), and
    `new_items` items join the catalogue within 2 days of `at`, so the novelty
    boost makes them popular. Behaviour before `at` is unchanged.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: date
    top_taste: dict[str, float] = Field(default_factory=dict)
    device_mix: dict[str, float] | None = None
    new_items: int = Field(default=0, ge=0, le=10_000_000)

    @field_validator("top_taste")
    @classmethod
    def _known_tops(cls, value: dict[str, float]) -> dict[str, float]:
        tops = list(catalog.TAXONOMY)
        unknown = sorted(set(value) - set(tops))
        if unknown:
            raise ValueError(f"unknown top categories {unknown}; valid: {tops}")
        return value

    @field_validator("device_mix")
    @classmethod
    def _device_shares(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - set(catalog.DEVICES))
        if unknown:
            raise ValueError(f"unknown devices {unknown}; valid: {catalog.DEVICES}")
        negative = {k: v for k, v in value.items() if v < 0}
        if negative:
            raise ValueError(f"device shares must be >= 0, got {negative}")
        total = sum(value.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"device shares must sum to 1 (within 1e-6), got {total:.6f}")
        return value

    def top_vector(self) -> list[float]:
        """`top_taste` as one value per top category in taxonomy order (0 if absent)."""
        return [float(self.top_taste.get(t, 0.0)) for t in catalog.TAXONOMY]

    def device_vector(self) -> list[float] | None:
        """`device_mix` as one share per device in `catalog.DEVICES` order (0 if absent)."""
        if self.device_mix is None:
            return None
        return [float(self.device_mix.get(d, 0.0)) for d in catalog.DEVICES]


class GenerateConfig(BaseModel):
    """Size, window and seed of one generated data set.

    `events_per_user_per_day` is the mean number of events per real user per day
    of the window; the default (1/3) gives ~20M events for 1M users over 60 days.
    Users who sign up late or lapse are active on fewer days, so the simulation
    scales per-user activity to keep the population mean at this value.
    `shift` (None: no shift) changes behaviour from `shift.at` on (see `ShiftConfig`);
    `defects=DefectRates.off()` generates clean data.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: int = Field(default=5000, ge=1, le=50_000_000)
    items: int = Field(default=1000, ge=1, le=10_000_000)
    days: int = Field(default=60, ge=1, le=3650)
    seed: int = Field(default=42, ge=0)
    end_date: date = date(2026, 10, 31)
    chunk_users: int = Field(default=20000, ge=1, le=1_000_000)
    events_per_user_per_day: float = Field(default=1.0 / 3.0, gt=0.0, le=1000.0)
    defects: DefectRates = DefectRates()
    shift: ShiftConfig | None = None

    @model_validator(mode="after")
    def _shift_inside_window(self) -> GenerateConfig:
        if self.shift is None:
            return self
        first, last = self.window_start.date(), self.end_date
        if not first < self.shift.at <= last:
            raise ValueError(
                f"shift.at {self.shift.at} must lie strictly inside the window "
                f"{first}..{last} (after its first day, at most its last day)"
            )
        return self

    @property
    def shift_start(self) -> datetime | None:
        """First instant of the shifted behaviour (UTC midnight of shift.at), if any."""
        if self.shift is None:
            return None
        at = self.shift.at
        return datetime(at.year, at.month, at.day, tzinfo=UTC)

    @property
    def total_items(self) -> int:
        """Catalogue size including the items a shift adds."""
        return self.items + (self.shift.new_items if self.shift is not None else 0)

    @property
    def window_start(self) -> datetime:
        """First instant of the simulated window (UTC midnight)."""
        return self.window_end - timedelta(days=self.days)

    @property
    def window_end(self) -> datetime:
        """Exclusive end of the window: midnight UTC after `end_date`."""
        end = datetime(self.end_date.year, self.end_date.month, self.end_date.day)
        return end.replace(tzinfo=UTC) + timedelta(days=1)

    @property
    def n_chunks(self) -> int:
        """Number of user chunks the simulation runs through."""
        return -(-self.users // self.chunk_users)


__all__ = ["DefectRates", "GenerateConfig", "ShiftConfig"]
