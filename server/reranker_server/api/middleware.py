"""ASGI middleware recording http_requests_total / _duration_seconds / _active."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reranker_server import metrics
from reranker_server.api.guard import SCORING_PATHS


class MetricsMiddleware:
    """Label by route template (unknown paths -> 'unmatched') so label cardinality stays bounded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics.HTTP_ACTIVE.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            metrics.HTTP_ACTIVE.dec()
            route = scope.get("route")
            path = scope.get("path")
            # a scoring request the guard refused never reached the router: its path is bounded
            endpoint = getattr(route, "path", None) or (
                path if path in SCORING_PATHS else "unmatched"
            )
            method = scope.get("method", "GET")
            metrics.HTTP_REQUESTS.labels(method=method, endpoint=endpoint, status=str(status)).inc()
            metrics.HTTP_DURATION.labels(method=method, endpoint=endpoint).observe(
                time.perf_counter() - start
            )
