"""A stand-in of the recommendation graph for the content tests: four catalogue items (one
titled with a script), two profiles, no Redis."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from serving.graph import Answer, Request
from tailwise.features.online import ItemTable

ROOT = Path(__file__).resolve().parents[2]
EVIL = "<script>alert(1)</script>"
PROFILES = {
    "u1": {"segment_name": "frequent buyers", "top_brands": ["Acme"], "recent_items": ["i3"]},
    "u2": {"segment_name": "lapsed", "recent_items": ["i3", "unknown"]},
}


class Graph:
    """recommend, profile, record, the item table and the cold-start list."""

    def __init__(self) -> None:
        self.bundle = SimpleNamespace(version="v1")
        self.degraded = False
        self.cache = SimpleNamespace(applies=lambda req: False)
        self.extra: dict[str, Any] = {}
        self.asked: list[Request] = []
        self.recorded: list[str] = []
        frame = pd.DataFrame(
            {
                "item_id": ["i0", "i1", "i2", "i3"],
                "title": [EVIL, "Boots", None, "Old favourite"],
                "brand": ["Acme", None, "Zed", "Acme"],
                "price": [9.5, 120.0, None, 3.0],
                "category": ["c", "c", "d", "e"],
                "age_band": ["18-24"] * 4,  # not a catalogue field a template sees
            }
        )
        self.reader = SimpleNamespace(items=ItemTable(frame))
        self.pipeline = Pipeline()

    async def recommend(self, req: Request, log_features: bool = False) -> Answer:
        self.asked.append(req)
        ids = ["i0", "i1", "i2", "i3"][: req.k]
        items = [{"item_id": i, "score": 1.0, "reason": "popular"} for i in ids]
        body = {"request_id": req.request_id, "model_version": "v1", "items": items}
        return Answer({**body, "degraded": self.degraded, **self.extra}, {"total": 0.001})

    async def profile(self, user_id: str) -> dict[str, Any]:
        return {} if self.degraded else dict(PROFILES.get(user_id, {}))

    async def record(self, req: Request, answer: Answer) -> None:
        self.recorded.append(req.request_id)


class Pipeline:
    def cold_start(self, req: Request, exclude: set[str]) -> Answer:
        items = [{"item_id": i, "score": 1.0, "reason": "popular"} for i in ["i1", "i0"][: req.k]]
        return Answer({"request_id": "", "model_version": "v1", "items": items}, cold_start=True)
