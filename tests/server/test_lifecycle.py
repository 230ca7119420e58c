"""Background loading (probes answer during load), load failure, 429 mapping and SIGTERM draining."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi.testclient import TestClient

from reranker_devtools.tiny_models import UNTRAINED_BUILTINS
from reranker_server.app import create_app, make_uvicorn_server
from reranker_server.config import Settings
from server_helpers import gated_loader


def _settings(path, **kw) -> Settings:
    base = {"device": "cpu", "dtype": "float32", "score_check_builtins": UNTRAINED_BUILTINS}
    return Settings(**{"model": str(path), **base, **kw})


@contextlib.asynccontextmanager
async def _paused_engine(settings: Settings) -> AsyncIterator[tuple[object, httpx.AsyncClient]]:
    """The app's state, once the model loaded and its engine paused (nothing is scored until
    `state.engine.resume()`), and a client of the app."""
    app = create_app(settings)
    state = app.state.server
    async with app.router.lifespan_context(app):
        assert await asyncio.to_thread(state.loaded.wait, 120)
        state.engine.pause()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield state, client


def test_probes_answer_while_loading(tiny_qwen3_path):
    settings = _settings(tiny_qwen3_path)
    loader, release = gated_loader(settings)
    app = create_app(settings, loader=loader)
    with TestClient(app) as client:
        try:
            assert client.get("/healthz").status_code == 200
            health = client.get("/health")
            assert health.status_code == 503 and health.json()["status"] == "loading"
            assert health.json()["model_loaded"] is False
            assert client.get("/ready").status_code == 503
            busy = client.post("/v2/rerank", json={"query": "q", "documents": ["a"]})
            assert busy.status_code == 503 and "Retry-After" in busy.headers
            assert client.get("/info").json()["loaded"] is False
        finally:
            release.set()
        assert app.state.server.loaded.wait(120)
        assert client.get("/ready").status_code == 200
        assert client.get("/health").json()["status"] == "ok"
        assert client.post("/v2/rerank", json={"query": "q", "documents": ["a"]}).status_code == 200


def test_load_failure_reported(tmp_path):
    failures = []
    app = create_app(_settings(tmp_path / "missing"), on_load_failure=failures.append)
    with TestClient(app) as client:
        assert app.state.server.loaded.wait(60)
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "error"
        assert "model: cannot load" in health.json()["error"]
        assert client.get("/ready").status_code == 503
        assert client.get("/healthz").status_code == 200
    assert len(failures) == 1


async def test_queue_full_is_429_with_retry_after(tiny_qwen3_path):
    settings = _settings(tiny_qwen3_path, max_concurrent_requests=1)
    async with _paused_engine(settings) as (state, client):
        body = {"query": "q", "documents": ["a", "b"]}
        first = asyncio.create_task(client.post("/v2/rerank", json=body))
        for _ in range(2000):  # wait until the engine admitted the first request
            if state.engine.inflight_requests == 1:
                break
            await asyncio.sleep(0.005)
        assert state.engine.inflight_requests == 1
        second = await client.post("/v2/rerank", json=body)
        assert second.status_code == 429, second.text
        assert int(second.headers["Retry-After"]) >= 1
        assert second.json()["error"]["type"] == "rate_limit_error"
        state.engine.resume()
        assert (await first).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert 'reranker_requests_total{status="rejected"}' in metrics


def test_sigterm_drains_before_exit(tiny_qwen3_path):
    app = create_app(_settings(tiny_qwen3_path))
    server = make_uvicorn_server(app, app.state.server.settings, drain_seconds=3600)
    with TestClient(app) as client:
        assert app.state.server.loaded.wait(120)
        assert client.get("/ready").status_code == 200
        server.handle_exit(signal.SIGTERM, None)  # first signal: drain only
        assert server.should_exit is False
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["draining"] is True
        assert client.get("/health").json()["status"] == "draining"
        assert client.get("/healthz").status_code == 200
        server.handle_exit(signal.SIGTERM, None)  # second signal: exit now
        assert server.should_exit is True


def test_warm_up_runs_before_ready(tiny_qwen3_path):
    """The server scores one request at the batch budget before it says ready (first forwards,
    the shortcuts' checks); WARMUP=false skips it."""
    from prometheus_client import REGISTRY

    from server_helpers import running_client, settings_for

    def scored() -> float:
        return REGISTRY.get_sample_value("reranker_tokenization_duration_seconds_count") or 0.0

    before = scored()
    # the score check (off here) scores its own probes before ready: tests/server/score_check
    for client in running_client(settings_for(tiny_qwen3_path, batch_size=4, score_check=False)):
        assert client.get("/ready").status_code == 200
        assert scored() - before == 1  # the warm-up request, no client request yet
        shortcuts = client.get("/info").json()["shortcuts"]
        assert shortcuts["prefix_kv"]["in_force"]  # already checked on first use
    before = scored()
    for client in running_client(settings_for(tiny_qwen3_path, warmup=False, score_check=False)):
        assert client.get("/ready").status_code == 200
        assert scored() == before


def test_draining_serves_what_arrives_then_closes(tiny_cross_encoder_path):
    """After SIGTERM the real uvicorn server answers /ready 503 but still scores a request that
    arrives (routed before the endpoint removal propagated), with `Connection: close`; when the
    drain ends the listener closes and the server exits."""
    import socket

    from server_helpers import settings_for

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = settings_for(
        tiny_cross_encoder_path,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        drain_seconds=3600,
    )
    app = create_app(settings)
    server = make_uvicorn_server(app, settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    body = {"query": "q", "documents": ["a", "b"]}
    try:
        assert app.state.server.loaded.wait(120)
        while not server.started:
            assert thread.is_alive()
            threading.Event().wait(0.02)
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/ready").status_code == 200
            assert client.post("/v2/rerank", json=body).headers.get("connection") != "close"
            server.handle_exit(signal.SIGTERM, None)  # drain: keep serving
            assert client.get("/ready").status_code == 503
            scored = client.post("/v2/rerank", json=body)
            assert scored.status_code == 200, scored.text
            assert scored.headers["connection"] == "close"
        server.handle_exit(signal.SIGTERM, None)  # the drain is over
        thread.join(30)
        assert not thread.is_alive()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/healthz", timeout=5)
    finally:
        server.should_exit = True
        thread.join(30)


async def test_request_timeout_is_504(tiny_qwen3_path):
    """A request still unscored after REQUEST_TIMEOUT_SECONDS is answered 504 and withdrawn
    from the queue (the pod's grace period counts on this bound)."""
    settings = _settings(tiny_qwen3_path, request_timeout_seconds=1)
    async with _paused_engine(settings) as (state, client):
        late = await asyncio.wait_for(  # without the timeout it would wait forever
            client.post("/v2/rerank", json={"query": "q", "documents": ["a"]}), 60
        )
        assert late.status_code == 504, late.text
        assert "REQUEST_TIMEOUT_SECONDS" in late.json()["error"]["message"]
        assert state.engine.inflight_requests == 0
        state.engine.resume()
        ok = await client.post("/v2/rerank", json={"query": "q", "documents": ["a"]})
        assert ok.status_code == 200
