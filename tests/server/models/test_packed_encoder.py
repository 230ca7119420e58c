"""Packed (unpadded) cross-encoder forwards: each pair's logit equals the model's own forward of
that pair alone, for BERT (token types) and XLM-R (positions after the padding index), in fp32
and bf16; the backend reports no padding; a model that differs falls back to padded batches."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

from reranker_server.contracts import ForwardCancelled, ForwardStop, PairTokens, stoppable_forwards
from reranker_server.models import LoadOptions, load_backend, packed_encoder
from tolerance import assert_scores_close

LENGTHS = [5, 23, 2, 17, 9, 1, 31]


def _bert(path, dtype=torch.float32) -> torch.nn.Module:
    return AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype).eval()


def _xlmr(dtype=torch.float32) -> torch.nn.Module:
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=300,
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=96,
        max_position_embeddings=80,
        type_vocab_size=1,
        num_labels=1,
        pad_token_id=1,
    )
    model = XLMRobertaForSequenceClassification(config).eval()
    for p in model.parameters():  # spread the weights: random init leaves logits near 0
        torch.nn.init.normal_(p, std=0.2)
    return model.to(dtype)


def _pairs(seed: int, vocab: int, types: bool) -> tuple[list[list[int]], list[list[int]] | None]:
    gen = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(5, vocab, (n,), generator=gen).tolist() for n in LENGTHS]
    return seqs, ([[0] * (n // 2) + [1] * (n - n // 2) for n in LENGTHS] if types else None)


def _alone(model, seq: list[int], types: list[int] | None) -> torch.Tensor:
    """The model's own forward of one pair, unpadded: what each packed row must equal."""
    inputs = {"input_ids": torch.tensor([seq])}
    if types is not None:
        inputs["token_type_ids"] = torch.tensor([types])
    with torch.inference_mode():
        return model(**inputs).logits[0]


@pytest.mark.parametrize("kind", ["bert", "xlmr"])
def test_each_packed_pair_equals_the_pair_alone(tiny_cross_encoder_path, kind):
    model = _bert(tiny_cross_encoder_path) if kind == "bert" else _xlmr()
    seqs, types = _pairs(1, model.config.vocab_size, types=kind == "bert")
    assert packed_encoder.why_not(model) is None
    got = packed_encoder.packed_logits(model, seqs, types)
    assert got is not None and got.shape == (len(seqs), 1)
    for i, seq in enumerate(seqs):
        want = _alone(model, seq, types[i] if types else None)
        assert_scores_close(got[i].tolist(), want.tolist(), model, "logit", "same_kernel")
    # not one logit for the batch: the rows differ as the pairs do
    assert len({round(v, 4) for v in got[:, 0].tolist()}) == len(seqs)


@pytest.mark.parametrize("kind", ["bert", "xlmr"])
def test_bf16_packed_pairs_stay_near_fp32(tiny_cross_encoder_path, kind):
    model = _bert(tiny_cross_encoder_path) if kind == "bert" else _xlmr()
    half = (
        _bert(tiny_cross_encoder_path, torch.bfloat16) if kind == "bert" else _xlmr(torch.bfloat16)
    )
    seqs, types = _pairs(2, model.config.vocab_size, types=kind == "bert")
    got = packed_encoder.packed_logits(half, seqs, types)
    assert got is not None and got.dtype == torch.bfloat16
    want = torch.stack([_alone(model, s, types[i] if types else None) for i, s in enumerate(seqs)])
    scale = 1.0 + float(want.abs().max())
    assert float((got.float() - want).abs().max()) <= 0.05 * scale


