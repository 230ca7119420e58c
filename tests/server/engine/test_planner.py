"""Batch planning: limits, fairness, bucketing and prefix-group separation."""

from __future__ import annotations

import random

from reranker_server.contracts import EncodedRequest, PairTokens
from reranker_server.engine.planner import PendingRequest, plan_next_batch


def _req(rid: int, key: str | None, prefix_len: int, pair_lens: list[int]) -> PendingRequest:
    enc = EncodedRequest(
        prefix_ids=tuple(range(1, prefix_len + 1)),
        pairs=[PairTokens(input_ids=[7] * n) for n in pair_lens],
        prefix_key=key,
        prompt_tokens=sum(prefix_len + n for n in pair_lens),
    )
    return PendingRequest(rid=rid, encoded=enc, pending=list(range(len(pair_lens))))


def _plan(queue, **kw):
    args = {
        "max_batch_size": 32,
        "max_batch_tokens": 16384,
        "prefix_enabled": True,
        "prefix_min_pairs": 3,
        "window": 256,
    }
    args.update(kw)
    return plan_next_batch(queue, **args)


def _drain(queue, **kw):
    """Plan until empty, removing dispatched pairs like the engine does; returns the batches."""
    batches = []
    while (batch := _plan(queue, **kw)) is not None:
        for item in batch.items:
            item.request.pending.remove(item.index)
        batches.append(batch)
    return batches


def test_empty_queue_has_no_batch():
    assert _plan([]) is None
    assert _plan([_req(1, None, 0, [])]) is None


def test_limits_hold_and_every_pair_is_dispatched_once():
    rng = random.Random(0)
    queue = [
        _req(i, None, 0, [rng.randint(1, 300) for _ in range(rng.randint(1, 20))])
        for i in range(30)
    ]
    expected = {(r.rid, i) for r in queue for i in r.pending}
    batches = _drain(queue, max_batch_size=8, max_batch_tokens=1000)
    seen = [(it.request.rid, it.index) for b in batches for it in b.items]
    assert sorted(seen) == sorted(expected)
    for b in batches:
        lens = [len(it.request.encoded.pairs[it.index].input_ids) for it in b.items]
        assert len(lens) <= 8
        assert len(lens) * max(lens) <= 1000
        assert b.padded_tokens == len(lens) * max(lens)
        assert b.real_tokens == sum(lens)


def test_oldest_pair_is_always_in_the_next_batch():
    queue = [_req(1, None, 0, [50]), _req(2, None, 0, [1] * 40)]
    batch = _plan(queue, max_batch_size=4)
    assert (1, 0) in [(it.request.rid, it.index) for it in batch.items]


def test_length_sorting_groups_similar_lengths():
    queue = [_req(1, None, 0, [10, 100, 12, 98])]
    first = _plan(queue, max_batch_size=2)
    assert sorted(len(it.request.encoded.pairs[it.index].input_ids) for it in first.items) == [
        10,
        12,
    ]


def test_a_pair_over_the_token_budget_still_runs_alone():
    queue = [_req(1, None, 0, [500, 3])]
    batches = _drain(queue, max_batch_tokens=100)
    assert sorted(len(b.items) for b in batches) == [1, 1]


def test_prefix_groups_never_mix_keys():
    queue = [
        _req(1, "instr-A", 40, [5, 6, 7]),
        _req(2, "instr-B", 40, [5, 6, 7, 8]),
        _req(3, "instr-A", 40, [9, 4]),
    ]
    batches = _drain(queue)
    prefix_batches = [b for b in batches if b.kind == "prefix"]
    assert len(prefix_batches) == 2
    for b in prefix_batches:
        assert {it.request.encoded.prefix_key for it in b.items} == {b.prefix_key}
    by_key = {b.prefix_key: sorted(it.request.rid for it in b.items) for b in prefix_batches}
    assert by_key == {"instr-A": [1, 1, 1, 3, 3], "instr-B": [2, 2, 2, 2]}
    a = next(b for b in prefix_batches if b.prefix_key == "instr-A")
    assert a.padded_tokens == 40 + 5 * 9 and a.real_tokens == 40 + (5 + 6 + 7 + 9 + 4)


def test_small_groups_go_to_the_full_path_and_pack_across_requests():
    queue = [_req(1, "q1", 30, [5, 6]), _req(2, "q2", 30, [7]), _req(3, "q3", 30, [8, 9])]
    batches = _drain(queue)
    assert [b.kind for b in batches] == ["full"]
    assert sorted(it.request.rid for it in batches[0].items) == [1, 1, 2, 3, 3]
    whole = [it.request.prefix_len + it.request.pair_len(it.index) for it in batches[0].items]
    assert whole == [35, 36, 37, 38, 39]  # length-sorted
    assert batches[0].forwards == [[0, 1, 2, 3, 4]]  # a full batch is one forward


