"""The client's tokens allowance (`RerankInput.charge_tokens`): charged once a request is
tokenized, before it is queued; a request whose client leaves while it is tokenized is charged
what was tokenized, without refusal (the work is done), the chunk its thread was in included."""

from __future__ import annotations

import asyncio
import threading

import pytest

from reranker_server.contracts import RerankInput, TooManyTokensError
from reranker_server.engine import EngineConfig, build_engine
from reranker_server.models.truncation import ENCODE_CHUNK

DOCS = [f"river {i} " * 20 + "flows to the sea" for i in range(12)]


class _HeldAfterTokenizing:
    """The real backend; `encode` tokenizes for real, then holds its thread until released (as
    a long tokenization would), then stops at the budget's next check like the real one."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.tokenized, self.release = threading.Event(), threading.Event()

    def __getattr__(self, name: str):
        return getattr(self._backend, name)

    def encode(self, inp, budget=None):
        encoded = self._backend.encode(inp, budget)
        self.tokenized.set()
        self.release.wait(10)
        if budget is not None:
            budget.check()
        return encoded


class _Charges:
    """A `TokenCharge` that records its calls (tokens, refusable); `made` once one came, from
    whichever thread made it."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []
        self.made = threading.Event()

    def __call__(self, tokens: int, *, refusable: bool = True) -> None:
        self.calls.append((tokens, refusable))
        self.made.set()


async def test_a_request_is_charged_its_tokens_and_a_client_that_leaves_what_was_tokenized(
    causal_backend,
) -> None:
    charges = _Charges()
    inp = RerankInput(query="which river", documents=DOCS, charge_tokens=charges)
    held = _HeldAfterTokenizing(causal_backend)
    engine = build_engine(held, EngineConfig())
    await engine.start()
    try:
        held.release.set()
        out = await engine.rerank(inp)
        assert charges.calls == [(out.prompt_tokens, True)]  # what the response reports it computed
        held.release.clear()
        held.tokenized.clear()
        charges = _Charges()
        inp = RerankInput(query="which river", documents=DOCS, charge_tokens=charges)
        task = asyncio.create_task(engine.rerank(inp))
        assert await asyncio.to_thread(held.tokenized.wait, 10)
        task.cancel()
        await asyncio.sleep(0)
        held.release.set()
        assert await asyncio.to_thread(charges.made.wait, 10)  # once its thread stopped
        assert charges.calls == [(out.prompt_tokens, False)]
        assert engine.pending_pairs == 0  # nothing of it was queued
    finally:
        await engine.stop()


async def test_a_client_leaving_mid_chunk_is_charged_the_chunk_its_thread_finished(
    causal_backend, monkeypatch
) -> None:
    """The client leaves while the tokenizer is inside the first of two chunks of documents: the
    thread finishes that chunk (and counts it) before it sees the cancellation, so the charge
    waits for it: the first chunk's tokens, not the zero counted when the client left."""
    docs = [f"river {i} " * 20 + "flows to the sea" for i in range(ENCODE_CHUNK + 8)]
    engine = build_engine(causal_backend, EngineConfig())
    await engine.start()
    try:
        # what the first chunk costs, computed by scoring its documents alone
        first = await engine.rerank(RerankInput(query="which river", documents=docs[:ENCODE_CHUNK]))
        tokenize = causal_backend._tokenize
        in_chunk, release = threading.Event(), threading.Event()

        def held(texts: list[str]) -> list[list[int]]:
            ids = tokenize(texts)
            if len(texts) == ENCODE_CHUNK:  # the first chunk of documents, tokenized for real
                in_chunk.set()
                release.wait(10)
            return ids

        monkeypatch.setattr(causal_backend, "_tokenize", held)
        charges = _Charges()
        inp = RerankInput(query="which river", documents=docs, charge_tokens=charges)
        task = asyncio.create_task(engine.rerank(inp))
        assert await asyncio.to_thread(in_chunk.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert charges.calls == []  # its thread is still in the chunk
        release.set()
        assert await asyncio.to_thread(charges.made.wait, 10)
        assert charges.calls == [(first.prompt_tokens, False)]
        assert engine.pending_pairs == 0
    finally:
        await engine.stop()


async def test_a_refusing_charge_refuses_the_request_before_it_is_queued(causal_backend) -> None:
    class Spent(Exception):
        pass

    def charge(tokens: int, *, refusable: bool = True) -> None:
        raise Spent(tokens)

    engine = build_engine(causal_backend, EngineConfig())
    await engine.start()
    try:
        try:
            await engine.rerank(RerankInput(query="q", documents=DOCS, charge_tokens=charge))
        except Spent:
            pass
        else:
            raise AssertionError("the charge's refusal did not reach the caller")
        assert engine.pending_pairs == 0 and engine.queued_tokens == 0
        plain = await engine.rerank(RerankInput(query="q", documents=DOCS))  # no allowance
        assert len(plain.raw_scores) == len(DOCS)
    finally:
        await engine.stop()


async def test_a_request_over_max_request_tokens_is_charged_what_was_tokenized(
    causal_backend,
) -> None:
    """Refused once tokenizing passed `max_request_tokens` (413): charged the tokens counted
    when tokenizing stopped, since they were tokenized (sending requests bound to be refused
    must not make tokenizing free). One refused by its words alone, before any document is
    tokenized, costs nothing and is charged nothing."""
    engine = build_engine(causal_backend, EngineConfig(max_request_tokens=1000))
    await engine.start()
    try:
        # two words (a floor of 12 x 76 tokens with the prompt's 74) but ~94 tokens each: they
        # pass the word floor, are tokenized, and stop past the bound
        digits = ["1234567890 9876543210"] * 12
        charges = _Charges()
        inp = RerankInput(query="which number", documents=digits, charge_tokens=charges)
        with pytest.raises(TooManyTokensError) as refused:
            await engine.rerank(inp)
        assert refused.value.tokens > 1000
        assert charges.calls == [(refused.value.tokens, False)]
        charges = _Charges()
        wordy = ["river flows to the sea " * 30] * 12  # its words alone pass the bound
        inp = RerankInput(query="which river", documents=wordy, charge_tokens=charges)
        with pytest.raises(TooManyTokensError):
            await engine.rerank(inp)
        assert charges.calls == []
        assert engine.pending_pairs == 0 and engine.queued_tokens == 0
    finally:
        await engine.stop()
