"""Shared-prefix KV scoring equals a plain full forward of each whole sequence."""

from __future__ import annotations

import pytest
import torch

from reranker_server.models import packed_decoder
from reranker_server.models.prefix_kv import (
    last_hidden_full,
    last_hidden_with_prefix,
    prefix_cache_unsupported,
)
from tolerance import Mode, fp32_tolerance

PAD = 0


def _qwen3(attn: str, layers: int = 3) -> torch.nn.Module:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = Qwen3Config(
        vocab_size=211,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        pad_token_id=PAD,
        max_position_embeddings=512,
    )
    cfg._attn_implementation = attn
    torch.manual_seed(1)
    model = Qwen3ForCausalLM(cfg).eval()
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
    return model


def _within(
    got: torch.Tensor, want: torch.Tensor, model: torch.nn.Module, mode: Mode = "cross_impl"
) -> None:
    """Hidden states within the model's float32 tolerance (tests/tolerance.py); a prefix KV
    cache reads keys and values through another attention path than a whole forward, so it is
    counted as another implementation; padding and batching alone are `same_kernel`."""
    diff, tol = (got - want).abs().max().item(), fp32_tolerance(model, "hidden", mode)
    assert diff <= tol, f"max |diff| {diff:.3g} > {mode} tolerance {tol:.3g}"


def _alone(base: torch.nn.Module, seq: list[int]) -> torch.Tensor:
    """Reference: the sequence on its own, no padding, no cache."""
    with torch.inference_mode():
        return base(input_ids=torch.tensor([seq])).last_hidden_state[0, -1]


def _tokens(gen: torch.Generator, n: int) -> list[int]:
    return torch.randint(1, 211, (n,), generator=gen).tolist()


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def base(request) -> torch.nn.Module:
    """The plain cached path (the Hugging Face forward on an expanded cache: GPUs, other
    dtypes); the packed path that CPUs take has tests of its own (test_packed_decoder.py)."""
    model = _qwen3(request.param).model
    packed_decoder.disable(model, "test: the plain cached path")
    return model


def test_shared_prefix_equals_full_recompute(base):
    gen = torch.Generator().manual_seed(3)
    prefix = _tokens(gen, 37)
    conts = [_tokens(gen, n) for n in (1, 9, 33, 4, 60, 17, 2, 25)]
    chunks = [[0, 1, 2], [3, 4, 5], [6, 7]]  # three forwards on the one prefix cache
    run = last_hidden_with_prefix(base, prefix, conts, pad_token_id=PAD, sub_batches=chunks)
    got = run.hidden
    assert run.used_cache and [s.path for s in run.shapes] == ["prefix"] + ["continuation"] * 3
    want = torch.stack([_alone(base, prefix + c) for c in conts])
    assert got.shape == want.shape == (len(conts), 64)
    _within(got, want, base)
    # the documents really differ, so equality is not trivial
    assert torch.cdist(want, want).fill_diagonal_(1.0).min().item() > 1e-2
    assert base not in prefix_cache_unsupported


