"""Seeded synthetic e-commerce data: the platform's embedded default data source.

`generate(cfg, out)` writes raw users/items/events (with deliberate, listed
defects; optionally a distribution shift part-way through, `ShiftConfig`), the
ground truth behind them and a defect manifest; `true_utility`
scores (user, item) pairs exactly as the simulation's deterministic part.
`profiles.apply_profile` reshapes a generated folder into a named dataset shape
(`tailwise generate --profile`: ratings-only, re-buy, no attributes, sparse, big
catalogue, required columns only).
"""

from tailwise.synthetic.config import DefectRates, GenerateConfig, ShiftConfig
from tailwise.synthetic.generate import GenerateSummary, generate
from tailwise.synthetic.utility import load_ground_truth, true_utility

__all__ = [
    "DefectRates",
    "GenerateConfig",
    "GenerateSummary",
    "ShiftConfig",
    "generate",
    "load_ground_truth",
    "true_utility",
]
