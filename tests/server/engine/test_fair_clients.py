"""The engine shares the model fairly between clients: a small request of one client is not
scored after every pair of another client's large backlog, while one client's requests keep
arrival order (and with no client named, the engine is first come, first served)."""

from __future__ import annotations

import asyncio

from queued_requests import queue_while_paused

from reranker_server.contracts import RerankInput
from reranker_server.engine import EngineConfig, build_engine
from reranker_server.engine.scheduler import BatchRecord

BIG = [f"document number {i} about rivers and mountains" for i in range(64)]


async def _records(backend, requests: list[RerankInput], wait_for) -> list[BatchRecord]:
    """The batches the engine ran for `requests` queued (in this order, one encode thread)
    while it was paused, 8 pairs a batch at most."""
    engine = build_engine(
        backend, EngineConfig(max_batch_size=8, encode_workers=1, model_workers=1)
    )
    await engine.start()
    records: list[BatchRecord] = []
    engine.add_batch_listener(records.append)
    engine.pause()
    try:
        tasks = await queue_while_paused(engine, requests, wait_for)
        engine.resume()
        await asyncio.gather(*tasks)
    finally:
        await engine.stop()
    return records


async def _order_of_service(backend, requests: list[RerankInput], wait_for) -> list[int]:
    """Engine request ids in the order their first pair was dispatched."""
    first: list[int] = []
    for record in await _records(backend, requests, wait_for):
        for rid in record.request_ids:
            if rid not in first:
                first.append(rid)
    return first


def _requests(client_a, client_b) -> list[RerankInput]:
    return [
        RerankInput(query="which river", documents=BIG, client=client_a),  # 8 batches' worth
        RerankInput(query="which river", documents=BIG, client=client_a),
        RerankInput(query="a small question", documents=BIG[:2], client=client_b),
    ]


async def test_a_small_request_does_not_wait_behind_another_clients_backlog(
    cross_backend, wait_for
) -> None:
    order = await _order_of_service(cross_backend, _requests("a", "b"), wait_for)
    assert order.index(3) < order.index(2), order  # b's request before a's second one


async def test_one_client_is_served_in_arrival_order(cross_backend, wait_for) -> None:
    assert await _order_of_service(cross_backend, _requests(None, None), wait_for) == [1, 2, 3]
    assert await _order_of_service(cross_backend, _requests("a", "a"), wait_for) == [1, 2, 3]


class _Unpadded:
    """A backend that declares it pads nothing (as the front of vLLM does), else `inner`."""

    pads_batches = False

    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


async def _batches(backend, wait_for) -> list[list[int]]:
    """The request ids of each batch's pairs, for three 8-document requests whose documents
    alternate short and long."""
    short, long = "a river", " ".join(["a long passage about rivers and mountains"] * 6)
    docs = [short if i % 2 else long for i in range(8)]
    requests = [RerankInput(query=f"which river {i}", documents=docs) for i in range(3)]
    return [list(r.request_ids) for r in await _records(backend, requests, wait_for)]


async def test_a_backend_that_pads_nothing_gets_whole_requests_in_arrival_order(
    cross_backend, wait_for
) -> None:
    """Length sorting pays only where batches are padded; for a backend without padding (vLLM
    behind the front) it would spread each request over batches shared with the others, so
    that all finish late. Such a backend gets each request's pairs together, oldest first."""
    assert await _batches(_Unpadded(cross_backend), wait_for) == [[1] * 8, [2] * 8, [3] * 8]
    sorted_batches = await _batches(cross_backend, wait_for)  # padded: by length, mixed
    assert any(len(set(ids)) > 1 for ids in sorted_batches), sorted_batches
