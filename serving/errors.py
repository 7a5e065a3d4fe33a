"""The API's one error shape (serving.api.ErrorResponse) and the request-size limit.

    RequestValidationError (FastAPI's body and header checks)
        malformed JSON --> 400, otherwise 422; `detail` names every bad field
    HTTPException (auth, events the rules reject, unknown versions, and Starlette's own
        404 / 405 for unknown paths and methods) --> its status and headers
    BodyLimit: a declared Content-Length over the limit --> 413 before the body is read
    serving.overload.Shedder: too many requests in flight --> 503 with Retry-After
    a client gone while its body was read --> counted by `on_disconnect`, 499, no error

`ERROR_RESPONSES` declares these bodies on the routes, so /openapi.json describes what is
returned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from serving.api import UNION_TAGS, ErrorResponse

ERROR = {"model": ErrorResponse}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {**ERROR, "description": "Malformed JSON"},
    413: {**ERROR, "description": "Body over the configured size limit"},
    422: {**ERROR, "description": "A field is missing or invalid; `detail` names each"},
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 0},
    }
}
OVERLOADED: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "Overloaded: refused before any work, retry after `Retry-After` seconds"
        " (application/json from the app; text/plain from Ray Serve's own queue limit)",
        "headers": RETRY_AFTER,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {**ERROR, "description": "Missing or unknown X-API-Key header"},
    403: {**ERROR, "description": "The X-API-Key is of the other scope (write / admin)"},
}


def install_error_handlers(app: FastAPI, on_disconnect: Callable[[str], None]) -> None:
    """The error shape for validation and HTTP errors; `on_disconnect(route)` is told of a
    client that left while its body was being read (FastAPI reports it as a 400)."""

    async def http_error(request: Request, exc: HTTPException) -> Response:
        if isinstance(exc.__cause__, ClientDisconnect):
            route = request.scope.get("route")  # the matched route: a bounded label
            on_disconnect(str(getattr(route, "path", "other")))
            return Response(status_code=499)  # nobody reads it; the access log says why
        body = exc.detail if isinstance(exc.detail, dict) else {"error": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]


async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    return problems(list(exc.errors()))


def problems(errors: list[Any]) -> JSONResponse:
    """Pydantic's errors as an ErrorResponse: 400 for malformed JSON, else 422."""
    detail = [
        {"field": _field(e.get("loc", ())), "problem": e.get("msg", "invalid")} for e in errors
    ]
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse({"error": "malformed JSON body", "detail": detail}, status_code=400)
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in detail)
    return JSONResponse({"error": f"invalid request: {summary}", "detail": detail}, status_code=422)


def _field(loc: Any) -> str:
    parts = [str(p) for p in loc if p != "body" and p not in UNION_TAGS]
    return ".".join(parts) or "body"


class BodyLimit:
    """413 for a declared Content-Length over `limit`, before anything reads the body."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length":
                    if value.isdigit() and int(value) > self.limit:
                        error = (
                            f"request body of {value.decode()} bytes exceeds the limit of "
                            f"{self.limit} bytes"
                        )
                        await JSONResponse({"error": error}, status_code=413)(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)
