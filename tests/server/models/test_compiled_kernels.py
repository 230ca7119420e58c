"""COMPILE_KERNELS: the packed decoder's elementwise chains compiled into fused CPU kernels."""

from __future__ import annotations

import pytest
import torch

from reranker_server.models import LoadOptions, ModelLoadError, elementwise, load_backend
from server_helpers import running_client, settings_for

QUERY = "what is the capital of France?"
DOCS = [
    "Paris is the capital and most populous city of France, on the Seine.",
    "The Eiffel Tower was built for the 1889 World's Fair in Paris.",
    "Berlin is the capital of Germany.",
    "Bananas are rich in potassium.",
]


def _rms(x, w, eps):
    return w * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)


def _rotated(x, cos, sin):
    half = x.shape[-1] // 2
    turned = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + turned * torch.cat([sin, sin], dim=-1)


REFERENCE = {  # the formulas written out, computed in float64
    "rms": _rms,
    "rotated": _rotated,
    "normed_rotated": lambda x, w, eps, cos, sin: _rotated(_rms(x, w, eps), cos, sin),
    "merged": lambda o1, l1, o2, l2: (
        (o1 * l1.exp().unsqueeze(-1) + o2 * l2.exp().unsqueeze(-1))
        / (l1.exp() + l2.exp()).unsqueeze(-1)
    ),
    "silu_gated": lambda g, u: g * torch.sigmoid(g) * u,
}


ROWS, HEADS, D = 40, 6, 32


def _chain_args(chain: str, dtype: torch.dtype, rows: int = ROWS) -> tuple:
    """Seeded inputs of `chain` in `dtype` (log-sum-exps stay float32, as the flash kernel
    returns them), cut to their first `rows` rows."""
    gen = torch.Generator().manual_seed(11)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    cos, sin = rand(ROWS, 1, D // 2), rand(ROWS, 1, D // 2)
    cos = torch.cat([cos, cos], dim=-1)  # rotate-half tables repeat their halves
    x = rand(ROWS, HEADS, D)
    args, per_row = {
        "rms": ((rand(ROWS, HEADS * D), 1.0 + 0.1 * rand(HEADS * D), 1e-6), (0,)),
        "rotated": ((x, cos, sin), (0, 1, 2)),
        "normed_rotated": ((x, 1.0 + 0.1 * rand(HEADS, D), 1e-6, cos, sin), (0, 3, 4)),
        "merged": ((x, rand(ROWS, HEADS), rand(ROWS, HEADS, D), rand(ROWS, HEADS)), (0, 1, 2, 3)),
        "silu_gated": ((rand(ROWS, 3 * D), rand(ROWS, 3 * D)), (0, 1)),
    }[chain]

    def cast(i: int, a: object) -> object:
        if not isinstance(a, torch.Tensor):
            return a
        a = a[:rows].clone() if i in per_row else a  # not a view: views compile apart
        if chain == "merged" and a.dim() == 2 and dtype != torch.float64:
            return a
        return a.to(dtype)

    return tuple(cast(i, a) for i, a in enumerate(args))


CHAINS = ["rms", "rotated", "normed_rotated", "merged", "silu_gated"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chain", CHAINS)
def test_each_compiled_chain_is_as_close_to_float64_as_the_eager_one(chain, dtype):
    """Each fused kernel against the same formula in float64 on the same inputs: within the
    eager chain's own distance from it (x1.5, or one unit of the dtype's rounding)."""
    if (why := elementwise.why_no_compiler()) is not None:
        pytest.skip(why)
    exact = REFERENCE[chain](*_chain_args(chain, torch.float64))
    eager = getattr(elementwise.EAGER, chain)(*_chain_args(chain, dtype))
    fused = getattr(elementwise.compiled(), chain)(*_chain_args(chain, dtype))
    assert fused.dtype == eager.dtype == dtype and fused.shape == eager.shape
    err_eager = (eager.double() - exact).abs().max().item()
    err_fused = (fused.double() - exact).abs().max().item()
    unit = torch.finfo(dtype).eps * exact.abs().max().item()
    assert err_fused <= max(1.5 * err_eager, unit), (err_fused, err_eager, unit)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chain", CHAINS)
def test_a_rows_values_do_not_depend_on_how_many_rows_share_the_call(chain, dtype):
    """A row gets the very same values from the compiled chain alone, with a few others or
    with many: a document scores the same in a batch as alone (the server's score check). A
    one-row call compiles no kernel of its own (dynamo would specialise a size of 1)."""
    if (why := elementwise.why_no_compiler()) is not None:
        pytest.skip(why)
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list as compiled_entries

    kernel = getattr(elementwise.compiled(), chain)
    code = getattr(elementwise, "rms_scaled" if chain == "rms" else chain).__code__
    every = kernel(*_chain_args(chain, dtype))
    kernels_before = len(compiled_entries(code))
    for rows in (1, 2, 5, 15, 16, 17):
        part = kernel(*_chain_args(chain, dtype, rows))
        assert torch.equal(part, every[:rows]), (rows, (part - every[:rows]).abs().max())
    assert len(compiled_entries(code)) == kernels_before


def test_a_server_with_compiled_kernels_scores_like_the_eager_one(tiny_qwen3_path):
    """The real app with COMPILE_KERNELS=true: /info says the fused kernels are in force, and
    its scores equal the default server's."""
    if (why := elementwise.why_no_compiler()) is not None:
        pytest.skip(why)
    body = {"query": QUERY, "documents": DOCS}
    scores = {}
    for compiled in (False, True):
        settings = settings_for(tiny_qwen3_path, compile_kernels=compiled)
        for client in running_client(settings):
            answer = client.post("/v1/rerank", json=body)
            assert answer.status_code == 200, answer.text
            results = answer.json()["results"]
            scores[compiled] = {r["index"]: r["relevance_score"] for r in results}
            cut = client.get("/info").json()["shortcuts"].get("compiled_kernels")
            assert cut == ({"in_force": True, "reason": None} if compiled else None), cut
    for i in range(len(DOCS)):
        assert abs(scores[True][i] - scores[False][i]) <= 1e-5, (i, scores)


def test_no_compiler_is_a_clear_load_error(tiny_qwen3_path, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-c++-compiler")
    with pytest.raises(ModelLoadError, match="compile_kernels: no C\\+\\+ compiler"):
        load_backend(LoadOptions(model=str(tiny_qwen3_path), device="cpu", compile_kernels=True))


def test_a_cross_encoder_says_the_kernels_do_not_apply(tiny_cross_encoder_path, caplog):
    """Cross-encoders have no packed decoder path: the load says so instead of staying silent."""
    if (why := elementwise.why_no_compiler()) is not None:
        pytest.skip(why)
    with caplog.at_level("WARNING", logger="reranker_server.models"):
        backend = load_backend(
            LoadOptions(model=str(tiny_cross_encoder_path), device="cpu", compile_kernels=True)
        )
    assert "compiled_kernels" not in {cut.name for cut in backend.shortcuts()}
    assert any("no packed decoder path" in r.getMessage() for r in caplog.records), caplog.text
