"""The batching engine on real tiny backends: correctness, grouping, admission, failures."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
import torch
from prometheus_client import REGISTRY
from queued_requests import queue_while_paused

from reranker_server.contracts import QueueFullError, RerankInput
from reranker_server.engine import EngineConfig, build_engine
from reranker_server.engine.scheduler import BatchRecord, EngineStoppedError
from tolerance import Kind, Mode, assert_scores_close

DOCS = [
    "Paris is the capital of France.",
    "The quick brown fox jumps over the lazy dog and then runs to the river near the mountain.",
    "Berlin",
    (
        "Kubernetes operator pods run in a cluster; the server reads metrics and health from each "
        "pod, then the cache keeps the prefix of every request for the next batch of tokens."
    ),
    "apple banana",
    "London is a city in England with one river and many people.",
    "yes",
]


@pytest.fixture(scope="module")
def causal_reference(qwen3_3l_path: Path):
    """Independent scorer: the full CausalLM, one whole unpadded sequence at a time."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(qwen3_3l_path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(qwen3_3l_path)
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")

    def score(prefix, pair_ids) -> float:
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([list(prefix) + list(pair_ids)])).logits[0, -1]
        return float(logits[yes] - logits[no])

    return score


def _expected(backend, reference, inp: RerankInput) -> list[float]:
    enc = backend.encode(inp)
    return [reference(enc.prefix_ids, p.input_ids) for p in enc.pairs]


def _close(
    got: list[float], want: list[float], backend, kind: Kind = "logit", mode: Mode = "cross_impl"
) -> None:
    """Within the float32 tolerance of `backend`'s model (tests/tolerance.py)."""
    model = backend.model if hasattr(backend, "model") else backend.base
    assert_scores_close(got, want, model, kind, mode)


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_scores_match_an_independent_forward_in_input_order(
    causal_backend, causal_reference, engine_factory
):
    engine = await engine_factory(causal_backend)
    inp = RerankInput(query="what is the capital of France?", documents=DOCS)
    out = await engine.rerank(inp)
    want = _expected(causal_backend, causal_reference, inp)
    _close(out.raw_scores, want, causal_backend)
    assert len({round(x, 3) for x in want}) == len(want)  # distinct: order is observable
    _close(out.scores, [1 / (1 + math.exp(-x)) for x in want], causal_backend, "probability")
    enc = causal_backend.encode(inp)
    assert out.prompt_tokens == enc.prompt_tokens


async def test_shared_prefix_equals_full_recompute(causal_backend, engine_factory):
    prefix_engine = await engine_factory(causal_backend, prefix_cache=True)
    full_engine = await engine_factory(causal_backend, prefix_cache=False)
    kinds: list[str] = []
    prefix_engine.add_batch_listener(lambda rec: kinds.append(rec.kind))
    full_kinds: list[str] = []
    full_engine.add_batch_listener(lambda rec: full_kinds.append(rec.kind))
    inp = RerankInput(query="which city is a capital?", documents=DOCS, instruction="Find cities")
    a = await prefix_engine.rerank(inp)
    b = await full_engine.rerank(inp)
    assert set(kinds) == {"prefix"} and set(full_kinds) == {"full"}
    _close(a.raw_scores, b.raw_scores, causal_backend)  # another attention path: cross_impl


async def test_concurrent_requests_batched_equal_each_alone(
    causal_backend, causal_reference, engine_factory, wait_for
):
    # one encode thread: requests are queued (and numbered 1..5) in submission order
    engine = await engine_factory(causal_backend, max_batch_size=16, encode_workers=1)
    records: list[BatchRecord] = []
    engine.add_batch_listener(records.append)
    requests = [
        RerankInput(query="capital of France?", documents=DOCS[:1]),
        RerankInput(query="a fox", documents=DOCS[1:3]),
        RerankInput(query="capital of France?", documents=DOCS[3:5]),
        RerankInput(query="rivers", documents=DOCS[::-1]),
        RerankInput(query="one doc", documents=[DOCS[2]], instruction="Find fruit"),
    ]
    engine.pause()
    tasks = await queue_while_paused(engine, requests, wait_for)
    engine.resume()
    outs = await asyncio.gather(*tasks)
    for req, out in zip(requests, outs):
        _close(out.raw_scores, _expected(causal_backend, causal_reference, req), causal_backend)
    # engine ids follow enqueue order (1..5). Requests 1 and 3 share query and instruction: one
    # prefix group of 3 pairs; request 4 (7 docs) is its own prefix group; the small requests 2
    # and 5 (other queries) are packed together into one full batch.
    groups = sorted((r.kind, tuple(sorted(set(r.request_ids)))) for r in records)
    assert groups == [("full", (2, 5)), ("prefix", (1, 3)), ("prefix", (4,))], groups
    assert sum(len(r.request_ids) for r in records) == sum(len(r.documents) for r in requests)


