"""The engine shares the model fairly between clients: a small request of one client is not
scored after every pair of another client's large backlog, while one client's requests keep
arrival order (and with no client named, the engine is first come, first served)."""

from __future__ import annotations

import asyncio
import threading
import time

from queued_requests import queue_while_paused

from reranker_server.contracts import RerankInput
from reranker_server.engine import EngineConfig, build_engine
from reranker_server.engine.scheduler import BatchRecord

BIG = [f"document number {i} about rivers and mountains" for i in range(64)]


async def _records(backend, requests: list[RerankInput], wait_for, **config) -> list[BatchRecord]:
    """The batches the engine ran for `requests` queued (in this order, one encode thread)
    while it was paused, 8 pairs a batch at most (and `config`'s other settings)."""
    settings = {"max_batch_size": 8, "encode_workers": 1, "model_workers": 1, **config}
    engine = build_engine(backend, EngineConfig(**settings))
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


async def _order_of_service(backend, requests: list[RerankInput], wait_for, **config) -> list[int]:
    """Engine request ids in the order their first pair was dispatched."""
    first: list[int] = []
    for record in await _records(backend, requests, wait_for, **config):
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


class _Padded(_Unpadded):
    """A backend that declares it pads its batches (the cross-encoder on a GPU, or wherever its
    pairs do not run packed)."""

    pads_batches = True


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
    sorted_batches = await _batches(_Padded(cross_backend), wait_for)  # by length, mixed
    assert any(len(set(ids)) > 1 for ids in sorted_batches), sorted_batches


# BIG is ~900 tokens of pairs: more than one forward holds at this budget, while each 8-pair
# batch fits; BIG[:2] is small
ONE_FORWARD = {"max_batch_tokens": 512}


async def test_a_large_request_yields_to_the_small_ones_after_it(cross_backend, wait_for) -> None:
    """One client: a request that needs several forwards anyway lets a small one that came
    after it go first, until it has waited its patience; then arrival order holds."""
    requests = [
        RerankInput(query="which river", documents=BIG),
        RerankInput(query="a small question", documents=BIG[:2]),
    ]
    assert await _order_of_service(cross_backend, requests, wait_for, **ONE_FORWARD) == [2, 1]
    patient = {**ONE_FORWARD, "large_request_patience_s": 0.0}
    assert await _order_of_service(cross_backend, requests, wait_for, **patient) == [1, 2]


class _Overlap:
    """`inner`, whose forwards each take 50 ms more and record how many of `pairs` pairs ran
    at once."""

    def __init__(self, inner, pairs: int) -> None:
        self._inner, self._pairs = inner, pairs
        self._lock = threading.Lock()
        self.running = self.most = 0

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def _timed(self, forward, prefixes, pairs, *rest):
        counted = len(pairs) == self._pairs
        with self._lock:
            self.running += counted
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)
            return forward(prefixes, pairs, *rest)
        finally:
            with self._lock:
                self.running -= counted

    def score(self, *args):
        return self._timed(self._inner.score, *args)

    def score_mixed(self, *args):
        return self._timed(self._inner.score_mixed, *args)


async def test_large_requests_leave_a_model_worker_while_small_ones_arrive(
    cross_backend, wait_for
) -> None:
    """With two model workers and a small request lately, large requests' batches (8 pairs)
    run one at a time: the other worker stays free for the next small request. With no small
    request lately, large requests alone use both workers."""
    large = [RerankInput(query=f"which river {i}", documents=BIG) for i in range(2)]
    small = [RerankInput(query="a small question", documents=BIG[:2])]
    for requests, most in ((small + large, 1), (large, 2)):
        backend = _Overlap(cross_backend, pairs=8)
        await _records(backend, requests, wait_for, model_workers=2, **ONE_FORWARD)
        assert backend.most == most, (len(requests), backend.most)


async def test_a_large_requests_batches_are_cut_small_while_small_requests_arrive(
    cross_backend, wait_for
) -> None:
    """While a small request arrived lately, each batch of a large request holds at most
    `large_slice_tokens` (so it ends soon, and stops soon once its client leaves); with none,
    the large request's batches are whole (`max_batch_tokens`)."""
    small = RerankInput(query="a small question", documents=BIG[:2])
    large = RerankInput(query="which river", documents=BIG)
    slice_tokens = 64
    config = {**ONE_FORWARD, "large_slice_tokens": slice_tokens}
    sliced = await _records(cross_backend, [small, large], wait_for, **config)
    whole = await _records(cross_backend, [large], wait_for, **config)

    def batches_of(records: list[BatchRecord], rid: int) -> list[BatchRecord]:
        return [record for record in records if rid in record.request_ids]

    for record in batches_of(sliced, 2):
        assert record.report is not None
        computed = sum(forward.padded_tokens for forward in record.report.forwards)
        assert len(record.request_ids) == 1 or computed <= slice_tokens, computed
    assert max(len(r.request_ids) for r in batches_of(sliced, 2)) < 8
    assert max(len(r.request_ids) for r in batches_of(whole, 1)) == 8  # max_batch_size