def test_the_backend_runs_pairs_packed_and_reports_no_padding(tiny_cross_encoder_path):
    backend = load_backend(LoadOptions(model=str(tiny_cross_encoder_path), device="cpu"))
    model = backend.model
    gen = torch.Generator().manual_seed(3)
    prefix = [2, 40, 41]
    documents = [torch.randint(5, 200, (n,), generator=gen).tolist() for n in (4, 19, 11)]
    pairs = [PairTokens(input_ids=d, token_type_ids=[1] * len(d)) for d in documents]
    scored = backend.score_mixed([prefix] * 3, pairs)
    (forward,) = scored.report.forwards
    assert forward.padded_tokens == forward.real_tokens == 3 * len(prefix) + 4 + 19 + 11
    assert scored.report.last_layer_shortcut and packed_encoder.verified(model)
    assert not backend.pads_batches
    assert {(s.name, s.in_force) for s in backend.shortcuts()} >= {("packed_encoder", True)}
    for raw, pair in zip(scored.raw_scores, pairs, strict=True):
        types = [0] * len(prefix) + list(pair.token_type_ids)
        want = _alone(model, prefix + list(pair.input_ids), types)
        assert_scores_close([raw], want.tolist(), model, "logit", "same_kernel")


def test_a_model_that_differs_falls_back_to_padded_batches(tiny_cross_encoder_path, monkeypatch):
    backend = load_backend(LoadOptions(model=str(tiny_cross_encoder_path), device="cpu"))
    model = backend.model
    # positions off by one: a packing the model would not compute itself
    real = packed_encoder._positions
    monkeypatch.setattr(packed_encoder, "_positions", lambda emb, lengths: real(emb, lengths) + 1)
    pairs = [PairTokens(input_ids=[7, 8, 9, 10], token_type_ids=[1] * 4), PairTokens([11, 12])]
    scored = backend.score_mixed([[2, 3]] * 2, pairs)
    assert "differs from the plain forward" in packed_encoder.why_not(model)
    assert backend.pads_batches
    assert {(s.name, s.in_force) for s in backend.shortcuts()} >= {("packed_encoder", False)}
    (forward,) = scored.report.forwards
    assert forward.padded_tokens == 2 * 6  # the padded batch ran, and its scores came back
    want = _alone(model, [2, 3, 7, 8, 9, 10], [0, 0, 1, 1, 1, 1])
    assert_scores_close([scored.raw_scores[0]], want.tolist(), model, "logit", "same_kernel")


def test_what_the_packed_path_does_not_take(tiny_cross_encoder_path):
    assert "float32 or bfloat16" in packed_encoder.why_not(_bert(tiny_cross_encoder_path).half())
    relative = _xlmr()
    relative.config.position_embedding_type = "relative_key"
    assert "not absolute" in packed_encoder.why_not(relative)
    from transformers import BertForTokenClassification

    tagger = BertForTokenClassification.from_pretrained(tiny_cross_encoder_path).eval()
    assert "not a supported" in packed_encoder.why_not(tagger)


def test_an_input_the_model_cannot_take_fails_its_batch_and_leaves_the_path_on(
    tiny_cross_encoder_path,
):
    """Past the model's positions the padded forward fails too: the input's fault, not the
    path's, even on the first call."""
    backend = load_backend(LoadOptions(model=str(tiny_cross_encoder_path), device="cpu"))
    too_long = PairTokens(input_ids=[7] * (backend.model.config.max_position_embeddings + 1))
    with pytest.raises((IndexError, RuntimeError)):
        backend.score_mixed([[2]], [too_long])
    assert packed_encoder.why_not(backend.model) is None
    scored = backend.score_mixed([[2, 3]], [PairTokens(input_ids=[7, 8])])
    assert scored.report.forwards[0].padded_tokens == 4 and packed_encoder.verified(backend.model)


def test_a_cancelled_batch_stops_between_layers():
    model = _xlmr()  # three layers: a stop before the second and one before the last
    seqs, types = _pairs(4, model.config.vocab_size, types=False)
    calls: list[int] = []
    stop = ForwardStop()

    def count_and_cancel(_module, _args):
        calls.append(1)
        stop.stop()  # the batch's last client leaves during the first layer

    hooks = [
        layer.intermediate.register_forward_pre_hook(count_and_cancel)
        for layer in model.base_model.encoder.layer
    ]
    try:
        with stoppable_forwards(stop), pytest.raises(ForwardCancelled):
            packed_encoder.packed_logits(model, seqs, types)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(calls) == 1  # the first layer ran; the second never started