def test_prefix_runs_once_and_continuations_run_alone(base):
    """The decoder sees the prefix once, then only continuation tokens (the cache is used)."""
    gen = torch.Generator().manual_seed(4)
    prefix = _tokens(gen, 20)
    conts = [_tokens(gen, n) for n in (5, 7, 3, 11, 2)]
    widths: list[int] = []
    handle = base.register_forward_pre_hook(
        lambda _m, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    from reranker_server.engine.sub_batches import split_by_length

    groups = split_by_length([len(c) for c in conts], overhead_tokens=4, max_size=2)
    try:
        last_hidden_with_prefix(base, prefix, conts, pad_token_id=PAD, sub_batches=groups)
    finally:
        handle.remove()
    # sorted lengths 2,3,5,7,11 cut into groups of <= 2 with cost 4 + size x longest per
    # forward; by hand the best is (2,3),(5,7),(11): 3*4 + 6 + 14 + 11 = 43 (singletons: 48,
    # (2),(3,5),(7,11): 46, (2,3),(5),(7,11): 45). The prefix runs once for all three.
    assert widths == [20, 3, 7, 11]


def test_empty_continuation_reads_the_prefix_last_token(base):
    gen = torch.Generator().manual_seed(5)
    prefix = _tokens(gen, 12)
    conts = [[], _tokens(gen, 6)]
    got = last_hidden_with_prefix(base, prefix, conts, pad_token_id=PAD).hidden
    _within(got[0], _alone(base, prefix), base)
    _within(got[1], _alone(base, prefix + conts[1]), base)


def test_full_helper_right_pads_correctly(base):
    gen = torch.Generator().manual_seed(6)
    seqs = [_tokens(gen, n) for n in (3, 30, 8)]
    got = last_hidden_full(base, seqs, pad_token_id=PAD)
    want = torch.stack([_alone(base, s) for s in seqs])
    _within(got, want, base, "same_kernel")


def test_empty_prefix_is_plain_batching(base):
    gen = torch.Generator().manual_seed(7)
    conts = [_tokens(gen, n) for n in (4, 9)]
    run = last_hidden_with_prefix(base, [], conts, pad_token_id=PAD)
    got = run.hidden
    assert not run.used_cache
    want = torch.stack([_alone(base, c) for c in conts])
    _within(got, want, base, "same_kernel")


def test_model_without_a_cache_falls_back_and_is_recorded():
    """An encoder (BERT) returns no KV cache: full recomputation, reason recorded."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(8)
    cfg = BertConfig(
        vocab_size=211,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        pad_token_id=PAD,
    )
    model = BertModel(cfg, add_pooling_layer=False).eval()
    gen = torch.Generator().manual_seed(9)
    prefix, conts = _tokens(gen, 6), [_tokens(gen, 3), _tokens(gen, 10)]
    run = last_hidden_with_prefix(model, prefix, conts, pad_token_id=PAD)
    got = run.hidden
    assert model in prefix_cache_unsupported and not run.used_cache  # reported as it ran
    want = torch.stack([_alone(model, prefix + c) for c in conts])
    _within(got, want, model, "same_kernel")


def test_bad_arguments_are_named(base):
    with pytest.raises(ValueError, match="continuations"):
        last_hidden_with_prefix(base, [1, 2], [], pad_token_id=PAD)
    with pytest.raises(ValueError, match="sequences"):
        last_hidden_full(base, [[1], []], pad_token_id=PAD)


def test_a_model_whose_cached_forward_is_wrong_is_detected():
    """A decoder that silently mishandles a cache (here: shifted outputs) falls back, correctly."""
    base = _qwen3("sdpa", layers=3).model
    packed_decoder.disable(base, "test: the plain cached path")

    from transformers import Cache

    def corrupt_cached(_module, _args, kwargs, output):
        # a cached call, whatever the installed transformers names the argument
        if any(isinstance(value, Cache) for value in kwargs.values()):
            return output + 1.0
        return output

    base.layers[0].register_forward_hook(corrupt_cached, with_kwargs=True)
    gen = torch.Generator().manual_seed(10)
    prefix, conts = _tokens(gen, 15), [_tokens(gen, 4), _tokens(gen, 9)]
    run = last_hidden_with_prefix(base, prefix, conts, pad_token_id=PAD)
    got = run.hidden
    assert "differs from a full recompute" in prefix_cache_unsupported[base]
    assert not run.used_cache and {s.path for s in run.shapes} == {"full"}
    with torch.inference_mode():  # no cache here, so the hook leaves this reference alone
        want = torch.stack(
            [
                base(input_ids=torch.tensor([prefix + c]), use_cache=False).last_hidden_state[0, -1]
                for c in conts
            ]
        )
    _within(got, want, base, "same_kernel")
    with pytest.raises(ValueError, match="sub_batches"):
        last_hidden_with_prefix(base, prefix, conts, pad_token_id=PAD, sub_batches=[[0], []])
    with pytest.raises(ValueError, match="sub_batches"):
        last_hidden_with_prefix(base, prefix, conts, pad_token_id=PAD, sub_batches=[[0]])


def test_last_layer_runs_only_the_scored_token(base):
    """Cached and full (left-padded) paths: the last layer's MLP sees one row per sequence."""
    from reranker_server.models import last_token

    assert last_token.supported(base)
    gen = torch.Generator().manual_seed(12)
    prefix = _tokens(gen, 10)
    conts = [_tokens(gen, n) for n in (6, 6, 5)]
    last_hidden_with_prefix(base, prefix, conts, pad_token_id=PAD)  # first call: verified
    shapes: list[tuple[int, ...]] = []
    hooks = [
        layer.mlp.register_forward_hook(lambda _m, a, _o: shapes.append(tuple(a[0].shape)))
        for layer in base.layers
    ]
    try:
        got = last_hidden_with_prefix(base, prefix, conts, pad_token_id=PAD).hidden
        # left-padded whole sequences, no cache (the causal backend's score_full layout)
        seqs = [prefix + c for c in conts]
        width = max(len(s) for s in seqs)
        ids = torch.tensor([[PAD] * (width - len(s)) + s for s in seqs])
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        inputs = {
            "input_ids": ids,
            "attention_mask": mask,
            "position_ids": positions,
            "use_cache": False,
        }
        with torch.inference_mode():
            full = last_token.last_token_hidden(base, inputs, torch.full((3,), width - 1), None)
    finally:
        for h in hooks:
            h.remove()
    n_layers, d = len(base.layers), base.config.hidden_size
    # the prefix (10 tokens) once in full, one forward of the 3 continuations (width 6), then
    # one of the 3 whole sequences (width 16)
    assert shapes == [(1, 10, d)] * n_layers + [(3, 6, d)] * (n_layers - 1) + [(3, 1, d)] + [
        (3, width, d)
    ] * (n_layers - 1) + [(3, 1, d)]
    want = torch.stack([_alone(base, s) for s in seqs])
    _within(got, want, base)
    _within(full, want, base, "same_kernel")
