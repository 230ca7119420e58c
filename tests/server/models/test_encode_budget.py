"""The encode budget on both real backends: tokens are counted as they are produced, a request
far over max_request_tokens stops tokenizing soon after it passes the bound (not after all of
it), a cancelled request stops before its next chunk, and within the bound nothing changes."""

from __future__ import annotations

import pytest

from reranker_server.contracts import (
    EncodeBudget,
    EncodeCancelled,
    RerankInput,
    TooManyTokensError,
)
from reranker_server.models.truncation import ENCODE_CHUNK

LONG = " ".join(f"word{i % 50}" for i in range(300))


@pytest.fixture(params=["causal", "cross"])
def backend(request, causal_backend, cross_backend):
    return causal_backend if request.param == "causal" else cross_backend


def _request(n: int) -> RerankInput:
    return RerankInput(query="which word comes first", documents=[LONG] * n, max_tokens_per_doc=64)


def test_within_the_bound_the_encoding_is_unchanged(backend) -> None:
    inp = _request(10)
    plain = backend.encode(inp)
    budget = EncodeBudget(max_tokens=plain.prompt_tokens)
    assert backend.encode(inp, budget) == plain
    assert budget.spent == plain.prompt_tokens  # what was counted is what the request costs


def test_far_over_the_bound_tokenizing_stops_early(backend) -> None:
    inp = _request(20 * ENCODE_CHUNK)
    whole = backend.encode(inp).prompt_tokens  # what tokenizing all of it costs
    per_doc = whole // len(inp.documents)
    limit = 3 * per_doc
    budget = EncodeBudget(max_tokens=limit)
    with pytest.raises(TooManyTokensError) as raised:
        backend.encode(inp, budget)
    assert raised.value.limit == limit and raised.value.tokens > limit
    assert budget.spent <= limit + per_doc < whole / 100  # stopped right past the bound


def test_a_cancelled_request_stops_tokenizing(backend) -> None:
    budget = EncodeBudget()
    budget.cancel()
    with pytest.raises(EncodeCancelled):
        backend.encode(_request(3 * ENCODE_CHUNK), budget)
    assert budget.spent == 0
