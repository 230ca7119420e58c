"""Probe, info and metrics routes (never behind the API key; /info shows its settings only to
a caller with credentials when they are required)."""

from __future__ import annotations

import asyncio
import html
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from reranker_contract import PLAYGROUND_PATH
from reranker_contract.score_check import SCORE_CHECK_PATH
from reranker_server import __version__, device_memory, metrics  # noqa: F401 - registers the series
from reranker_server.api.errors import APIError
from reranker_server.api.service import get_state

router = APIRouter()

ENDPOINTS = [
    "POST /v1/rerank",
    "POST /v2/rerank",
    "POST /rerank",
    "POST /v1/rank",
    "GET /health",
    "GET /healthz",
    "GET /ready",
    f"GET {SCORE_CHECK_PATH}",
    "GET /info",
    "GET /metrics",
    "GET /docs",
    "GET /playground",
]


def _gpu_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when the model is loaded; 503 while loading, after a load failure or while draining."""
    state = get_state(request)
    if state.load_error:
        status = "error"
    elif not state.model_loaded:
        status = "loading"
    elif state.draining:
        status = "draining"
    else:
        status = "ok"
    body: dict[str, Any] = {
        "status": status,
        "model_loaded": state.model_loaded,
        "gpu_available": _gpu_available(),
    }
    if state.load_error:
        body["error"] = state.load_error
    return JSONResponse(body, status_code=200 if status == "ok" else 503)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "alive"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Readiness: model loaded, score check passed (or off), not draining and, in front of vLLM,
    vLLM answering its /health (503 otherwise);
    `score_check` says the check's state, the check that failed and why."""
    state = get_state(request)
    ok = state.ready
    body: dict[str, Any] = {
        "ready": ok,
        "model_loaded": state.model_loaded,
        "draining": state.draining,
        "score_check": state.score_check.summary(),
    }
    engine_answers = getattr(state.backend, "engine_answers", None)
    if ok and engine_answers is not None:  # the front of vLLM: ready only while vLLM answers
        body["engine_answers"] = ok = await asyncio.to_thread(engine_answers)
        body["ready"] = ok
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get(SCORE_CHECK_PATH)
async def score_check(request: Request) -> dict[str, Any]:
    """The score check's full report: every check, every probe's scores, parity with the
    operator's record (`reranker_contract.score_check`). Never behind the API key: it shows
    only the built-in and the resource's own probes."""
    return get_state(request).score_check.as_json()


@router.get("/")
async def root(request: Request) -> Any:
    """Identity and routes as JSON; a browser (Accept: text/html) gets the same as links."""
    state = get_state(request)
    playground = PLAYGROUND_PATH if state.settings.playground else None
    if "text/html" in request.headers.get("accept", ""):
        links = [(playground, "Playground: try the reranker in the browser")] if playground else []
        links += [
            ("/docs", "API reference (OpenAPI)"),
            ("/info", "Model and settings"),
            ("/metrics", "Prometheus metrics"),
        ]
        items = "".join(f'<li><a href="{href[1:]}">{text}</a></li>' for href, text in links)
        name = html.escape(state.served_name)
        return HTMLResponse(
            f"<!doctype html><html lang=en><meta charset=utf-8><title>reranker-server</title>"
            f"<h1>reranker-server {__version__}</h1><p>Model <b>{name}</b></p><ul>{items}</ul>"
        )
    return {
        "name": "reranker-server",
        "version": __version__,
        "model": state.served_name,
        "endpoints": ENDPOINTS,
        "playground": playground,
    }


@router.get("/info")
async def info(request: Request) -> dict[str, Any]:
    """Model, family, dtype, device, max length, request limits, the shortcuts in force (with
    the reason where one is off), and every setting the server started with (`settings`, by
    field name; the API key is never shown). When credentials are required, a request without
    an Authorization header gets only model, loaded, version and auth_required; one with a
    header is identified like a scoring request (401, back-off) before it gets the rest."""
    state = get_state(request)
    if state.access.authenticator.required:
        if "authorization" not in request.headers:
            return {
                "model": state.served_name,
                "loaded": state.model_loaded,
                "version": __version__,
                "auth_required": True,
            }
        state.access.identify(request)
    s = state.settings
    backend = state.backend
    return {
        "model": state.served_name,
        "model_id": s.model,
        "revision": s.revision,
        "loaded": state.model_loaded,
        "family": getattr(backend, "family", None),
        "dtype": getattr(backend, "dtype", None),
        "dtype_reason": getattr(backend, "dtype_reason", None),
        "device": getattr(backend, "device", None),
        "device_memory": device_memory.current(getattr(backend, "device", None)).as_json(),
        "max_length": getattr(backend, "max_length", None),
        "prefix_cache": bool(state.engine is not None and state.engine.prefix_enabled),
        "shortcuts": {
            cut.name: {"in_force": cut.in_force, "reason": cut.reason}
            for cut in (backend.shortcuts() if backend is not None else ())
        },
        "default_instruction": getattr(backend, "default_instruction", None),
        "limits": {
            "max_client_batch_size": s.max_client_batch_size,
            "max_batch_size": s.batch_size,
            "max_batch_tokens": s.max_batch_tokens,
            "max_concurrent_requests": s.max_concurrent_requests,
            "score_cache_size": s.score_cache_size,
        },
        "auth_required": state.access.authenticator.required,
        "auth": {
            "api_keys": state.access.authenticator.keys.enabled,
            "jwt": state.access.authenticator.tokens is not None,
            "rate_limits": {
                "requests_per_minute": s.rate_limit_requests_per_minute,
                "pairs_per_minute": s.rate_limit_pairs_per_minute,
                "tokens_per_minute": s.rate_limit_tokens_per_minute,
            },
        },
        "settings": s.public(),
        "score_check": state.score_check.summary(),
        "engine": {
            "model_workers": getattr(state.engine, "model_workers", None),
            "torch_threads": getattr(state.engine, "torch_threads", None),
            # the front of vLLM: which engine scores, where, its version and model
            **getattr(backend, "engine_info", {}),
        },
        "version": __version__,
    }


@router.get("/metrics")
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text format of the default registry (server + engine series); 404 when
    METRICS_PORT moves it to a port of its own."""
    port = get_state(request).settings.metrics_port
    if port:
        raise APIError(404, f"metrics are served on port {port} (METRICS_PORT)", type="not_found")
    # off the event loop: the front's relay reads vLLM's /metrics over HTTP (engine_metrics)
    text = await asyncio.to_thread(generate_latest, REGISTRY)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
