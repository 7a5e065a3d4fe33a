"""Checks the API contract test adds to schemathesis' defaults (loaded as SCHEMATHESIS_HOOKS).

Two rejections a JSON Schema cannot express are allowed in tests/serving/schemathesis.toml;
these checks keep each to exactly what it is for:

- 413 only for a body over the server's byte limit (CONTRACT_MAX_BODY_BYTES): the limit
  is documented on every body operation, but a schema has no byte-size keyword;
- 422 on a schema-valid POST /events only from the event contract (tailwise.ingest.contract):
  every problem names the event (`index`) and the value sent. Time windows, known event
  types and rating ranges are params.yaml rules, not schema; a 422 from the schema's own
  validation (no `index`) on a valid body still fails.

And every error answer of the app (4xx/503 JSON) is an ErrorResponse.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis

from serving.api import ErrorResponse


def _body_bytes(case: Any) -> int:
    body = case.body
    if body is None or not hasattr(case, "body"):
        return 0
    if isinstance(body, bytes | str):
        return len(body.encode() if isinstance(body, str) else body)
    try:
        return len(json.dumps(body, ensure_ascii=False).encode())
    except (TypeError, ValueError):
        return 0


@schemathesis.check
def too_large_only_past_the_limit(ctx: Any, response: Any, case: Any) -> None:
    if response.status_code != 413:
        return
    limit = int(os.environ["CONTRACT_MAX_BODY_BYTES"])
    sent = int(response.request.headers.get("Content-Length") or 0) or _body_bytes(case)
    if sent <= limit:
        raise AssertionError(f"413 for a body of {sent} bytes, under the limit of {limit}")


@schemathesis.check
def event_rejections_come_from_the_event_contract(ctx: Any, response: Any, case: Any) -> None:
    if response.status_code != 422 or case.path != "/events" or case.meta is None:
        return
    if not case.meta.generation.mode.is_positive:
        return
    problems = response.json().get("detail") or []
    if not problems or any("index" not in p or p["index"] is None for p in problems):
        raise AssertionError(f"schema-valid events refused by schema validation: {problems}")


@schemathesis.check
def errors_have_the_documented_shape(ctx: Any, response: Any, case: Any) -> None:
    status = response.status_code
    kind = response.headers.get("content-type") or [""]
    kind = kind[0] if isinstance(kind, list) else kind
    if status >= 400 and kind.startswith("application/json"):
        ErrorResponse.model_validate(response.json())
