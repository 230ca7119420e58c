"""Large requests tokenize on a low-priority thread of their own; small ones never go there,
and where a request tokenizes does not change its scores."""

from __future__ import annotations

import os
import threading

import pytest

from reranker_server.contracts import RerankInput
from reranker_server.engine import EngineConfig, build_engine
from reranker_server.engine.bulk import BULK_NICE, request_chars

SMALL = RerankInput(query="which river", documents=["the Seine", "the Rhine", "a mountain"])
LARGE = RerankInput(
    query="which river", documents=[f"river {i} " * 40 + "flows to the sea" for i in range(40)]
)


def _bulk_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("reranker-encode-bulk")]


async def _scores(backend, inp: RerankInput, **cfg) -> tuple[list[float], list[int | None]]:
    """(raw scores, nice values of the bulk threads alive while the engine ran)."""
    engine = build_engine(backend, EngineConfig(**cfg))
    await engine.start()
    try:
        raw = (await engine.rerank(inp)).raw_scores
        nices = [os.getpriority(os.PRIO_PROCESS, t.native_id) for t in _bulk_threads()]
        return raw, nices
    finally:
        await engine.stop()


def test_the_size_counts_every_text() -> None:
    inp = RerankInput(query="abc", documents=["de", "fgh"], instruction="ij")
    assert request_chars(inp) == 3 + 2 + 2 + 3


@pytest.mark.parametrize("which", ["cross_backend", "causal_backend"])
async def test_a_large_request_tokenizes_on_the_low_priority_thread(which, request) -> None:
    backend = request.getfixturevalue(which)
    limit = request_chars(SMALL) + 1
    assert request_chars(LARGE) > limit
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    _, nices = await _scores(backend, SMALL, bulk_tokenize_chars=limit)
    assert nices == []  # created on first use: a small request never reached the bulk pool
    bulk_raw, nices = await _scores(backend, LARGE, bulk_tokenize_chars=limit)
    assert nices == [min(19, base + BULK_NICE)]
    plain_raw, nices = await _scores(backend, LARGE, bulk_tokenize_chars=0)
    assert nices == []
    assert bulk_raw == plain_raw  # the same encoding, only another thread


def test_the_knob_is_validated() -> None:
    with pytest.raises(ValueError, match="bulk_tokenize_chars"):
        EngineConfig(bulk_tokenize_chars=-1)
