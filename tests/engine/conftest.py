"""Engine fixtures: real tiny backends (3-layer Qwen3 reranker, BERT cross-encoder)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def qwen3_3l_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3 reranker with 3 layers (the prefix-KV checks want >= 3)."""
    from reranker_devtools.tiny_models import build_qwen3_reranker

    return build_qwen3_reranker(tmp_path_factory.mktemp("engine-qwen3"), num_layers=3, seed=5)


@pytest.fixture(scope="session")
def causal_backend(qwen3_3l_path: Path):
    from reranker_server.models import LoadOptions, load_backend

    return load_backend(LoadOptions(model=str(qwen3_3l_path), device="cpu", dtype="float32"))


@pytest.fixture(scope="session")
def cross_backend(tiny_cross_encoder_path: Path):
    from reranker_server.models import LoadOptions, load_backend

    return load_backend(
        LoadOptions(model=str(tiny_cross_encoder_path), device="cpu", dtype="float32")
    )


async def _wait_for(predicate, *, what: str, max_iterations: int = 4000) -> None:
    """Yield to the loop until `predicate()` holds (bounded by iterations; no timing assertion)."""
    for _ in range(max_iterations):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
def wait_for():
    """`await wait_for(predicate, what=...)`: let worker threads and the loop make progress."""
    return _wait_for
