"""Typed configuration of the synthetic data generator.

Owns the two pydantic models the CLI builds from its flags: `GenerateConfig`
(sizes, window, seed, chunking, mean activity) and `DefectRates` (the share of
rows, cells or people that each kind of deliberate defect touches). Both
reject bad values with errors that name the field.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator


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


class GenerateConfig(BaseModel):
    """Size, window and seed of one generated data set.

    `events_per_user_per_day` is the mean number of events per real user per day
    of the window; the default (1/3) gives ~20M events for 1M users over 60 days.
    Users who sign up late or lapse are active on fewer days, so the simulation
    scales per-user activity to keep the population mean at this value.
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


__all__ = ["DefectRates", "GenerateConfig"]
