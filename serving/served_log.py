"""The served log: one entry per answered request in the `served` Redis stream.

Monitoring reads it (served items, scores, cold starts, sampled feature vectors); the
stream is capped at SERVED_MAXLEN entries (approximate trimming). The entry is queued on
the pipeline that also writes the response cache, after the response is out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from serving.keys import Keys
from serving.pipeline import Answer, Request

SERVED_MAXLEN = 1_000_000


class ServedLog:
    def __init__(self, keys: Keys, version: str) -> None:
        self.keys, self.version = keys, version

    def entry(self, req: Request, answer: Answer) -> dict[str, Any]:
        items = answer.body["items"]
        return {
            "request_id": req.request_id,
            "ts": datetime.now(UTC).isoformat(),
            "user_id": req.user_id,
            "model_version": self.version,
            "k": req.k,
            "device": req.device,
            "country": req.country,
            "items": [i["item_id"] for i in items],
            "scores": [i["score"] for i in items],
            "cold_start": answer.cold_start,
            "features": answer.features,
        }

    def queue(self, pipe: Any, req: Request, answer: Answer) -> None:
        entry = json.dumps(self.entry(req, answer))
        pipe.xadd(self.keys.served, {"r": entry}, maxlen=SERVED_MAXLEN, approximate=True)
