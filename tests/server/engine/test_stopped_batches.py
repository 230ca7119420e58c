"""A running batch whose requests were all cancelled stops at the next layer boundary instead
of running to the end; a batch that another request still waits for runs on untouched."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch
from prometheus_client import REGISTRY
from queued_requests import queue_while_paused

from reranker_server.contracts import (
    ForwardCancelled,
    ForwardStop,
    RerankInput,
    stoppable_forwards,
)
from reranker_server.engine import EngineConfig, build_engine
from reranker_server.engine.scheduler import BatchRecord
from reranker_server.models import cancel_points

DOCS = [f"document {i} about rivers, mountains and the sea" for i in range(12)]


def _stopped() -> float:
    return REGISTRY.get_sample_value("reranker_batches_stopped_total") or 0.0


def _model(backend) -> torch.nn.Module:
    return backend.model if hasattr(backend, "model") else backend.base


class _Gate:
    """Holds the first forward at the first layer (after its checkpoint) until released."""

    def __init__(self, backend) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        first = cancel_points.layer_stacks(_model(backend))[0][0]
        # inside the first layer, past its checkpoint: a decoder's output projection or an
        # encoder's attention output, which the packed paths (models.packed_decoder and
        # packed_encoder: the layers' math, not their forwards) call too
        attn = getattr(first, "self_attn", None)
        held = attn.o_proj if attn is not None else first.attention.output
        self._handle = held.register_forward_pre_hook(self._hold)

    def _hold(self, _module, _args) -> None:
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(30)

    def close(self) -> None:
        self.release.set()
        self._handle.remove()


@pytest.mark.parametrize("which", ["cross_backend", "causal_backend"])
def test_every_layer_of_both_families_is_a_checkpoint(which, request) -> None:
    backend = request.getfixturevalue(which)
    model = _model(backend)
    assert backend.cancel_points == model.config.num_hidden_layers
    pairs = backend.encode(RerankInput(query="q", documents=["a river"])).pairs
    stop = ForwardStop()
    stop.stop()
    with stoppable_forwards(stop), pytest.raises(ForwardCancelled):
        backend.score_mixed([()], pairs)
    with stoppable_forwards(ForwardStop()):  # not stopped: scores as outside any scope
        inside = backend.score_mixed([()], pairs).raw_scores
    assert inside == backend.score_mixed([()], pairs).raw_scores


async def _run(backend, wait_for, *, cancel: int, requests: list[RerankInput]):
    """Start `requests` (one batch), cancel request number `cancel` while the batch is held at
    its first layer, release it; (results or exceptions, the batch records)."""
    engine = build_engine(
        backend, EngineConfig(max_batch_size=64, model_workers=1, encode_workers=1)
    )
    await engine.start()
    records: list[BatchRecord] = []
    engine.add_batch_listener(records.append)
    gate = _Gate(backend)
    try:
        engine.pause()
        tasks = await queue_while_paused(engine, requests, wait_for)
        engine.resume()
        assert await asyncio.to_thread(gate.entered.wait, 30), "the batch never started"
        tasks[cancel].cancel()
        await asyncio.sleep(0)  # the cancellation reaches the engine
        gate.release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        after = await engine.rerank(requests[0])  # the engine goes on serving
    finally:
        gate.close()
        await engine.stop()
    return results, records, after


@pytest.mark.parametrize("which", ["cross_backend", "causal_backend"])
async def test_a_batch_nobody_waits_for_stops_at_the_next_layer(which, request, wait_for) -> None:
    backend = request.getfixturevalue(which)
    before = _stopped()
    inp = RerankInput(query="which river", documents=DOCS)
    results, records, after = await _run(backend, wait_for, cancel=0, requests=[inp])
    assert isinstance(results[0], asyncio.CancelledError)
    assert _stopped() == before + 1
    assert records[0].report is None  # stopped: the backend reported no forward
    assert len(after.raw_scores) == len(DOCS)


async def test_a_batch_another_request_waits_for_runs_to_the_end(cross_backend, wait_for) -> None:
    before = _stopped()
    leaving = RerankInput(query="which river", documents=DOCS, client="a")
    staying = RerankInput(query="which mountain", documents=DOCS[:4], client="b")
    results, records, _ = await _run(cross_backend, wait_for, cancel=0, requests=[leaving, staying])
    assert isinstance(results[0], asyncio.CancelledError)
    assert _stopped() == before
    assert records[0].report is not None and set(records[0].request_ids) == {1, 2}
    alone = await _alone(cross_backend, staying)
    assert results[1].raw_scores == pytest.approx(alone, abs=1e-5)


async def _alone(backend, inp: RerankInput) -> list[float]:
    engine = build_engine(backend, EngineConfig(model_workers=1))
    await engine.start()
    try:
        return (await engine.rerank(inp)).raw_scores
    finally:
        await engine.stop()
