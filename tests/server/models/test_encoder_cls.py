"""[CLS]-only last layer: same logits as the plain forward, and the last layer really shrinks."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from reranker_server.models import encoder_cls
from tolerance import assert_scores_close


def _bert(path, attn: str) -> torch.nn.Module:
    return AutoModelForSequenceClassification.from_pretrained(
        path, dtype=torch.float32, attn_implementation=attn
    ).eval()


def _inputs(seed: int, lengths: list[int], vocab: int, types: bool = True) -> dict:
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros((len(lengths), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(5, vocab, (n,), generator=gen)
        mask[i, :n] = 1
    out = {"input_ids": ids, "attention_mask": mask}
    if types:
        tt = torch.zeros_like(ids)
        for i, n in enumerate(lengths):
            tt[i, n // 2 : n] = 1
        out["token_type_ids"] = tt
    return out


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_cls_only_equals_plain_forward_with_padding(tiny_cross_encoder_path, attn):
    model = _bert(tiny_cross_encoder_path, attn)
    inputs = _inputs(1, [5, 23, 2, 17, 9], model.config.vocab_size)
    with torch.inference_mode():
        want = model(**inputs).logits
        got, used = encoder_cls.classifier_logits(model, inputs)
        again, _ = encoder_cls.classifier_logits(
            model, _inputs(2, [3, 11], model.config.vocab_size)
        )
        want_again = model(**_inputs(2, [3, 11], model.config.vocab_size)).logits
    assert used  # the [CLS]-only path really ran (the caller's report says so)
    assert model not in encoder_cls.unsupported
    # the same modules on fewer rows: one implementation (tests/tolerance.py)
    assert_scores_close(got[:, 0].tolist(), want[:, 0].tolist(), model, "logit", "same_kernel")
    assert_scores_close(
        again[:, 0].tolist(), want_again[:, 0].tolist(), model, "logit", "same_kernel"
    )
    # each row equals that sequence alone, unpadded
    for i, n in enumerate([5, 23, 2, 17, 9]):
        alone = {k: v[i : i + 1, :n] for k, v in inputs.items()}
        with torch.inference_mode():
            ref = model(**alone).logits[0]
        assert_scores_close(got[i].tolist(), ref.tolist(), model, "logit", "same_kernel")


def test_last_layer_feed_forward_sees_only_the_cls_row(tiny_cross_encoder_path):
    model = _bert(tiny_cross_encoder_path, "sdpa")
    inputs = _inputs(3, [7, 12], model.config.vocab_size)
    encoder_cls.classifier_logits(model, inputs)  # first call: verified against the plain forward
    seen: list[tuple[int, ...]] = []
    layers = model.base_model.encoder.layer
    hooks = [
        layer.intermediate.register_forward_hook(lambda _m, a, _o: seen.append(tuple(a[0].shape)))
        for layer in layers
    ]
    try:
        encoder_cls.classifier_logits(model, inputs)
    finally:
        for h in hooks:
            h.remove()
    # every layer but the last runs the 12-wide batch; the last runs one row per sequence
    assert seen == [(2, 12, model.config.hidden_size)] * (len(layers) - 1) + [
        (2, 1, model.config.hidden_size)
    ]


def test_unsupported_model_falls_back_to_the_plain_forward(tiny_cross_encoder_path):
    from transformers import BertForTokenClassification

    model = BertForTokenClassification.from_pretrained(tiny_cross_encoder_path).eval()
    inputs = _inputs(4, [4, 6], model.config.vocab_size)
    with torch.inference_mode():
        want = model(**inputs).logits
    got, used = encoder_cls.classifier_logits(model, inputs)
    assert torch.equal(got, want) and not used
    assert "not a supported" in encoder_cls.unsupported[model]
    assert "not a supported" in encoder_cls.why_not_in_force(model)
