"""The outermost layer of the app: what a scoring request must pass before its body is read, and
what happens when its client leaves.

For a POST to a scoring route, in this order:
1. the body must be declared JSON (415 otherwise: a cross-site form or a `text/plain` fetch,
   which a browser sends without asking, is never scored);
2. a declared `Content-Length` over `max_request_bytes` is refused (413) unread;
3. the caller is authenticated from the headers alone (401/403/429), so an unauthenticated body
   is never read or parsed, and a client with no request or pair of its per-client allowance
   left is refused (429) before its body is read;
4. the body is read with a size bound (413 as soon as it goes over, whatever `Content-Length`
   said, the client charged as for the largest request the server admits, since reading it was
   that much work) and a deadline (`body_timeout_seconds`, 408 and the connection closed);
5. once the body is in, the connection is watched: a client that disconnects before its answer
   cancels its request, so its queued pairs leave the engine's queue and nobody waits behind
   work no one will read.

And for every request: an exception no handler answered becomes a 500 JSON body with
`Connection: close` (the client's next pooled request goes on a fresh connection) instead of a
reset connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reranker_server import metrics
from reranker_server.api.errors import APIError, api_error_response, error_response
from reranker_server.api.state import ServerState

log = logging.getLogger("reranker_server.api")

SCORING_PATHS = frozenset({"/v1/rerank", "/v2/rerank", "/rerank", "/v1/rank"})


def is_json(content_type: str) -> bool:
    """`application/json` or `application/<anything>+json`, parameters ignored."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _refused(status: int, message: str, *, limit: str, field: str = "body", **kw: Any) -> APIError:
    metrics.REQUESTS_REFUSED.labels(limit=limit).inc()
    return APIError(status, message, field=field, **kw)


class _Body:
    """The request's `receive`, bounded in size and time; once the body is in, one pending
    `receive` (the `disconnect` future) tells whether the client left."""

    def __init__(
        self,
        receive: Receive,
        *,
        max_bytes: int,
        timeout_s: float,
        on_too_big: Callable[[], None] | None = None,
    ) -> None:
        self._receive, self.max_bytes, self.timeout_s = receive, max_bytes, timeout_s
        self.on_too_big = on_too_big  # once the body has passed `max_bytes`, before the 413
        self.deadline = time.monotonic() + timeout_s
        self.received = 0
        self.complete = asyncio.Event()
        self.disconnect: asyncio.Future[Message] | None = None

    async def __call__(self) -> Message:
        if self.disconnect is not None:  # the app asks again after the body: what comes next
            return await asyncio.shield(self.disconnect)
        try:
            message = await asyncio.wait_for(
                self._receive(), max(0.0, self.deadline - time.monotonic())
            )
        except TimeoutError:
            raise _refused(
                408,
                f"body: not received within {self.timeout_s:g} s (BODY_TIMEOUT_SECONDS)",
                limit="body_timeout",
                type="timeout",
                headers={"Connection": "close"},
            ) from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.max_bytes:
                if self.on_too_big is not None:
                    self.on_too_big()
                    self.on_too_big = None  # charged once, however often it is asked again
                raise _too_big(self.max_bytes)
            if not message.get("more_body", False):
                self.disconnect = asyncio.ensure_future(self._receive())
                self.complete.set()
        return message


def _too_big(limit: int) -> APIError:
    return _refused(
        413,
        f"body: larger than max_request_bytes {limit} (MAX_REQUEST_BYTES)",
        limit="max_request_bytes",
        type="request_too_large",
        headers={"Connection": "close"},
    )


class _Answering:
    """`send`, remembering whether the response has started."""

    def __init__(self, send: Send) -> None:
        self._send, self.started = send, False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class RequestGuard:
    """ASGI middleware; `state` gives the settings and the authenticator."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answering = _Answering(send)
        try:
            if scope.get("method") == "POST" and scope.get("path") in SCORING_PATHS:
                await self._scoring(scope, receive, answering)
            else:
                await self.app(scope, receive, answering)
        except ClientDisconnect:  # the client left while sending its body: nobody to answer
            metrics.REQUESTS_ABANDONED.inc()
        except APIError as exc:  # refused here, before the app saw the request
            if answering.started:
                raise
            await api_error_response(exc)(scope, receive, answering)
        except Exception as exc:  # noqa: BLE001 - the last resort: answer, never drop the line
            log.exception("internal error")
            if answering.started:
                return
            response = error_response(
                500,
                f"internal error: {type(exc).__name__}",
                type="internal_error",
                headers={"Connection": "close"},
            )
            await response(scope, receive, answering)

    async def _scoring(self, scope: Scope, receive: Receive, send: _Answering) -> None:
        settings = self.state.settings
        request = Request(scope)
        content_type = request.headers.get("content-type", "")
        if not is_json(content_type):
            raise _refused(
                415,
                f"content-type: must be application/json, got {content_type[:64]!r}",
                limit="content_type",
                field="content-type",
                type="unsupported_media_type",
            )
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise APIError(
                    400, "content-length: not a number", field="content-length", type="invalid"
                )
            if int(declared) > settings.max_request_bytes:
                raise _too_big(settings.max_request_bytes)
        identity = self.state.access.identify(request)
        self.state.access.refuse_if_spent(identity)  # no allowance left: not worth reading
        scope.setdefault("state", {})["identity"] = identity
        body = _Body(
            receive,
            max_bytes=settings.max_request_bytes,
            timeout_s=settings.body_timeout_seconds,
            on_too_big=lambda: self.state.access.charge_oversized_body(
                identity, settings.max_client_batch_size
            ),
        )
        await self._until_disconnect(scope, body, send)

    async def _until_disconnect(self, scope: Scope, body: _Body, send: _Answering) -> None:
        """Run the app; cancel it if the client disconnects before the response starts."""
        app = asyncio.ensure_future(self.app(scope, body, send))
        body_in = asyncio.ensure_future(body.complete.wait())
        try:
            await asyncio.wait([app, body_in], return_when=asyncio.FIRST_COMPLETED)
            if not app.done():
                assert body.disconnect is not None
                await asyncio.wait([app, body.disconnect], return_when=asyncio.FIRST_COMPLETED)
                left = (
                    body.disconnect.done() and body.disconnect.result()["type"] == "http.disconnect"
                )
                if left and not send.started and not app.done():
                    app.cancel()
                    metrics.REQUESTS_ABANDONED.inc()
            try:
                await app
            except asyncio.CancelledError:
                if not app.cancelled():
                    raise
        finally:
            for task in (app, body_in, body.disconnect):
                if task is not None and not task.done():
                    task.cancel()
