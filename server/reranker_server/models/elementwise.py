"""The packed decoder's elementwise chains, eager or compiled into fused CPU kernels.

Between its matrix products a decoder layer spends 2-5 passes over its activations per norm,
rotation, gated MLP activation and attention merge. With AMX the matrix products run at 2-3
TFLOP/s in bfloat16, so these passes weigh: compiled by `torch.compile` (inductor's C++ backend)
into one loop each, one layer's chains on 1,000 tokens of Qwen3-Reranker-0.6B's shapes took
6.2 ms instead of 16.9 (one thread, Intel Xeon with AMX), and a request's forwards 1.15x less
time on one thread, 1.07x on two workers, 1.05x in the server (docs/engine.md).

`EAGER` runs them as torch operations (the default). `compiled()` compiles the same functions,
so the two compute the same arithmetic and differ only in rounding (tested against each other
and against float64). Compiling needs a C++ compiler (`why_no_compiler`) and a writable cache
directory (TORCHINDUCTOR_CACHE_DIR), takes seconds on each function's first call, and bakes the
calling thread's torch thread count into the kernels: first calls belong on the model worker
threads, during warm-up.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


def rms_scaled(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """`weight * x / sqrt(mean(x^2) + eps)` along the last axis, without a float32 copy of x.

    The norm is accumulated in float32. In bfloat16 the per-row scale is applied as two
    bfloat16 terms, `x * hi + x * lo` with `hi + lo` the float32 scale, because a scale rounded
    to bfloat16 is one error shared by the whole row, which the next layer does not average
    out: measured on Qwen3-Reranker-0.6B's shapes, rounding it doubled the scores' distance to
    float32 (mean 4.3e-3 against the Hugging Face modules' 1.8e-3; 2.6e-3 this way, and 1.9e-3
    with a float32 product, which cost 25% of the forward)."""
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float32)
    scale = torch.rsqrt(norm.square_().div_(x.shape[-1]).add_(eps))
    if x.dtype == torch.float32:
        return (x * scale).mul_(weight)
    hi = scale.to(x.dtype)
    lo = (scale - hi.float()).to(x.dtype)
    return (x * hi).addcmul_(x, lo).mul_(weight)


def rotated(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (T, heads, d) rotate-half rotated, `x * cos + rotate_half(x) * sin`, without a rotated
    copy: first half x1 cos - x2 sin, second half x2 cos + x1 sin (`sin`: its first half)."""
    half = x.shape[-1] // 2
    out = x * cos
    out[..., :half].addcmul_(x[..., half:], sin, value=-1.0)
    out[..., half:].addcmul_(x[..., :half], sin)
    return out


def normed_rotated(
    x: torch.Tensor, weight: torch.Tensor, eps: float, cos: torch.Tensor, sin: torch.Tensor
) -> torch.Tensor:
    """Per-head RMSNorm of x (T, heads, d), then its rotation (Qwen3's q/k path)."""
    return rotated(rms_scaled(x, weight, eps), cos, sin)


def merged(
    o1: torch.Tensor, lse1: torch.Tensor, o2: torch.Tensor, lse2: torch.Tensor
) -> torch.Tensor:
    """Softmax-weighted sum of two attention outputs over disjoint key sets, from their LSEs:
    the first part's share of the softmax mass is sigmoid(lse1 - lse2)."""
    share = torch.sigmoid(lse1 - lse2).unsqueeze(-1)
    return (o1 * share.to(o1.dtype)).addcmul_(o2, (1.0 - share).to(o1.dtype))


def silu_gated(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """SwiGLU's `silu(gate) * up`."""
    return F.silu(gate).mul_(up)


@dataclass(frozen=True)
class Kernels:
    """One implementation of each chain."""

    rms: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
    rotated: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    normed_rotated: Callable[..., torch.Tensor]
    merged: Callable[..., torch.Tensor]
    silu_gated: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    compiled: bool


EAGER = Kernels(rms_scaled, rotated, normed_rotated, merged, silu_gated, compiled=False)

_compiled: Kernels | None = None
_compiling = threading.Lock()


def _compiled_for_every_row_count(
    fn: Callable[..., torch.Tensor], row_args: tuple[int, ...]
) -> Callable[..., torch.Tensor]:
    """`fn` compiled with dynamic shapes, one kernel for every row count, run on every call.

    So a row gets the very same values whatever the rows beside it: no row count runs eager,
    which rounds differently (in bfloat16 by up to 0.03 on these activations), and a
    document's rows go through the same kernels alone as in a batch. Dynamo would compile a
    kernel of its own for one row (it specialises a size of 1), possibly while serving: a
    one-row call runs the common kernel on its row twice and keeps the first (`row_args`: the
    positional arguments that hold one row per token)."""
    fused = torch.compile(fn, dynamic=True)

    def run(*args: Any) -> torch.Tensor:
        rows = args[0].shape[0]
        if rows != 1:
            return fused(*args) if rows else fn(*args)
        doubled = [torch.cat([a, a]) if i in row_args else a for i, a in enumerate(args)]
        return fused(*doubled)[:1]

    return run


def compiled() -> Kernels:
    """The chains through `torch.compile`; each compiles on its first call (per dtype).
    Where dynamo cannot compile a call (its recompile limit reached), that call runs eager."""
    global _compiled
    with _compiling:
        if _compiled is None:
            _compiled = Kernels(
                _compiled_for_every_row_count(rms_scaled, (0,)),
                _compiled_for_every_row_count(rotated, (0, 1, 2)),
                _compiled_for_every_row_count(normed_rotated, (0, 3, 4)),
                _compiled_for_every_row_count(merged, (0, 1, 2, 3)),
                _compiled_for_every_row_count(silu_gated, (0, 1)),
                compiled=True,
            )
        return _compiled


def why_no_compiler() -> str | None:
    """Why `compiled()` cannot build its kernels here (no C++ compiler), or None."""
    compiler = os.environ.get("CXX") or "g++"
    if shutil.which(compiler) is None:
        return (
            f"no C++ compiler ({compiler!r} is not on PATH; set CXX or install g++): "
            "torch.compile's CPU backend builds its kernels with one"
        )
    return None