async def test_different_instructions_never_share_a_prefix_group(
    causal_backend, causal_reference, engine_factory, wait_for
):
    # one encode thread: requests are queued (and numbered 1..4) in submission order
    engine = await engine_factory(causal_backend, encode_workers=1)
    records: list[BatchRecord] = []
    engine.add_batch_listener(records.append)
    q = "capital of France?"
    requests = [
        RerankInput(query=q, documents=DOCS[:4], instruction="Instruction A"),
        RerankInput(query=q, documents=DOCS[4:], instruction="Instruction A"),
        RerankInput(query=q, documents=DOCS[:4], instruction="Instruction B"),
        RerankInput(query="another query", documents=DOCS[:3], instruction="Instruction A"),
    ]
    engine.pause()
    tasks = await queue_while_paused(engine, requests, wait_for)
    engine.resume()
    outs = await asyncio.gather(*tasks)
    assert {r.kind for r in records} == {"prefix"}
    groups = sorted(tuple(sorted(set(r.request_ids))) for r in records)
    # same instruction and query share one prefix group; another instruction or query never joins
    assert groups == [(1, 2), (3,), (4,)]
    keys = [next(iter(r.prefix_keys)) for r in sorted(records, key=lambda r: min(r.request_ids))]
    assert all(len(r.prefix_keys) == 1 for r in records) and len(set(keys)) == 3
    for req, out in zip(requests, outs):
        _close(out.raw_scores, _expected(causal_backend, causal_reference, req), causal_backend)


async def test_queue_full_is_429_and_admitted_requests_are_answered(
    causal_backend, causal_reference, engine_factory, wait_for
):
    engine = await engine_factory(causal_backend, max_concurrent_requests=3, retry_after_s=2.5)
    requests = [RerankInput(query=f"query {i}", documents=DOCS[i : i + 2]) for i in range(3)]
    engine.pause()
    tasks = await queue_while_paused(engine, requests, wait_for)
    with pytest.raises(QueueFullError) as info:
        await engine.rerank(RerankInput(query="one too many", documents=DOCS[:1]))
    assert info.value.status_code == 429 and info.value.retry_after_s == 2.5
    engine.resume()
    outs = await asyncio.gather(*tasks)
    for req, out in zip(requests, outs):
        _close(out.raw_scores, _expected(causal_backend, causal_reference, req), causal_backend)
    assert engine.inflight_requests == 0
    after = await engine.rerank(RerankInput(query="now admitted", documents=DOCS[:2]))
    assert len(after.scores) == 2


async def test_failing_batch_fails_only_its_requests(
    cross_backend, engine_factory, monkeypatch, wait_for
):
    """A document longer than BERT's 512 positions makes a real forward fail. One pair per
    batch: pairs that run packed (no padding to plan around) go in arrival order, so a batch
    of two would hold the bad pair and a good one."""
    monkeypatch.setattr(cross_backend, "max_length", 100_000)
    engine = await engine_factory(cross_backend, max_batch_size=1)
    long_doc = " ".join(["paris london berlin"] * 400)
    bad = RerankInput(query="q", documents=[long_doc])
    good = RerankInput(query="capital", documents=DOCS[:2])
    engine.pause()
    tasks = await queue_while_paused(engine, [bad, good], wait_for)
    engine.resume()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], Exception) and not isinstance(results[0], QueueFullError)
    assert len(results[1].scores) == 2
    monkeypatch.undo()
    again = await engine.rerank(good)  # the engine goes on
    _close(again.raw_scores, results[1].raw_scores, cross_backend, mode="same_kernel")
    assert engine.pending_pairs == 0 and engine.inflight_requests == 0


