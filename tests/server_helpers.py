"""Running the real server app in tests: settings for a tiny model, a TestClient, uvicorn."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from reranker_devtools.tiny_models import UNTRAINED_BUILTINS
from reranker_server.app import create_app, make_uvicorn_server, settings_loader
from reranker_server.config import Settings


def settings_for(path, **overrides) -> Settings:
    """Settings for the (random-weight) model at `path`: the score check without relevance."""
    base = {
        "model": str(path),
        "device": "cpu",
        "dtype": "float32",
        "max_client_batch_size": 16,
        "score_check_builtins": UNTRAINED_BUILTINS,
    }
    return Settings(**{**base, **overrides})


def gated_loader(settings: Settings) -> tuple[Callable[[], Any], threading.Event]:
    """The real loader of `settings`, held until the returned event is set (a server caught
    while loading)."""
    release = threading.Event()
    real_loader = settings_loader(settings)

    def loader() -> Any:
        release.wait(60)
        return real_loader()

    return loader, release


def running_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as client:
        assert app.state.server.loaded.wait(120), "model did not load"
        assert app.state.server.load_error is None, app.state.server.load_error
        yield client


def serving(path, **overrides) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1 (free port) in a thread, serving the model at `path`;
    yields its base URL."""
    for url, _app in serving_app(path, **overrides):
        yield url


def serving_app(path, *, loader=None, **overrides) -> Iterator[tuple[str, FastAPI]]:
    """`serving`, yielding the base URL and the app (whose `state.server` holds the engine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = settings_for(path, host="127.0.0.1", port=port, log_level="warning", **overrides)
    app = create_app(settings, loader=loader)
    server = make_uvicorn_server(app, settings, drain_seconds=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert app.state.server.loaded.wait(120) and app.state.server.load_error is None
        while not server.started:  # bounded by the thread being alive
            if not thread.is_alive():
                raise RuntimeError("uvicorn exited")
            threading.Event().wait(0.02)
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(30)
