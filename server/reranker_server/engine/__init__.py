"""The throughput engine: admission, micro-batching across requests, shared-prefix scoring."""

from __future__ import annotations

from reranker_server.contracts import ModelBackend
from reranker_server.engine.config import EngineConfig
from reranker_server.engine.scheduler import BatchingEngine, BatchRecord, EngineStoppedError


def build_engine(backend: ModelBackend, config: EngineConfig | None = None) -> BatchingEngine:
    """Create the engine (a `RerankEngine`) for `backend`; `await engine.start()` before use."""
    return BatchingEngine(backend, config or EngineConfig())


__all__ = ["BatchRecord", "BatchingEngine", "EngineConfig", "EngineStoppedError", "build_engine"]
