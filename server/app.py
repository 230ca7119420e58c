"""FastAPI application factory and the uvicorn runner (background model load, SIGTERM draining)."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from reranker_server import __version__
from reranker_server.api import ops_routes, playground, rerank_routes
from reranker_server.api.errors import install_error_handlers
from reranker_server.api.middleware import MetricsMiddleware
from reranker_server.api.state import Loader, ServerState
from reranker_server.config import Settings

log = logging.getLogger("reranker_server")


def settings_loader(settings: Settings) -> Loader:
    """The default loader: `load_backend` with the settings' model options."""
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
        quantization=settings.quantization,
        max_length=settings.max_sequence_length,
        default_instruction=settings.default_instruction,
        trust_remote_code=settings.trust_remote_code,
    )
    return lambda: load_backend(opts)


def create_app(
    settings: Settings, *, loader: Loader | None = None, on_load_failure: Any = None
) -> FastAPI:
    """Build the app; the model loads in the background once the app starts (see /health, /ready).

    Raises ConfigError for unusable auth settings (a JWKS without issuer, a bad key file)."""
    from reranker_server.api.access import Access

    state = ServerState(
        settings=settings,
        loader=loader or settings_loader(settings),
        on_load_failure=on_load_failure,
        access=Access.from_settings(settings),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        metrics_server = _serve_metrics(settings) if settings.metrics_port else None
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
    app.add_middleware(MetricsMiddleware)
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


def make_uvicorn_server(app: FastAPI, settings: Settings, *, drain_seconds: float = 5.0):
    """A uvicorn.Server whose first SIGTERM/SIGINT only starts draining (ready -> 503), exiting after
    `drain_seconds`; a second signal exits at once."""
    import uvicorn

    state: ServerState = app.state.server

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if state.draining or drain_seconds <= 0:
                super().handle_exit(sig, frame)
                return
            state.draining = True
            log.info("signal %s: draining for %.1fs before exit", sig, drain_seconds)
            timer = threading.Timer(drain_seconds, super().handle_exit, args=(sig, frame))
            timer.daemon = True
            timer.start()

    # proxy_headers off: uvicorn would otherwise trust X-Forwarded-For from 127.0.0.1 by itself;
    # which proxies to believe is TRUSTED_PROXIES' decision (reranker_server.auth.ratelimit).
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level,
        proxy_headers=False,
    )
    return DrainingServer(config)


def run_server(settings: Settings) -> None:
    """Serve until SIGTERM; exits with status 1 if the model fails to load."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    server_box: dict[str, Any] = {}
    failed = threading.Event()

    def on_failure(_: BaseException) -> None:
        failed.set()
        server_box["server"].should_exit = True

    app = create_app(settings, on_load_failure=on_failure)
    server = make_uvicorn_server(app, settings, drain_seconds=settings.drain_seconds)
    server_box["server"] = server
    server.run()
    if failed.is_set():
        raise SystemExit(1)