def test_the_prefix_path_plans_its_sub_batch_forwards():
    """The chunk's continuations are cut as split_by_length cuts them (brute-force-checked in
    test_sub_batches); every pair is in exactly one planned forward."""
    from reranker_server.engine.sub_batches import split_by_length

    lens = [40, 3, 41, 5, 4, 39, 6, 42]
    [batch] = _drain([_req(1, "k", 50, lens)], overhead_tokens=16)
    assert batch.kind == "prefix"
    seq = [it.request.pair_len(it.index) for it in batch.items]
    assert batch.forwards == split_by_length(seq, overhead_tokens=16)
    assert len(batch.forwards) == 2  # the short ones and the long ones apart
    assert sorted(i for f in batch.forwards for i in f) == list(range(len(lens)))
    assert batch.padded_tokens == 50 + sum(len(f) * max(seq[i] for i in f) for f in batch.forwards)


def test_packed_continuations_make_the_chunk_one_forward():
    """Where the backend runs continuations unpadded, splitting only adds forwards: the chunk is
    one forward, length-sorted, and nothing is counted as padding."""
    lens = [40, 3, 41, 5, 4, 39, 6, 42]
    [batch] = _drain([_req(1, "k", 50, lens)], overhead_tokens=16, packed_continuations=True)
    assert batch.kind == "prefix"
    seq = [it.request.pair_len(it.index) for it in batch.items]
    assert len(batch.forwards) == 1
    assert [seq[i] for i in batch.forwards[0]] == sorted(lens)
    assert batch.padded_tokens == batch.real_tokens == 50 + sum(lens)


def test_prefix_disabled_uses_the_full_path_only():
    queue = [_req(1, "k", 30, [5, 6, 7, 8])]
    assert {b.kind for b in _drain(queue, prefix_enabled=False)} == {"full"}


def test_prefix_budget_bounds_the_key_value_footprint():
    """On the prefix path B x (P + longest) <= max_batch_tokens; the prefix is computed once."""
    queue = [_req(1, "k", 100, [10] * 10)]
    batches = _drain(queue, max_batch_tokens=4 * (100 + 10))
    assert [len(b.items) for b in batches] == [4, 4, 2]  # the lone 2-pair tail keeps the prefix
    assert all(b.kind == "prefix" for b in batches)
    assert [b.padded_tokens for b in batches] == [140, 140, 120]  # P + B x longest
    assert [b.real_tokens for b in batches] == [140, 140, 120]


def test_single_pair_requests_use_the_full_path_even_alone():
    assert _plan([_req(1, "k", 30, [5])]).kind == "full"


def test_an_unpadded_backend_gets_the_oldest_pairs_in_arrival_order():
    """The front of vLLM pads nothing: length sorting would spread each request over batches
    shared with every other request of the window, so all of them finish late. Batches follow
    arrival then input order, bounded by size and by the sum of tokens (not batch x longest)."""
    lens_a, lens_b, lens_c = [90, 5, 60, 7], [3, 80, 4], [50, 6]
    queue = [_req(1, None, 0, lens_a), _req(2, None, 0, lens_b), _req(3, None, 0, lens_c)]
    batches = _drain(queue, prefix_enabled=False, unpadded=True, max_batch_size=4)
    order = [(it.request.rid, it.index) for b in batches for it in b.items]
    assert order == [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1), (2, 2), (3, 0), (3, 1)]
    assert [len(b.items) for b in batches] == [4, 4, 1]  # the first request is one batch
    assert all(b.padded_tokens == b.real_tokens for b in batches)
    # the token bound is on the sum: 90 + 5 + 60 > 150, so the first batch stops at two pairs
    queue = [_req(1, None, 0, lens_a)]
    budgeted = _drain(queue, prefix_enabled=False, unpadded=True, max_batch_tokens=150)
    assert [[it.index for it in b.items] for b in budgeted] == [[0, 1], [2, 3]]
    # a pair over the budget still runs, alone
    alone = {"prefix_enabled": False, "unpadded": True, "max_batch_tokens": 100}
    over = _drain([_req(1, None, 0, [400, 5])], **alone)
    assert [[it.index for it in b.items] for b in over] == [[0], [1]]
    # padded backends still sort by length (the same queue, without the flag)
    sorted_batches = _drain(
        [_req(1, None, 0, lens_a), _req(2, None, 0, lens_b)], prefix_enabled=False, max_batch_size=4
    )
    assert [it.request.rid for it in sorted_batches[0].items] != [1, 1, 1, 1]
