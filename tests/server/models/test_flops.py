"""The FLOPs a backend reports: its weight matmuls equal what torch's own FLOP counter sees the
model execute, and its attention term equals a by-hand count of query-key pairs."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from reranker_server.contracts import RerankInput
from reranker_server.models.flops import FlopModel

DOCS = [
    "Paris is the capital of France.",
    "Berlin",
    "apple banana orange fruit tree green",
    "London is a city in England with one river and many people.",
    "yes",
]


def _mm_flops(fn):
    """(result, FLOPs of the aten matmuls torch executed); sdpa's own products are not counted
    by torch's counter on this path, which is what lets the linear part be compared alone."""
    with FlopCounterMode(display=False) as counter:
        result = fn()
    counts = counter.get_flop_counts()["Global"]
    return result, sum(v for k, v in counts.items() if "mm" in str(k))


def test_one_unpadded_sequence_matches_torch_exactly(causal_backend, cross_backend):
    """No padding: the projection and MLP FLOPs equal torch's matmul count (less the 2-row
    yes/no head or the classifier, a few hundred FLOPs)."""
    for backend in (causal_backend, cross_backend):
        enc = backend.encode(RerankInput(query="capital?", documents=[DOCS[3]]))
        backend.score_mixed([enc.prefix_ids], enc.pairs)  # first use runs the checks
        scored, counted = _mm_flops(lambda b=backend, e=enc: b.score_mixed([e.prefix_ids], e.pairs))
        [forward] = scored.report.forwards
        linear = backend.flop_model.linear(
            [forward.real_tokens], last_layer_one_row=scored.report.last_layer_shortcut
        )
        assert 0 <= counted - linear <= 2 * backend.flop_model.hidden * 768 + 4096, (
            type(backend).__name__,
            linear,
            counted,
        )
        attention = forward.flops - linear
        assert attention == pytest.approx(
            backend.flop_model.attention(
                [forward.real_tokens], last_layer_one_row=scored.report.last_layer_shortcut
            )
        )


def test_the_prefix_path_counts_only_what_it_computed(causal_backend):
    """On the prefix cache each continuation runs its own tokens only; torch sees exactly that
    many weight matmuls (plus the prefix's own forward)."""
    enc = causal_backend.encode(RerankInput(query="which city is a capital?", documents=DOCS))
    groups = [[1, 4], [0, 2, 3]]
    causal_backend.score(enc.prefix_ids, enc.pairs, groups)
    scored, counted = _mm_flops(lambda: causal_backend.score(enc.prefix_ids, enc.pairs, groups))
    assert scored.report.prefix_kv and [f.path for f in scored.report.forwards] == [
        "prefix",
        "continuation",
        "continuation",
    ]
    fm = causal_backend.flop_model
    p = len(enc.prefix_ids)
    lengths = [[len(enc.pairs[i].input_ids) for i in g] for g in groups]
    # padded widths: torch multiplies padding too; the report counts real tokens only. The
    # packed path (on CPUs) multiplies the real tokens alone, and says so
    packed = [f.padded_tokens == f.real_tokens for f in scored.report.forwards[1:]]
    in_force = {s.name: s.in_force for s in causal_backend.shortcuts()}["packed_decoder"]
    assert packed == [in_force] * 2
    widths = [max(ls) for ls in lengths]
    # the packed path also runs the prefix's last layer for its last token alone
    padded = fm.linear([p], last_layer_one_row=in_force) + sum(
        fm.linear(ls if is_packed else [w] * len(ls), last_layer_one_row=True)
        for w, ls, is_packed in zip(widths, lengths, packed)
    )
    assert 0 <= counted - padded <= 8 * fm.hidden * 768
    real = fm.linear([p], last_layer_one_row=in_force) + sum(
        fm.linear(ls, last_layer_one_row=True) for ls in lengths
    )
    attention = fm.attention([p], last_layer_one_row=in_force) + sum(
        fm.attention(ls, context=p, last_layer_one_row=True) for ls in lengths
    )
    assert sum(f.flops for f in scored.report.forwards) == pytest.approx(real + attention)
    assert scored.report.prefix_tokens_reused == (len(DOCS) - 1) * p


def test_attended_pairs_by_hand() -> None:
    """Causal: token i of n after c cached tokens sees c + i keys; bidirectional: c + n."""
    causal = FlopModel(layers=1, hidden=8, q_dim=8, kv_dim=8, ffn=8, mlp_matrices=2, causal=True)
    mask = torch.ones(5, 3 + 5).tril(diagonal=3)  # 5 queries, 3 cached keys then 5 own
    assert causal.attended_keys(5, 3) == float(mask.sum())
    encoder = FlopModel(layers=1, hidden=8, q_dim=8, kv_dim=8, ffn=8, mlp_matrices=2, causal=False)
    assert encoder.attended_keys(5, 0) == 25