async def test_cross_encoder_batches_across_requests(
    cross_backend, tiny_cross_encoder_path, engine_factory, wait_for
):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_cross_encoder_path, dtype=torch.float32
    ).eval()
    engine = await engine_factory(cross_backend)
    records: list[BatchRecord] = []
    engine.add_batch_listener(records.append)
    requests = [RerankInput(query=f"q{i} capital", documents=DOCS[i:]) for i in range(4)]
    engine.pause()
    tasks = await queue_while_paused(engine, requests, wait_for)
    engine.resume()
    outs = await asyncio.gather(*tasks)
    assert len(records) == 1 and len(set(records[0].request_ids)) == 4
    for req, out in zip(requests, outs):
        want = []
        for pair in cross_backend.encode(req).pairs:
            with torch.inference_mode():
                logits = model(
                    input_ids=torch.tensor([pair.input_ids]),
                    token_type_ids=torch.tensor([pair.token_type_ids]),
                ).logits
            want.append(float(logits[0, 0]))
        _close(out.raw_scores, want, cross_backend)


async def test_score_cache_hits_skip_the_model(causal_backend, causal_reference, engine_factory):
    engine = await engine_factory(causal_backend, score_cache_size=16)
    records: list[BatchRecord] = []
    engine.add_batch_listener(records.append)
    hits0 = _metric("reranker_score_cache_hits_total")
    miss0 = _metric("reranker_score_cache_misses_total")
    first = RerankInput(query="capital?", documents=DOCS[:3])
    await engine.rerank(first)
    assert sum(len(r.request_ids) for r in records) == 3
    records.clear()
    second = RerankInput(query="capital?", documents=[DOCS[2], DOCS[5], DOCS[0]])
    out = await engine.rerank(second)
    assert sum(len(r.request_ids) for r in records) == 1  # only DOCS[5] reached the model
    assert _metric("reranker_score_cache_hits_total") - hits0 == 2
    assert _metric("reranker_score_cache_misses_total") - miss0 == 4
    _close(out.raw_scores, _expected(causal_backend, causal_reference, second), causal_backend)
    enc = causal_backend.encode(second)
    assert out.prompt_tokens == enc.prompt_tokens
    records.clear()
    other = RerankInput(query="capital?", documents=DOCS[:1], instruction="Another instruction")
    await engine.rerank(other)
    assert sum(len(r.request_ids) for r in records) == 1  # other instruction: a miss
    records.clear()
    await engine.rerank(RerankInput(query="capital?", documents=DOCS[:3]))
    assert records == []  # all hits: the model never ran


async def test_cache_keeps_document_indexes_in_errors(causal_backend, engine_factory):
    from reranker_server.contracts import InputTooLongError

    engine = await engine_factory(causal_backend, score_cache_size=8)
    await engine.rerank(RerankInput(query="q", documents=["short one"], truncate=False))
    long_doc = " ".join(["paris"] * 5000)
    with pytest.raises(InputTooLongError) as info:
        await engine.rerank(
            RerankInput(query="q", documents=["short one", long_doc], truncate=False)
        )
    assert info.value.field == "documents[1]"  # the caller's index (1 of the sub-request's 0)
    assert info.value.message.startswith("documents[1]: ")
    info.value.documents_field = "docs"  # what the HTTP layer does for /v1/rank
    assert info.value.field == "docs[1]" and info.value.message.startswith("docs[1]: ")


