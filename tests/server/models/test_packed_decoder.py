"""The packed decoder path (documents unpadded, cascade attention) equals a plain full forward."""

from __future__ import annotations

import pytest
import torch

from reranker_server.contracts import ForwardCancelled, ForwardStop, stoppable_forwards
from reranker_server.models import elementwise, packed_decoder
from reranker_server.models.prefix_kv import last_hidden_with_prefix, prefix_cache_unsupported
from tolerance import fp32_tolerance

PAD = 0
VOCAB = 211


def _randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
            elif name.endswith("bias"):  # Qwen2's q/k/v biases: not zero, so they count
                param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
            else:  # norm weights away from 1, so a norm applied wrongly shows
                param.copy_(1.0 + torch.randn(param.shape, generator=gen) * 0.1)
    return model.eval()


def _model(kind: str, layers: int = 3) -> torch.nn.Module:
    """A tiny random decoder of `kind`: qwen3 (q/k norms, grouped KV heads), qwen2 (q/k/v
    biases), llama (plain multi-head, as many KV heads as query heads)."""
    import transformers as tf

    common = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        pad_token_id=PAD,
        max_position_embeddings=512,
    )
    if kind == "qwen3":
        cfg = tf.Qwen3Config(**common, num_key_value_heads=2, head_dim=16)
        cls = tf.Qwen3ForCausalLM
    elif kind == "qwen2":
        cfg = tf.Qwen2Config(**common, num_key_value_heads=2)
        cls = tf.Qwen2ForCausalLM
    else:
        cfg = tf.LlamaConfig(**common, num_key_value_heads=4)
        cls = tf.LlamaForCausalLM
    torch.manual_seed(1)
    return _randomize(cls(cfg), seed=2).model


def _tokens(gen: torch.Generator, n: int) -> list[int]:
    return torch.randint(1, VOCAB, (n,), generator=gen).tolist()


def _alone(base: torch.nn.Module, seq: list[int]) -> torch.Tensor:
    """Reference: the sequence on its own through the model's own forward, no padding, no
    cache."""
    with torch.inference_mode():
        return base(input_ids=torch.tensor([seq]), use_cache=False).last_hidden_state[0, -1]


@pytest.mark.parametrize("kind", ["qwen3", "qwen2", "llama"])
def test_packed_documents_equal_each_sequence_alone(kind):
    base = _model(kind)
    assert packed_decoder.supported(base), packed_decoder.why_not(base)
    gen = torch.Generator().manual_seed(3)
    prefix = _tokens(gen, 37)
    conts = [_tokens(gen, n) for n in (1, 9, 33, 4, 60, 17, 2, 25)]
    groups = [[0, 1, 2, 3, 4], [5, 6, 7]]
    run = last_hidden_with_prefix(base, prefix, conts, pad_token_id=PAD, sub_batches=groups)
    assert run.used_cache and run.packed and run.last_only
    assert [(s.path, s.packed) for s in run.shapes] == [("prefix", True)] + [
        ("continuation", True)
    ] * 2
    want = torch.stack([_alone(base, prefix + c) for c in conts])
    diff = (run.hidden - want).abs().max().item()
    assert diff <= fp32_tolerance(base, "hidden", "cross_impl"), diff
    # the documents really differ, so equality is not trivial
    assert torch.cdist(want, want).fill_diagonal_(1.0).min().item() > 1e-2


@pytest.mark.parametrize(
    ("prefix_len", "lengths"),
    [(32, [16, 3, 32]), (16, [17, 15, 1]), (5, [16])],
    ids=["aligned-prefix", "ragged-after-aligned", "short-prefix"],
)
def test_key_alignment_never_changes_a_result(prefix_len, lengths):
    """Prefixes and documents whose key counts are multiples of the kernel's alignment (no
    padding, no mask) or just past one (a document's key view reaching into the next one, the
    last one into zero rows): every result equals the sequence alone."""
    base = _model("qwen3", layers=2)
    gen = torch.Generator().manual_seed(8)
    prefix = _tokens(gen, prefix_len)
    conts = [_tokens(gen, n) for n in lengths]
    run = last_hidden_with_prefix(base, prefix, conts, pad_token_id=PAD)
    assert run.packed
    want = torch.stack([_alone(base, prefix + c) for c in conts])
    diff = (run.hidden - want).abs().max().item()
    assert diff <= fp32_tolerance(base, "hidden", "cross_impl"), diff


