"""The float32 tolerance helper (tests/tolerance.py): its bounds cover what two correct
implementations were measured to differ by, stay far below what a real scoring bug moves, its
head-size assumption holds for the tiny models, and a prompt one token off is still caught."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from tolerance import HEAD_TERM, ModelDims, fp32_cross_impl_tolerance, fp32_tolerance, max_abs_diff

sys.path.insert(0, str(Path(__file__).parent / "vllm"))
from vllm_helpers import CROSS_SHAPE, DOCUMENTS, QUERY, QWEN3_SHAPE  # noqa: E402

ONE_TOKEN_OFF = 1e-2  # what a prompt one token off moved scores by (notes/cpus-and-speed.md)
INTEL_AMX_MEASURED = 1.28e-5  # ours vs vLLM, tiny cross-encoder hidden 256, Intel AMX (issue 19)


def _dims(shape: dict, causal: bool) -> ModelDims:
    heads = shape["num_heads"]
    return ModelDims(
        hidden=shape["hidden_size"],
        intermediate=shape["intermediate_size"],
        layers=shape["num_layers"],
        heads=heads,
        head_dim=shape.get("head_dim", shape["hidden_size"] // heads),
        causal=causal,
    )


def test_the_bound_covers_the_intel_measurement_and_stays_far_below_a_bug() -> None:
    cross = fp32_cross_impl_tolerance(_dims(CROSS_SHAPE, causal=False))
    assert cross > 10 * INTEL_AMX_MEASURED, cross
    for dims in (_dims(CROSS_SHAPE, False), _dims(QWEN3_SHAPE, True)):
        for kind in ("probability", "hidden"):
            assert fp32_cross_impl_tolerance(dims, kind) < 1e-3
        assert fp32_cross_impl_tolerance(dims) < ONE_TOKEN_OFF / 20
        # one implementation against itself is held tighter than two different ones
        assert fp32_tolerance(dims, "probability", "same_kernel") < cross


def test_the_bound_grows_with_the_reductions_the_layers_and_the_logits() -> None:
    base = ModelDims(hidden=64, intermediate=128, layers=2, heads=4, head_dim=16, causal=True)
    wider = ModelDims(hidden=256, intermediate=512, layers=2, heads=4, head_dim=64, causal=True)
    deeper = ModelDims(hidden=64, intermediate=128, layers=8, heads=4, head_dim=16, causal=True)
    one_logit = ModelDims(hidden=64, intermediate=128, layers=2, heads=4, head_dim=16, causal=False)
    t = fp32_cross_impl_tolerance
    assert t(base) < t(deeper) < t(wider)
    assert t(one_logit) < t(base)  # a yes/no score is the difference of two logits
    assert t(base, "probability") == pytest.approx(t(base, "logit") / 4)  # sigmoid slope <= 1/4
    # u * LAMBDA * sqrt(sum K) * HEAD_TERM * hidden * (two logits) * (sigmoid slope)
    want = 2**-24 * 4 * math.sqrt(sum(base.reductions())) * 0.2 * 64 * 2 / 4
    assert t(base) == pytest.approx(want)


def test_dims_are_read_from_a_model_dir(tiny_qwen3_path: Path, tiny_cross_encoder_path) -> None:
    q = ModelDims.of(tiny_qwen3_path)
    assert (q.hidden, q.layers, q.head_dim, q.causal) == (64, 2, 16, True)
    c = ModelDims.of(tiny_cross_encoder_path)
    assert (c.hidden, c.layers, c.causal) == (64, 2, False)
    for path in (tiny_qwen3_path, tiny_cross_encoder_path):
        assert fp32_cross_impl_tolerance(path) < 1e-4  # the hidden-64 models: tighter still


def _head_terms_causal(path: Path) -> float:
    """Largest mean |w_k h_k| of the yes/no rows of the lm head over the test prompts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reranker_server.contracts import RerankInput
    from reranker_server.models import LoadOptions, load_backend

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    rows = model.lm_head.weight[[tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")]]
    backend = load_backend(LoadOptions(model=str(path), device="cpu", dtype="float32"))
    enc = backend.encode(RerankInput(query=QUERY, documents=DOCUMENTS))  # the prompts scored
    worst = 0.0
    for pair in enc.pairs:
        ids = torch.tensor([[*enc.prefix_ids, *pair.input_ids]])
        with torch.no_grad():
            h = model.model(input_ids=ids).last_hidden_state[0, -1]
        worst = max(worst, (rows.abs() @ h.abs()).max().item() / h.numel())
    return worst


def _head_terms_cross(path: Path) -> float:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
    worst = 0.0
    for doc in DOCUMENTS:
        with torch.no_grad():
            pooled = model.bert(**tok([QUERY], [doc], return_tensors="pt")).pooler_output[0]
        worst = max(
            worst, (model.classifier.weight.abs() @ pooled.abs()).max().item() / pooled.numel()
        )
    return worst


def test_the_head_size_assumption_holds_for_the_tiny_models(tmp_path: Path) -> None:
    """HEAD_TERM bounds sum_k |w_k h_k| / hidden of the scoring head (the logit's size without
    cancellation) for the shapes the tests compare across implementations."""
    from reranker_devtools.tiny_models import build_cross_encoder, build_qwen3_reranker

    qwen = build_qwen3_reranker(tmp_path / "q", seed=3, **QWEN3_SHAPE)
    cross = build_cross_encoder(tmp_path / "c", seed=3, **CROSS_SHAPE)
    for measured in (_head_terms_causal(qwen), _head_terms_cross(cross)):
        print(f"mean |w_k h_k| of the head: {measured:.3f} (HEAD_TERM {HEAD_TERM})")
        assert 0.05 < measured <= HEAD_TERM, measured


def test_a_prompt_one_token_off_is_caught_by_a_wide_margin(tmp_path: Path) -> None:
    """Our backend on the hidden-256 Qwen3 the vLLM comparisons use (the loosest bound): dropping
    one token of the template (the last of the prompt) or a wrong template moves the scores
    far beyond the cross-implementation tolerance, so those comparisons still catch such bugs."""
    from reranker_devtools.tiny_models import build_qwen3_reranker
    from reranker_server.contracts import PairTokens, RerankInput
    from reranker_server.models import LoadOptions, load_backend

    path = build_qwen3_reranker(tmp_path / "q", seed=3, **QWEN3_SHAPE)
    backend = load_backend(LoadOptions(model=str(path), device="cpu", dtype="float32"))
    tol = fp32_cross_impl_tolerance(path)

    def probabilities(prefix, pairs) -> list[float]:
        raw = backend.score_mixed([tuple(prefix)] * len(pairs), pairs).raw_scores
        return [1 / (1 + math.exp(-r)) for r in raw]

    enc = backend.encode(RerankInput(query=QUERY, documents=DOCUMENTS))
    right = probabilities(enc.prefix_ids, enc.pairs)
    clipped = [PairTokens(input_ids=p.input_ids[:-1]) for p in enc.pairs]
    other = backend.encode(RerankInput(query=QUERY, documents=DOCUMENTS, instruction="Other"))
    moved = [
        max_abs_diff(probabilities(enc.prefix_ids, clipped), right),  # last token dropped
        max_abs_diff(probabilities(enc.prefix_ids[1:], enc.pairs), right),  # first dropped
        max_abs_diff(probabilities(other.prefix_ids, other.pairs), right),
    ]
    print(f"tolerance {tol:.2g}; a wrong prompt moved the scores by {moved}")
    assert min(moved) > 20 * tol