async def test_metrics_count_the_forwards_that_ran(causal_backend, engine_factory):
    """Batch size, tokens, padding and prefix reuse are what the model ran: counted here
    independently with forward pre-hooks on the decoder stack (its padded forwards) and on its
    embedding and last attention projection (the packed path's forwards, which take the
    documents' tokens unpadded as one row each and project one row per document at the end)."""
    engine = await engine_factory(causal_backend)
    records: list[BatchRecord] = []
    engine.add_batch_listener(records.append)
    calls: list[list[int]] = []  # [rows, tokens the kernels ran, real tokens] per decoder call

    def count(_module, _args, kwargs):
        ids = kwargs["input_ids"]
        mask = kwargs["attention_mask"][:, -ids.shape[1] :]
        calls.append([ids.shape[0], ids.numel(), int(mask.sum())])

    def count_packed_tokens(_module, args):
        if args[0].dim() == 1:  # packed: every row's tokens in one sequence, no padding
            calls.append([0, args[0].numel(), args[0].numel()])

    def count_packed_rows(_module, args):
        if calls and calls[-1][0] == 0:
            calls[-1][0] = args[0].shape[0]

    names = (
        "reranker_batch_size_count",
        "reranker_batch_size_sum",
        "reranker_batch_tokens_sum",
        "reranker_padding_ratio_count",
        "reranker_prefix_cache_reuse_total",
        "reranker_prefix_tokens_saved_total",
        "reranker_queue_time_seconds_count",
        "reranker_computed_tokens_total",
        "reranker_tokenization_duration_seconds_count",
        "reranker_inference_duration_seconds_count",
    )
    inp = RerankInput(query="capital?", documents=DOCS)
    await engine.rerank(inp)  # first calls: the shortcuts' first-use checks run plain forwards
    base = causal_backend.base
    handles = [
        base.register_forward_pre_hook(count, with_kwargs=True),
        base.embed_tokens.register_forward_pre_hook(count_packed_tokens),
        base.layers[-1].self_attn.o_proj.register_forward_pre_hook(count_packed_rows),
    ]
    try:
        before = {n: _metric(n) for n in names}
        records.clear()
        await engine.rerank(inp)
        await engine.rerank(RerankInput(query="single", documents=DOCS[:1]))
    finally:
        for handle in handles:
            handle.remove()
    delta = {n: _metric(n) - v for n, v in before.items()}
    p = len(causal_backend.encode(inp).prefix_ids)
    assert delta["reranker_batch_size_count"] == len(calls) == delta["reranker_padding_ratio_count"]
    assert delta["reranker_batch_size_sum"] == sum(rows for rows, _t, _r in calls)
    assert delta["reranker_batch_tokens_sum"] == sum(ran for _b, ran, _r in calls)
    assert delta["reranker_computed_tokens_total"] == sum(real for _b, _t, real in calls)
    assert [(f.sequences, f.padded_tokens) for r in records for f in r.forwards] == [
        (rows, ran) for rows, ran, _r in calls
    ]
    assert delta["reranker_queue_time_seconds_count"] == len(DOCS) + 1
    assert delta["reranker_prefix_cache_reuse_total"] == len(DOCS)
    assert delta["reranker_prefix_tokens_saved_total"] == (len(DOCS) - 1) * p
    assert delta["reranker_tokenization_duration_seconds_count"] == 2
    assert delta["reranker_inference_duration_seconds_count"] == len(records)
    prefix_batch = next(r for r in records if r.kind == "prefix")
    # the plan is what ran: the prefix once, then one forward per planned sub-batch
    assert [f.path for f in prefix_batch.forwards] == ["prefix"] + ["continuation"] * len(
        prefix_batch.planned_forwards
    )
    assert _metric("reranker_queue_depth") == 0 and _metric("reranker_queued_tokens") == 0
    assert _metric("reranker_inflight_pairs") == 0


async def test_prefix_metrics_stop_when_the_prefix_path_turns_off(
    qwen3_3l_path, causal_reference, engine_factory
):
    """Fault injection: a decoder that mishandles the cache turns the prefix path off on first
    use; from then on nothing is counted as reuse, batches are not grouped by prefix, /info's
    source (the backend's shortcuts) says why, and the scores stay right."""
    from transformers import Cache

    from reranker_server.models import LoadOptions, load_backend, packed_decoder

    backend = load_backend(LoadOptions(model=str(qwen3_3l_path), device="cpu", dtype="float32"))
    # the plain cached path, whose forwards run the modules this fault hooks (a model the packed
    # path misreads falls back to the plain one: tests/server/models/test_packed_decoder.py)
    packed_decoder.disable(backend.base, "test: the plain cached path")

    def corrupt_cached(_module, _args, kwargs, output):
        if any(isinstance(value, Cache) for value in kwargs.values()):
            return (output[0] + 1.0, *output[1:]) if isinstance(output, tuple) else output + 1.0
        return output

    backend.base.layers[0].register_forward_hook(corrupt_cached, with_kwargs=True)
    engine = await engine_factory(backend)
    records: list[BatchRecord] = []
    engine.add_batch_listener(records.append)
    reuse0 = _metric("reranker_prefix_cache_reuse_total")
    saved0 = _metric("reranker_prefix_tokens_saved_total")
    inp = RerankInput(query="which capital?", documents=DOCS)
    first = await engine.rerank(inp)
    assert not backend.prefix_cache_in_force and not engine.prefix_enabled
    second = await engine.rerank(inp)
    want = _expected(backend, causal_reference, inp)
    _close(first.raw_scores, want, backend)
    _close(second.raw_scores, want, backend)
    assert _metric("reranker_prefix_cache_reuse_total") == reuse0
    assert _metric("reranker_prefix_tokens_saved_total") == saved0
    assert records[0].report is not None and not records[0].report.prefix_kv
    assert all(r.kind == "full" for r in records[1:])
    prefix_kv = {s.name: s for s in backend.shortcuts()}["prefix_kv"]
    assert not prefix_kv.in_force and "differs from a full recompute" in prefix_kv.reason


