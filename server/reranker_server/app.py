"""FastAPI application factory and the uvicorn runner (background model load, SIGTERM draining)."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from reranker_contract import DEFAULTS
from reranker_server import __version__, host_allocator, metrics
from reranker_server.api import ops_routes, playground, rerank_routes
from reranker_server.api.errors import install_error_handlers
from reranker_server.api.guard import RequestGuard
from reranker_server.api.middleware import MetricsMiddleware
from reranker_server.api.state import Loader, ServerState
from reranker_server.config import Settings
from reranker_server.http_protocol import guarded_protocol
from reranker_server.score_check import ScoreCheckOptions

log = logging.getLogger("reranker_server")


def settings_loader(settings: Settings) -> Loader:
    """The default loader: `load_backend` with the settings' model options (with ENGINE_URL:
    the front's backend, scoring through that vLLM)."""
    if settings.engine_url:
        from reranker_server.models.remote_vllm import load_remote_backend

        return lambda: load_remote_backend(settings)
    from reranker_server.models import LoadOptions, load_backend

    opts = LoadOptions(
        model=settings.model or "",
        revision=settings.revision,
        cache_dir=settings.cache_dir,
        served_model_name=settings.served_model_name,
        family=settings.model_family,
        dtype=settings.dtype,
        device=settings.device,
        attn_implementation=settings.attn_implementation,
        compile_kernels=settings.compile_kernels,
        quantization=settings.quantization,
        max_length=settings.max_sequence_length,
        default_instruction=settings.default_instruction,
        trust_remote_code=settings.trust_remote_code,
    )
    return lambda: load_backend(opts)


def create_app(
    settings: Settings, *, loader: Loader | None = None, on_load_failure: Any = None
) -> FastAPI:
    """Build the app; the model loads in the background once the app starts, then the score
    check runs (see /health, /ready, /score-check).

    Raises ConfigError for unusable auth or score-check settings (a JWKS without issuer, a bad
    key file, an unknown built-in check)."""
    from reranker_server.api.access import Access

    state = ServerState(
        settings=settings,
        loader=loader or settings_loader(settings),
        on_load_failure=on_load_failure,
        access=Access.from_settings(settings),
        score_options=ScoreCheckOptions.from_settings(settings),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        metrics_server = _serve_metrics(settings) if settings.metrics_port else None
        metrics.SCORE_CHECK.report = state.score_check  # pending (or off): no gauge values yet
        state.start_loading()
        try:
            yield
        finally:
            await state.shutdown()
            if metrics_server is not None:
                metrics_server.shutdown()

    app = FastAPI(
        title="reranker-server",
        version=__version__,
        description="Reranker inference server (Qwen3-Reranker and cross-encoders): Cohere, TEI and simple APIs.",
        lifespan=lifespan,
    )
    app.state.server = state
    install_error_handlers(app)
    app.add_middleware(RequestGuard, state=state)
    app.add_middleware(MetricsMiddleware)  # outermost: it counts what the guard refuses too
    app.include_router(rerank_routes.router)
    app.include_router(ops_routes.router)
    app.include_router(playground.router)
    return app


def _serve_metrics(settings: Settings):
    """/metrics on METRICS_PORT (prometheus_client's own threaded HTTP server)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(settings.metrics_port, addr=settings.host)
    log.info("metrics on %s:%d", settings.host, settings.metrics_port)
    return server


def make_uvicorn_server(app: FastAPI, settings: Settings, *, drain_seconds: float | None = None):
    """A uvicorn.Server that drains on its first SIGTERM/SIGINT; a second signal exits at once.

    Draining (Kubernetes sends SIGTERM after the pod's preStop hook, once the endpoint removal
    has propagated): /ready answers 503 and every request that still arrives is served, with
    `Connection: close` so keep-alive clients reconnect to another pod. After `drain_seconds`
    (default: the settings') the listener closes, the requests in flight finish (each within
    REQUEST_TIMEOUT_SECONDS) and the process exits."""
    import uvicorn

    state: ServerState = app.state.server
    drain = settings.drain_seconds if drain_seconds is None else drain_seconds

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if state.draining or drain <= 0:
                state.draining = True
                super().handle_exit(sig, frame)
                return
            state.draining = True
            log.info("signal %s: draining for %.1fs before exit", sig, drain)
            timer = threading.Timer(drain, super().handle_exit, args=(sig, frame))
            timer.daemon = True
            timer.start()

    # proxy_headers off: uvicorn would otherwise trust X-Forwarded-For from 127.0.0.1 by itself;
    # which proxies to believe is TRUSTED_PROXIES' decision (reranker_server.auth.ratelimit).
    config = uvicorn.Config(
        _close_while_draining(app, state),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        proxy_headers=False,
        http=guarded_protocol(settings.header_timeout_seconds, DEFAULTS.max_header_bytes),
        # a safety net only: every rerank request ends within its timeout (504)
        timeout_graceful_shutdown=settings.request_timeout_seconds + 1,
    )
    return DrainingServer(config)


def _close_while_draining(app: FastAPI, state: ServerState) -> Any:
    """The app, answering `Connection: close` while draining: a client holding a keep-alive
    connection opens its next one through the Service, which no longer routes here."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def closing_send(message: Any) -> None:
            if message["type"] == "http.response.start" and state.draining:
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"
                ]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await app(scope, receive, closing_send)

    return asgi


def run_server(settings: Settings) -> None:
    """Serve until SIGTERM; exits with status 1 if the model fails to load."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger(__name__).info("%s", host_allocator.tune_for_tensors())
    server_box: dict[str, Any] = {}
    failed = threading.Event()

    def on_failure(_: BaseException) -> None:
        failed.set()
        server_box["server"].should_exit = True

    app = create_app(settings, on_load_failure=on_failure)
    server = make_uvicorn_server(app, settings)
    server_box["server"] = server
    server.run()
    if failed.is_set():
        raise SystemExit(1)