def _float32_case(seed: int) -> tuple[torch.nn.Module, list[int], list[list[int]], torch.Tensor]:
    """A float32 Qwen3, a prefix and four documents, and each sequence's hidden state alone."""
    base = _model("qwen3")
    gen = torch.Generator().manual_seed(seed)
    prefix = _tokens(gen, 29)
    conts = [_tokens(gen, n) for n in (3, 21, 8, 40)]
    return base, prefix, conts, torch.stack([_alone(base, prefix + c) for c in conts])


def test_bfloat16_stays_within_bfloat16_rounding_of_the_float32_result():
    base, prefix, conts, want = _float32_case(seed=4)
    plain = _model("qwen3").to(torch.bfloat16)
    packed_decoder.disable(plain, "test: the plain cached path, for comparison")
    half = base.to(torch.bfloat16)
    got = last_hidden_with_prefix(half, prefix, conts, pad_token_id=PAD)
    assert got.packed
    baseline = last_hidden_with_prefix(plain, prefix, conts, pad_token_id=PAD)
    assert not baseline.packed and baseline.used_cache
    err = (got.hidden.float() - want).abs().max().item()
    err_plain = (baseline.hidden.float() - want).abs().max().item()
    # bf16 keeps 8 bits: the packed path's rounding is of the plain bf16 path's order
    assert err <= max(2.0 * err_plain, 0.05), (err, err_plain)


def test_projection_weights_are_held_once():
    """q/k/v and gate/up run as one GEMM each, from one buffer the modules' weights view."""
    base = _model("qwen3", layers=2)
    before = sum(p.numel() for p in base.parameters())
    storages_before = {p.untyped_storage().data_ptr() for p in base.parameters()}
    gen = torch.Generator().manual_seed(5)
    last_hidden_with_prefix(base, _tokens(gen, 9), [_tokens(gen, 4)], pad_token_id=PAD)
    attn, mlp = base.layers[0].self_attn, base.layers[0].mlp
    shared = attn.q_proj.weight.untyped_storage().data_ptr()
    assert attn.k_proj.weight.untyped_storage().data_ptr() == shared
    assert attn.v_proj.weight.untyped_storage().data_ptr() == shared
    assert mlp.gate_proj.weight.untyped_storage().data_ptr() == (
        mlp.up_proj.weight.untyped_storage().data_ptr()
    )
    assert sum(p.numel() for p in base.parameters()) == before
    # 5 linear weights per layer became 2 buffers: the old ones are gone, not kept besides
    storages_after = {p.untyped_storage().data_ptr() for p in base.parameters()}
    assert len(storages_after) == len(storages_before) - 3 * len(base.layers)


def test_a_model_the_packed_path_misreads_falls_back_to_the_plain_cached_path():
    """A norm named like an RMSNorm but computing something else: the first-use check catches
    the packed result, turns the packed path off (reason kept) and the plain cached path,
    which runs the modules' own forwards, answers correctly."""
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RMSNorm

    class ShiftedRMSNorm(Qwen3RMSNorm):
        def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
            return super().forward(hidden_states) + 0.5

    base = _model("qwen3")
    old = base.layers[1].post_attention_layernorm
    shifted = ShiftedRMSNorm(old.weight.shape[0], eps=old.variance_epsilon)
    shifted.weight = old.weight
    base.layers[1].post_attention_layernorm = shifted
    gen = torch.Generator().manual_seed(6)
    prefix, conts = _tokens(gen, 15), [_tokens(gen, 4), _tokens(gen, 9), _tokens(gen, 2)]
    run = last_hidden_with_prefix(base, prefix, conts, pad_token_id=PAD)
    assert "differs from a full recompute" in packed_decoder.why_not(base)
    assert not run.packed and run.used_cache and base not in prefix_cache_unsupported
    want = torch.stack([_alone(base, prefix + c) for c in conts])
    assert (run.hidden - want).abs().max().item() <= fp32_tolerance(base, "hidden", "cross_impl")
    assert not last_hidden_with_prefix(base, prefix, conts, pad_token_id=PAD).packed


def test_a_cancelled_batch_stops_between_layers():
    base = _model("qwen3", layers=4)
    gen = torch.Generator().manual_seed(7)
    prefix, conts = _tokens(gen, 12), [_tokens(gen, 5), _tokens(gen, 8)]
    last_hidden_with_prefix(base, prefix, conts, pad_token_id=PAD)  # verified once
    calls: list[int] = []
    stop = ForwardStop()

    def count_and_cancel(_module, _args):
        calls.append(1)
        if len(calls) == 2:
            stop.stop()

    hook = base.layers[0].self_attn.o_proj.register_forward_pre_hook(count_and_cancel)
    base.layers[1].self_attn.o_proj.register_forward_pre_hook(count_and_cancel)
    try:
        with stoppable_forwards(stop), pytest.raises(ForwardCancelled):
            with torch.inference_mode():
                _, kv = packed_decoder.last_hidden(base, None, [prefix], keep_kv=True)
                packed_decoder.last_hidden(base, kv, conts)
    finally:
        hook.remove()
    assert len(calls) == 2  # layers 0 and 1 ran; layer 2 never started