async def test_cancelled_request_leaves_the_queue(causal_backend, engine_factory, wait_for):
    engine = await engine_factory(causal_backend)
    engine.pause()
    tasks = await queue_while_paused(
        engine,
        [RerankInput(query="a", documents=DOCS[:3]), RerankInput(query="b", documents=DOCS[3:5])],
        wait_for,
    )
    tasks[0].cancel()
    await wait_for(lambda: engine.pending_pairs == 2, what="cancelled pairs withdrawn")
    engine.resume()
    out = await tasks[1]
    assert len(out.scores) == 2
    assert tasks[0].cancelled()


async def test_stop_fails_queued_requests_with_503(causal_backend, wait_for):
    engine = build_engine(causal_backend, EngineConfig())
    await engine.start()
    engine.pause()
    tasks = await queue_while_paused(engine, [RerankInput(query="a", documents=DOCS[:2])], wait_for)
    await engine.stop()
    with pytest.raises(EngineStoppedError) as info:
        await tasks[0]
    assert info.value.status_code == 503
    with pytest.raises(EngineStoppedError):
        await engine.rerank(RerankInput(query="a", documents=DOCS[:1]))


async def test_empty_documents_need_no_model(causal_backend, engine_factory):
    engine = await engine_factory(causal_backend)
    out = await engine.rerank(RerankInput(query="a", documents=[]))
    assert out.scores == [] and out.raw_scores == []


def test_config_rejects_bad_values_naming_the_field():
    with pytest.raises(ValueError, match="max_batch_size"):
        EngineConfig(max_batch_size=0)
    with pytest.raises(ValueError, match="score_cache_size"):
        EngineConfig(score_cache_size=-1)


async def test_many_interleaved_requests_each_get_their_own_scores(
    causal_backend, causal_reference, engine_factory
):
    """Small batches force many interleavings; every request still matches its reference."""
    import random

    rng = random.Random(11)
    engine = await engine_factory(
        causal_backend, max_batch_size=4, max_batch_tokens=600, schedule_window=8
    )
    records: list[BatchRecord] = []
    engine.add_batch_listener(records.append)
    requests = [
        RerankInput(
            query=rng.choice(["capital?", "rivers", "fruit"]),
            documents=rng.sample(DOCS, rng.randint(1, 5)),
            instruction=rng.choice([None, "Instruction A"]),
            max_tokens_per_doc=rng.choice([None, 6]),
        )
        for _ in range(30)
    ]
    outs = await asyncio.gather(*(engine.rerank(r) for r in requests))
    for req, out in zip(requests, outs):
        _close(out.raw_scores, _expected(causal_backend, causal_reference, req), causal_backend)
    assert {r.kind for r in records} == {"prefix", "full"}
    assert all(len(r.request_ids) <= 4 for r in records)
    for r in records:
        if r.kind == "prefix":
            assert len(r.prefix_keys) == 1


def test_worker_count_auto_and_explicit():
    from reranker_server.engine.config import resolve_workers

    auto = EngineConfig()
    assert resolve_workers(auto, "cpu", 2) == (2, 1)
    assert resolve_workers(auto, "cpu", 16) == (2, 8)
    assert resolve_workers(auto, "cpu", 1) == (1, 1)
    assert resolve_workers(auto, "cuda:0", 16) == (1, None)  # torch's threads left alone
    assert resolve_workers(EngineConfig(model_workers=3, torch_threads=2), "cpu", 2) == (3, 2)
    assert resolve_workers(EngineConfig(model_workers=3), "cpu", 12) == (3, 4)
    with pytest.raises(ValueError, match="model_workers"):
        EngineConfig(model_workers=-1)
    with pytest.raises(ValueError, match="torch_threads"):
        EngineConfig(torch_threads=True)


@pytest.mark.parametrize("workers", [1, 3])
async def test_parallel_model_workers_give_each_request_its_own_scores(
    causal_backend, causal_reference, engine_factory, workers
):
    """Several model threads run batches side by side; every request still matches alone."""
    engine = await engine_factory(
        causal_backend, model_workers=workers, torch_threads=1, max_batch_size=2
    )
    assert engine.model_workers == workers and engine.torch_threads == 1
    requests = [
        RerankInput(query=q, documents=DOCS[k : k + 4]) for k, q in enumerate(["a", "b", "c", "d"])
    ]
    main_threads = torch.get_num_threads()
    outs = await asyncio.gather(*(engine.rerank(r) for r in requests))
    for req, out in zip(requests, outs):
        _close(out.raw_scores, _expected(causal_backend, causal_reference, req), causal_backend)
    assert torch.get_num_threads() == main_threads  # only the worker threads were changed


