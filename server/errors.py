"""Errors of the native HTTP API: `ApiError`, the exception handlers, and the OpenAPI helper.

Every error response of the native routes has the `ErrorBody` shape (`{"error": {"type",
"message", ...}}`); validation errors name the offending field. A route declares each status it
can return with `error_responses(...)` so the OpenAPI document stays honest (schemathesis checks
responses against it). Handlers never leak internals: a `RagError`'s message names the fix,
anything else is logged under the request id.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.errors import CorpusError, IndexStoreError, QuestionError, RagError
from server.middleware import route_of
from server.schemas import ErrorBody, error_body

logger = logging.getLogger("server")


class ApiError(Exception):
    """An error response with a stable `type` clients can branch on."""

    def __init__(
        self, status: int, type_: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.headers = headers


_ERROR_DESCRIPTIONS = {
    401: "Missing or wrong bearer token.",
    403: "No admin token is configured and the client is not on loopback.",
    404: "No such document.",
    413: "Request body larger than max_body_bytes.",
    422: "Invalid field values, unknown fields or malformed JSON.",
    500: "Unexpected failure; details are in the server log under the request id.",
    503: "Model or index not loaded (yet), or the index is unusable.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status code with the ErrorBody model."""
    return {c: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[c]} for c in codes}


def field_path(loc: tuple[Any, ...]) -> str:
    """`("body", "filters", "doc_ids")` -> `filters.doc_ids`; the whole body is `body`."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def field_reason(err: dict[str, Any]) -> str:
    """One pydantic error as a short human reason."""
    kind = err.get("type", "")
    if kind == "json_invalid":
        ctx = err.get("ctx") or {}
        pos = err.get("loc", ("body", "?"))[-1]
        return f"malformed JSON: {ctx.get('error', 'decode error')} (at character {pos})"
    if kind == "extra_forbidden":
        return "unknown field"
    if tuple(err.get("loc", ())) == ("body",):
        if kind == "missing":
            return "a JSON request body is required"
        if kind in ("model_attributes_type", "dict_type"):
            return "expected a JSON object (sent as Content-Type: application/json)"
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")


def validation_fields(exc: RequestValidationError) -> list[dict[str, str]]:
    """`[{field, reason}]` for each error of a request that did not validate."""
    fields = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        field = "body" if err.get("type") == "json_invalid" else field_path(loc)
        fields.append({"field": field, "reason": field_reason(dict(err))})
    return fields or [{"field": "body", "reason": "invalid request"}]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = validation_fields(exc)
    message = f"invalid {fields[0]['field']}: {fields[0]['reason']}"
    return JSONResponse(error_body("validation_error", message, fields=fields), status_code=422)


async def _question_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuestionError)
    fields = [{"field": exc.field, "reason": str(exc)}]
    return JSONResponse(
        error_body("validation_error", f"invalid {exc.field}: {exc}", fields=fields), 422
    )


def rag_error_type(exc: RagError) -> str:
    if isinstance(exc, IndexStoreError):
        return "index_unavailable"
    if isinstance(exc, CorpusError):
        return "corpus_error"
    return "unavailable"


def public_reason(exc: Exception) -> str:
    """What a client may read about a failure: a RagError's message names the fix; anything
    else is internal (the traceback is in the log)."""
    if isinstance(exc, RagError):
        return str(exc)
    return f"unexpected {exc.__class__.__name__}; see the server log"


async def _rag_error(request: Request, exc: Exception) -> JSONResponse:
    """Setup problems (index missing or corrupt, model missing): the service is unavailable."""
    assert isinstance(exc, RagError)
    kind = rag_error_type(exc)
    logger.warning("%s on %s: %s", kind, route_of(request.scope), exc)
    return JSONResponse(error_body(kind, str(exc)), status_code=503)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        error_body(exc.type, exc.message), status_code=exc.status, headers=exc.headers
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in the API's error shape."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI reports a body that is not UTF-8 as a bare 400; it is malformed JSON too.
        reason = "malformed JSON: the body is not valid UTF-8"
        fields = [{"field": "body", "reason": reason}]
        return JSONResponse(
            error_body("validation_error", f"invalid body: {reason}", fields=fields), 422
        )
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(kind, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


def install_error_handlers(app: FastAPI) -> None:
    """Every native error in the ErrorBody shape."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(QuestionError, _question_error)
    app.add_exception_handler(RagError, _rag_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
