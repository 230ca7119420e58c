"""JSON error bodies `{"error": {"message", "field", "type"}}` and the handlers that produce them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from reranker_server.contracts import InputTooLongError, QueueFullError, RerankError

log = logging.getLogger("reranker_server.api")


class APIError(Exception):
    """An error answered as JSON with a status code, naming the offending field."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        field: str | None = None,
        type: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.field = field
        self.type = type
        self.headers = headers or {}
        self.extra = extra or {}


def error_response(
    status_code: int,
    message: str,
    *,
    field: str | None = None,
    type: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """The uniform error body."""
    body: dict[str, Any] = {"message": message, "field": field, "type": type, **(extra or {})}
    return JSONResponse({"error": body}, status_code=status_code, headers=headers)


def field_path(loc: Sequence[Any]) -> str:
    """('body', 'documents', 2, 'text') -> 'documents[2].text'; the leading 'body' is dropped."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def validation_response(errors: Sequence[dict[str, Any]]) -> JSONResponse:
    """First pydantic/FastAPI error as our body: malformed JSON -> 400, everything else -> 422."""
    if not errors:
        return error_response(422, "body: invalid request", field="body")
    first = errors[0]
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", first.get("msg", "invalid JSON"))
        return error_response(
            400, f"body: malformed JSON: {detail}", field="body", type="json_invalid"
        )
    field = field_path(first.get("loc", ()))
    msg = str(first.get("msg", "invalid value"))
    if first.get("type") == "missing":
        msg = "field required"
    elif first.get("type") == "model_attributes_type" or first.get("type") == "dict_type":
        msg = "must be a JSON object"
    return error_response(
        422, f"{field}: {msg}", field=field, type=str(first.get("type", "invalid"))
    )


def rerank_error_response(exc: RerankError) -> JSONResponse:
    """Map the contracts' errors: InputTooLongError 413 (with token counts), QueueFullError 429."""
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    kind = "invalid_request_error"
    if isinstance(exc, QueueFullError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        kind = "rate_limit_error"
    elif isinstance(exc, InputTooLongError):
        extra = {"tokens": exc.tokens, "limit": exc.limit}
        kind = "input_too_long"
    elif exc.status_code >= 500:
        kind = "unavailable"
    return error_response(
        exc.status_code, exc.message, field=exc.field, type=kind, headers=headers, extra=extra
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers so that no bad input ever produces a 500 or FastAPI's default body."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc.errors())

    @app.exception_handler(ValidationError)
    async def _pydantic(_: Request, exc: ValidationError) -> JSONResponse:
        return validation_response(exc.errors())

    @app.exception_handler(APIError)
    async def _api(_: Request, exc: APIError) -> JSONResponse:
        return error_response(
            exc.status_code,
            exc.message,
            field=exc.field,
            type=exc.type,
            headers=exc.headers,
            extra=exc.extra,
        )

    @app.exception_handler(RerankError)
    async def _rerank(_: Request, exc: RerankError) -> JSONResponse:
        return rerank_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            exc.status_code, str(exc.detail), type="http_error", headers=dict(exc.headers or {})
        )

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return error_response(500, f"internal error: {type(exc).__name__}", type="internal_error")