class _FaultyBackend:
    """The real backend, with a fault injected into its forward calls."""

    def __init__(self, backend, fault) -> None:
        self._backend, self._fault = backend, fault

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def score(self, prefix_ids, pairs, sub_batches):
        return self._fault(
            self._backend.score(prefix_ids, pairs, sub_batches) if len(pairs) <= 3 else None,
            len(pairs),
        )

    def score_mixed(self, prefixes, pairs):
        return self._fault(
            self._backend.score_mixed(prefixes, pairs) if len(pairs) <= 3 else None, len(pairs)
        )


def _oom(result, n):
    if result is None:
        raise torch.OutOfMemoryError(f"CUDA out of memory (fault injected: {n} pairs)")
    return result


async def test_out_of_memory_splits_the_batch_and_retries(
    causal_backend, causal_reference, engine_factory
):
    """A device that fits at most 3 sequences per call: batches are halved until they fit,
    and every score still equals the reference."""
    engine = await engine_factory(_FaultyBackend(causal_backend, _oom))
    before = _metric("reranker_oom_retries_total")
    inp = RerankInput(query="which capital?", documents=DOCS)
    out = await engine.rerank(inp)
    _close(out.raw_scores, _expected(causal_backend, causal_reference, inp), causal_backend)
    assert _metric("reranker_oom_retries_total") - before >= 2  # 7 -> 3 + 4 -> 3 + 2 + 2


async def test_out_of_memory_on_one_pair_fails_only_that_request(causal_backend, engine_factory):
    def always(result, n):
        raise torch.OutOfMemoryError("CUDA out of memory (fault injected)")

    engine = await engine_factory(_FaultyBackend(causal_backend, always))
    with pytest.raises(torch.OutOfMemoryError):
        await engine.rerank(RerankInput(query="q", documents=DOCS[:1]))
    assert engine.pending_pairs == 0 and engine.inflight_requests == 0


async def test_non_finite_scores_are_never_returned(causal_backend, engine_factory):
    from reranker_server.contracts import Scored
    from reranker_server.engine.scheduler import NonFiniteScoresError

    def nan(result, n):
        if result is None:
            raise torch.OutOfMemoryError("too big")
        return Scored([float("nan")] + result.raw_scores[1:], result.report)

    engine = await engine_factory(_FaultyBackend(causal_backend, nan))
    with pytest.raises(NonFiniteScoresError) as info:
        await engine.rerank(RerankInput(query="q", documents=DOCS[:2]))
    assert info.value.status_code == 500 and "non-finite" in info.value.message


def test_forward_overhead_is_device_aware():
    from reranker_server.engine.config import resolve_overhead

    assert resolve_overhead(EngineConfig(), "cpu") == 32
    assert resolve_overhead(EngineConfig(), "cuda:0") == 512
    assert resolve_overhead(EngineConfig(forward_overhead_tokens=8), "cuda:0") == 8
    with pytest.raises(ValueError, match="forward_overhead_tokens"):
        EngineConfig(forward_overhead_tokens=-1)


async def test_warm_up_on_a_cpu_is_a_few_short_documents(causal_backend, engine_factory):
    """On a CPU (nothing to reserve) the warm-up scores a few short documents, far under the
    batch budget, yet still runs the prefix path whose first-use check it is there for; the
    decoder calls are counted independently with a forward pre-hook on the embedding, which
    every path (padded or packed) calls with the tokens it runs."""
    from reranker_server.engine.scheduler import CPU_WARM_UP_DOCUMENTS

    assert causal_backend.device == "cpu"
    engine = await engine_factory(causal_backend, max_batch_size=32, max_batch_tokens=16384)
    tokens: list[int] = []

    def count(_module, args):
        tokens.append(int(args[0].numel()))

    handle = causal_backend.base.embed_tokens.register_forward_pre_hook(count)
    try:
        assert await engine.warm_up() == CPU_WARM_UP_DOCUMENTS
    finally:
        handle.remove()
    assert tokens and sum(tokens) < 16384 // 16, tokens  # the budget's request: ~16k tokens
    assert causal_backend.prefix_cache_in_force
