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

from reranker_server.contracts import (
    InputTooLongError,
    QueueFullError,
    RerankError,
    TooManyChunksError,
    TooManyTokensError,
)

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
    """The uniform error body (message and field, which may quote the request, always valid
    UTF-8: a lone surrogate in a key a client sent is shown escaped)."""
    body: dict[str, Any] = {
        "message": _printable(message),
        "field": None if field is None else _printable(field),
        "type": type,
        **(extra or {}),
    }
    return JSONResponse({"error": body}, status_code=status_code, headers=headers)


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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


def validation_error(errors: Sequence[dict[str, Any]]) -> APIError:
    """The first pydantic/FastAPI error as an APIError: malformed JSON 400, anything else 422."""
    if not errors:
        return APIError(422, "body: invalid request", field="body")
    first = errors[0]
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", first.get("msg", "invalid JSON"))
        return APIError(400, f"body: malformed JSON: {detail}", field="body", type="json_invalid")
    field = field_path(first.get("loc", ()))
    msg = str(first.get("msg", "invalid value"))
    if first.get("type") == "missing":
        msg = "field required"
    elif first.get("type") == "model_attributes_type" or first.get("type") == "dict_type":
        msg = "must be a JSON object"
    return APIError(422, f"{field}: {msg}", field=field, type=str(first.get("type", "invalid")))


def api_error_response(exc: APIError) -> JSONResponse:
    """The uniform error body of an APIError."""
    return error_response(
        exc.status_code,
        exc.message,
        field=exc.field,
        type=exc.type,
        headers=exc.headers,
        extra=exc.extra,
    )


def validation_response(errors: Sequence[dict[str, Any]]) -> JSONResponse:
    """First pydantic/FastAPI error as our body: malformed JSON -> 400, everything else -> 422."""
    return api_error_response(validation_error(errors))


def rerank_error_response(exc: RerankError) -> JSONResponse:
    """Map the contracts' errors: InputTooLongError 413 (with token counts), QueueFullError 429."""
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    kind = "invalid_request_error"
    if isinstance(exc, QueueFullError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        kind = "rate_limit_error"
        if exc.limit:
            extra = {"setting": exc.limit}
    elif isinstance(exc, TooManyTokensError):
        extra = {"tokens": exc.tokens, "limit": exc.limit, "setting": "max_request_tokens"}
        kind = "too_many_tokens"
    elif isinstance(exc, TooManyChunksError):
        extra = {"chunks": exc.chunks, "limit": exc.limit, "setting": exc.setting}
        kind = "too_many_chunks"
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
        return api_error_response(exc)

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