def test_wrapped_or_quantized_projections_keep_the_plain_path():
    """A projection that is not a plain torch Linear (a quantized or wrapped layer, here a
    subclass) is never concatenated: the packed path says why and stays off."""

    class WrappedLinear(torch.nn.Linear):
        pass

    base = _model("qwen3", layers=2)
    old = base.layers[1].mlp.up_proj
    wrapped = WrappedLinear(old.in_features, old.out_features, bias=False)
    wrapped.weight = old.weight
    base.layers[1].mlp.up_proj = wrapped
    assert "not a plain torch Linear" in packed_decoder.why_not(base)
    gen = torch.Generator().manual_seed(9)
    prefix, conts = _tokens(gen, 11), [_tokens(gen, 5), _tokens(gen, 3)]
    run = last_hidden_with_prefix(base, prefix, conts, pad_token_id=PAD)
    assert not run.packed and run.used_cache
    assert wrapped.weight is old.weight  # untouched


def test_the_layer_walk_runs_once_per_model_and_dtype(monkeypatch):
    """`why_not` is asked on every plan and forward: the walk over the layers is done once per
    model and dtype, while a later `disable` still wins."""
    base = _model("qwen3", layers=2)
    walked = []
    walk = packed_decoder._structure_reason
    monkeypatch.setattr(
        packed_decoder, "_structure_reason", lambda m, dtype: walked.append(dtype) or walk(m, dtype)
    )
    for _ in range(3):
        assert packed_decoder.why_not(base) is None
    base.to(torch.bfloat16)
    assert packed_decoder.why_not(base) is None
    assert packed_decoder.why_not(base) is None
    assert walked == [torch.float32, torch.bfloat16]
    packed_decoder.disable(base, "differs from a full recompute")
    assert packed_decoder.why_not(base) == "differs from a full recompute"


def _with_compiled_kernels(base: torch.nn.Module) -> torch.nn.Module:
    why = elementwise.why_no_compiler()
    if why is not None:
        pytest.skip(why)
    packed_decoder.use_kernels(base, elementwise.compiled())
    return base


@pytest.mark.parametrize("kind", ["qwen3", "llama"])
def test_compiled_kernels_equal_each_sequence_alone(kind):
    """The elementwise chains compiled into fused kernels (COMPILE_KERNELS): the packed
    documents still equal each sequence through the model's own forward, and dynamo holds
    compiled code for every chain this model's layers use."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list as compiled_entries

    base = _with_compiled_kernels(_model(kind))
    gen = torch.Generator().manual_seed(5)
    prefix = _tokens(gen, 23)
    conts = [_tokens(gen, n) for n in (1, 14, 40, 6)]
    run = last_hidden_with_prefix(base, prefix, conts, pad_token_id=PAD)
    assert run.packed and run.used_cache
    chains = [elementwise.rms_scaled, elementwise.merged, elementwise.silu_gated]
    chains.append(elementwise.normed_rotated if kind == "qwen3" else elementwise.rotated)
    for chain in chains:
        assert compiled_entries(chain.__code__), f"{chain.__name__} was never compiled"
    want = torch.stack([_alone(base, prefix + c) for c in conts])
    diff = (run.hidden - want).abs().max().item()
    assert diff <= fp32_tolerance(base, "hidden", "cross_impl"), diff


def test_compiled_kernels_in_bfloat16_round_like_the_eager_ones():
    """bf16 with the fused kernels: as close to the float32 result as the eager chains are."""
    _, prefix, conts, want = _float32_case(seed=6)
    eager = _model("qwen3").to(torch.bfloat16)
    fused = _with_compiled_kernels(_model("qwen3").to(torch.bfloat16))
    assert packed_decoder.kernels_of(eager) is elementwise.EAGER
    got = last_hidden_with_prefix(fused, prefix, conts, pad_token_id=PAD)
    ref = last_hidden_with_prefix(eager, prefix, conts, pad_token_id=PAD)
    assert got.packed and ref.packed
    err = (got.hidden.float() - want).abs().max().item()
    err_eager = (ref.hidden.float() - want).abs().max().item()
    assert err <= max(1.5 * err_eager, 0.05), (err, err_eager)
