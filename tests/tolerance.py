"""How far apart two correct float32 scorings of the same model may be, and why.

Error model. A float32 matmul output is a sum of K products; every addition rounds with a
relative error of at most u = 2**-24 (float32's unit roundoff). Two correct implementations
(this server, vLLM, Infinity, a plain transformers forward) run different kernels and blockings
(oneDNN/AMX tiles on Intel, AVX-512 paths on AMD, another order in vLLM's own kernels), so
their sums round differently. Rounding errors are independent and add in quadrature: a sum of
K terms is off by LAMBDA * sqrt(K) * u * sum_k |a_k b_k| at most, exceeded with probability
< 2 exp(-LAMBDA**2 / 2) (Higham & Mary, "A new approach to probabilistic rounding error
analysis", SISC 2019; LAMBDA = 4: < 7e-4). A forward chains such reductions: per layer the
attention projections (K = hidden; heads x head_dim for the output projection), the attention
scores (K = head_dim) and weighted values (K = tokens attended), the MLP (K = hidden for up and
gate, K = intermediate for down); then the scoring head (K = hidden; BERT's pooler once more).
The pre/post norms rescale every layer's output, so the layers' relative errors add (in
quadrature, being independent) instead of multiplying:

    relative error of the head's input   eps = LAMBDA * u * sqrt(sum_i K_i)

The head turns it into an absolute error of the logit of at most eps * sum_k |w_k h_k|, the
logit's size without cancellation: about hidden * E|w| * E|h|, which is below
HEAD_TERM * hidden for the tiny test models (N(0, 0.2) weights: E|w| = 0.16; normalised hidden
states: E|h| <= 1; measured by tests/test_tolerance.py). A yes/no causal reranker scores the
difference of two logits (twice the error); a probability is the sigmoid of that logit, whose
slope is at most 1/4.

A component of a final (normalised) hidden state is off by eps * HIDDEN_SCALE at most (the
tiny models' |h_k| stay below 4.5).

`same_kernel`: one implementation against itself (batched against one by one, padded against
unpadded, the server's [CLS]-only and last-token shortcuts against the plain forward of the same
modules, the same request answered twice). The kernels and their reduction order are the same;
only row counts, padding and masks differ, so nearly every reduction rounds identically: the
bound drops the confidence factor (LAMBDA = 1), a one-sigma bound of the whole chain. A prefix
KV cache reads keys and values through another attention path than a whole forward: it is
compared as `cross_impl`.

What it buys: for the hidden-256, 2-layer test models the cross-implementation bound is
2.2e-4 (cross-encoder) and 4.5e-4 (Qwen3) on a probability, 17x the 1.28e-5 measured between
two implementations on an Intel AMX CPU (5e-6 on AMD EPYC), and >= 20x below the ~1e-2 a prompt
one token off moves a score (tests/test_tolerance.py asserts both).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

U = 2.0**-24  # float32 unit roundoff (half the machine epsilon 2**-23)
LAMBDA = 4.0  # probabilistic bound's confidence factor (Higham & Mary 2019)
HEAD_TERM = 0.2  # bound on the mean |w_k h_k| of the tiny test models' scoring heads
HIDDEN_SCALE = 8.0  # bound on |h_k| of the tiny test models' final (normalised) hidden states
SEQ_LEN = 512  # tokens attended: every test prompt is shorter
SIGMOID_SLOPE = 0.25  # max of d sigmoid(x) / dx

Mode = Literal["cross_impl", "same_kernel"]
# probability: the 0..1 relevance score; logit: the raw score (yes - no logit for a causal
# reranker, the classifier's logit for a cross-encoder); hidden: one component of the final
# hidden state
Kind = Literal["probability", "logit", "hidden"]


@dataclass(frozen=True)
class ModelDims:
    """The sizes the rounding error grows with, from a transformers config."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    head_dim: int
    causal: bool  # a yes/no causal reranker: the score is the difference of two logits

    @classmethod
    def of(cls, model: Any) -> ModelDims:
        """From a model dir (its config.json), a config dict, a transformers config or model."""
        if isinstance(model, ModelDims):
            return model
        if isinstance(model, (str, Path)):
            model = json.loads((Path(model) / "config.json").read_text())
        model = getattr(model, "config", model)  # a transformers model
        cfg = model if isinstance(model, Mapping) else model.to_dict()
        hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
        return cls(
            hidden=hidden,
            intermediate=cfg["intermediate_size"],
            layers=cfg["num_hidden_layers"],
            heads=heads,
            head_dim=cfg.get("head_dim") or hidden // heads,
            causal=cfg.get("model_type") != "bert",
        )

    def reductions(self, seq_len: int = SEQ_LEN) -> list[int]:
        """The reduction length K of every matmul on the path from the input to one score."""
        attn_width = self.heads * self.head_dim
        per_layer = [self.hidden] * 3 + [attn_width, self.head_dim, seq_len]  # q k v, o, QK, AV
        per_layer += [self.hidden] * (2 if self.causal else 1) + [self.intermediate]  # MLP
        head = [self.hidden] if self.causal else [self.hidden, self.hidden]  # lm_head / pooler+cls
        return per_layer * self.layers + head


def relative_error(model: Any, mode: Mode = "cross_impl", seq_len: int = SEQ_LEN) -> float:
    """Bound on the relative error of the scoring head's input (see the module's model)."""
    ks = ModelDims.of(model).reductions(seq_len)
    if mode == "cross_impl":
        return LAMBDA * U * math.sqrt(sum(ks))
    if mode == "same_kernel":
        return U * math.sqrt(sum(ks))
    raise ValueError(f"mode: cross_impl or same_kernel, got {mode!r}")


def fp32_tolerance(
    model: Any, kind: Kind = "probability", mode: Mode = "cross_impl", *, seq_len: int = SEQ_LEN
) -> float:
    """Largest absolute difference two correct float32 scorings of `model` (a model dir, config
    or ModelDims) may show for one score of `kind`, compared in `mode`."""
    eps = relative_error(model, mode, seq_len)
    if kind == "hidden":
        return eps * HIDDEN_SCALE
    dims = ModelDims.of(model)
    logit = eps * HEAD_TERM * dims.hidden * (2 if dims.causal else 1)
    if kind == "logit":
        return logit
    if kind == "probability":
        return logit * SIGMOID_SLOPE
    raise ValueError(f"kind: probability, logit or hidden, got {kind!r}")


def fp32_cross_impl_tolerance(model: Any, kind: Kind = "probability") -> float:
    """Two different correct float32 implementations (ours vs vLLM, Infinity, transformers)."""
    return fp32_tolerance(model, kind, "cross_impl")


def max_abs_diff(a: Sequence[float], b: Sequence[float]) -> float:
    """Largest |a_i - b_i| (same length required)."""
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def assert_scores_close(
    got: Sequence[float],
    want: Sequence[float],
    model: Any,
    kind: Kind = "probability",
    mode: Mode = "cross_impl",
) -> None:
    """Assert `got` and `want` agree within the model's float32 tolerance, with the figures."""
    diff, tol = max_abs_diff(got, want), fp32_tolerance(model, kind, mode)
    assert diff <= tol, f"max |diff| {diff:.3g} > {mode} {kind} tolerance {tol:.3g}: {got} {want}"
