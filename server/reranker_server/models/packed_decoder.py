"""Documents on a shared prefix's KV cache as one packed forward (no padding), cascade attention.

The plain path (`prefix_kv`) runs the Hugging Face decoder on a right-padded batch whose cache
holds the prefix keys/values expanded to the batch: every linear layer computes the padding,
every layer copies the prefix K/V next to each document's own, and attention runs one masked
kernel over `prefix + document` per row. Here the decoder layers are computed from the same
modules' weights in a form made for this one job (on a CPU, where each of those costs counts):

- the documents' tokens are packed into one (tokens, hidden) matrix: the linear layers, norms
  and MLP see real tokens only; q/k/v and gate/up each run as one GEMM (the weights are
  concatenated once and the original modules keep views of them: no extra memory);
- attention is split in two and merged by log-sum-exp (cascade attention, as FlashInfer does on
  GPUs): all the documents' queries against the prefix as one kernel call with no mask and no
  copy of the prefix K/V, and each document's queries against its own tokens causally, one
  call per document on views of the packed rows (torch's CPU flash kernel reads strided views
  and maps query heads onto shared KV heads itself);
- norms, rotary embedding and the merge in few passes over the data (the Hugging Face modules
  spend five to six elementwise kernels on each norm and rotation);
- the last layer runs for each document's scored token only (as `last_token` does);
- the prefix itself runs the same way (one sequence, no context), keeping its keys/values.

On Qwen3-Reranker-0.6B's shapes in bfloat16 (Intel Xeon with AMX, 2 vCPUs) one request of 8
documents (~200 + ~950 tokens) took 1.4-1.7 s on the plain path and 0.8-1.0 s here.

Supported: the plain pre-norm decoders `last_token` supports (Qwen3, Qwen2, Llama: RMSNorm,
optional q/k norms and q/k/v biases, rotate-half rotary, gated MLP, no sliding window) in
float32 or bfloat16 on a CPU with torch's flash kernel, which returns the log-sum-exp the merge
needs. Callers verify the first result per model against a full recompute (`prefix_kv`) and
take the plain path where it differs.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reranker_server.contracts import forward_checkpoint
from reranker_server.models import elementwise, last_token
from reranker_server.models.elementwise import Kernels

# model -> why the packed path is off for it (it then takes the plain cached path)
packed_unsupported: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()


def _flash_op():
    return getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def why_not(base_model: torch.nn.Module) -> str | None:
    """Why the packed path does not run for `base_model`, or None when it does.

    Asked on every plan and every forward: the layer-by-layer part is computed once per model
    (`_structure_reasons`); the disabled flag, device and dtype are read each time."""
    if base_model in packed_unsupported:
        return packed_unsupported[base_model]
    param = next(base_model.parameters())
    if param.device.type != "cpu" or param.dtype not in (torch.float32, torch.bfloat16):
        return f"runs on CPUs in float32 or bfloat16 (here {param.device.type}, {param.dtype})"
    known = _structure_reasons.setdefault(base_model, {})
    if param.dtype not in known:
        known[param.dtype] = _structure_reason(base_model, param.dtype)
    return known[param.dtype]


# model -> its dtypes' `_structure_reason`s
_structure_reasons: weakref.WeakKeyDictionary[torch.nn.Module, dict[torch.dtype, str | None]] = (
    weakref.WeakKeyDictionary()
)


def _structure_reason(base_model: torch.nn.Module, dtype: torch.dtype) -> str | None:
    """Why `base_model`'s layers are not ones the packed path computes (None: they are)."""
    if not last_token.supported(base_model):
        return "the model's layers are not ones this path computes"
    if _flash_op() is None or getattr(base_model, "rotary_emb", None) is None:
        return "needs torch's CPU flash-attention kernel and the model's rotary embedding"
    for layer in base_model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        if getattr(attn, "sliding_window", None) is not None:
            return "sliding-window attention"
        if not all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj", "act_fn")):
            return "the MLP is not a gated one"
        linears = (attn.q_proj, attn.k_proj, attn.v_proj, mlp.gate_proj, mlp.up_proj)
        if not all(_plain_linear(m, dtype) for m in linears):
            # quantized or wrapped layers: their weights are not ones to concatenate
            return "a projection is not a plain torch Linear in the model's dtype"
        norms = [layer.input_layernorm, layer.post_attention_layernorm]
        norms += [getattr(attn, n) for n in ("q_norm", "k_norm") if hasattr(attn, n)]
        if not all(_rms_parameters(n) is not None for n in norms):
            return "a norm is not an RMSNorm"
    return None


def _plain_linear(module: torch.nn.Module, dtype: torch.dtype) -> bool:
    weight = getattr(module, "weight", None)
    return (
        type(module) is torch.nn.Linear
        and type(weight) is torch.nn.Parameter
        and weight.dtype == dtype
    )


def supported(base_model: torch.nn.Module) -> bool:
    """Whether `base_model` has the structure this path computes, on a CPU with the kernel."""
    return why_not(base_model) is None


def disable(base_model: torch.nn.Module, reason: str) -> None:
    """Turn the packed path off for `base_model` (it then takes the plain cached path)."""
    packed_unsupported[base_model] = reason


def _rms_parameters(norm: torch.nn.Module) -> tuple[torch.Tensor, float] | None:
    """(weight, eps) of an RMSNorm computing `weight * x / rms(x)`, else None."""
    weight = getattr(norm, "weight", None)
    eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))
    if not isinstance(weight, torch.Tensor) or not isinstance(eps, float):
        return None
    if not type(norm).__name__.endswith("RMSNorm"):
        return None
    return weight, eps


def _rms(norm: torch.nn.Module, x: torch.Tensor, kernels: Kernels) -> torch.Tensor:
    """The module's RMSNorm of x along the last axis."""
    weight, eps = _rms_parameters(norm)  # type: ignore[misc]  # checked by `supported`
    return kernels.rms(x, weight, eps)


# model -> the elementwise kernels its forwards use (`elementwise.EAGER` unless set)
_kernels: weakref.WeakKeyDictionary[torch.nn.Module, Kernels] = weakref.WeakKeyDictionary()


def use_kernels(base_model: torch.nn.Module, kernels: Kernels) -> None:
    """Run `base_model`'s packed forwards with `kernels` (e.g. `elementwise.compiled()`)."""
    _kernels[base_model] = kernels


def kernels_of(base_model: torch.nn.Module) -> Kernels:
    """The elementwise kernels `base_model`'s packed forwards use."""
    return _kernels.get(base_model, elementwise.EAGER)


@dataclass(frozen=True)
class _Fused:
    """One layer's concatenated projections: q|k|v and gate|up (weights shared with the
    modules)."""

    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor | None
    split: tuple[int, int, int]
    gate_up_weight: torch.Tensor
    intermediate: int
    qk_norm: tuple[torch.Tensor, float] | None  # q_norm|k_norm per head, one pass for both


_fused: weakref.WeakKeyDictionary[torch.nn.Module, _Fused] = weakref.WeakKeyDictionary()
_fusing = threading.Lock()


@torch.inference_mode(False)
def _concatenate(linears: Sequence[torch.nn.Linear]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The linears' weights (and biases) as one matrix; each module's parameters become views of
    it, so the model holds them once (ordinary tensors, even when called in inference mode)."""
    weight = torch.cat([m.weight.detach() for m in linears], dim=0)
    biases = [m.bias for m in linears]
    bias = None
    if any(b is not None for b in biases):
        bias = torch.cat(
            [
                b.detach() if b is not None else weight.new_zeros(m.weight.shape[0])
                for m, b in zip(linears, biases, strict=True)
            ]
        )
    start = 0
    for m in linears:
        rows = m.weight.shape[0]
        m.weight = torch.nn.Parameter(weight[start : start + rows], requires_grad=False)
        if m.bias is not None and bias is not None:
            m.bias = torch.nn.Parameter(bias[start : start + rows], requires_grad=False)
        start += rows
    return weight, bias


def _layer_weights(layer: torch.nn.Module) -> _Fused:
    fused = _fused.get(layer)
    if fused is None or not _current(layer, fused):
        with _fusing:  # model threads may meet here on first use
            fused = _fused.get(layer)
            if fused is None or not _current(layer, fused):
                fused = _fuse(layer)
                _fused[layer] = fused
    return fused


def _current(layer: torch.nn.Module, fused: _Fused) -> bool:
    """Whether the module still holds the fused weights (not replaced since, e.g. by a dtype
    change)."""
    return layer.self_attn.q_proj.weight.data_ptr() == fused.qkv_weight.data_ptr()


def _fuse(layer: torch.nn.Module) -> _Fused:
    """The layer's concatenated projections (its modules then view them)."""
    attn, mlp = layer.self_attn, layer.mlp
    projections = (attn.q_proj, attn.k_proj, attn.v_proj)
    split = (*(int(m.weight.shape[0]) for m in projections),)
    qkv_weight, qkv_bias = _concatenate(projections)
    gate_up_weight, _ = _concatenate((mlp.gate_proj, mlp.up_proj))
    return _Fused(
        qkv_weight,
        qkv_bias,
        split,  # type: ignore[arg-type]
        gate_up_weight,
        int(mlp.gate_proj.weight.shape[0]),
        _stacked_qk_norm(attn, split),  # type: ignore[arg-type]
    )


def _stacked_qk_norm(
    attn: torch.nn.Module, split: tuple[int, int, int]
) -> tuple[torch.Tensor, float] | None:
    """(weights (Hq + Hkv, d), eps) normalising q and k heads in one pass (Qwen3), or None."""
    q_norm, k_norm = getattr(attn, "q_norm", None), getattr(attn, "k_norm", None)
    if q_norm is None or k_norm is None:
        return None
    (q_weight, q_eps), (k_weight, k_eps) = _rms_parameters(q_norm), _rms_parameters(k_norm)  # type: ignore[misc]
    if q_eps != k_eps:
        return None
    d = attn.head_dim
    heads = (split[0] // d, split[1] // d)
    weight = torch.cat(
        [q_weight.detach().expand(heads[0], d), k_weight.detach().expand(heads[1], d)]
    )
    return weight, q_eps


KEY_ALIGN = 16
"""Key counts the flash kernel is fast on: torch 2.13's CPU kernel ran 1.2-2.6x slower when the
number of keys was not a multiple of 16 (bfloat16, AMX: 979 queries on 202 keys 9.8 ms, on 208
keys 3.0 ms). Keys are extended to a multiple where that is free of side effects."""


def _aligned(n: int) -> int:
    return -(-n // KEY_ALIGN) * KEY_ALIGN


@dataclass(frozen=True)
class _Packing:
    """Where each document's tokens sit in the packed matrix."""

    bounds: tuple[tuple[int, int], ...]  # (start, end) of each document's rows
    last: torch.Tensor  # (B,) row of each document's last token
    within: torch.Tensor  # (T,) each token's position inside its document
    tail: int  # zero rows appended to keys/values so every document's key view can be aligned

    @classmethod
    def of(cls, lengths: Sequence[int], device: torch.device) -> _Packing:
        ends = list(itertools.accumulate(lengths))
        starts = [end - n for end, n in zip(ends, lengths, strict=True)]
        within = torch.cat([torch.arange(n) for n in lengths])
        reach = max(start + _aligned(n) for start, n in zip(starts, lengths, strict=True))
        return cls(
            tuple(zip(starts, ends, strict=True)),
            torch.as_tensor([end - 1 for end in ends], dtype=torch.long, device=device),
            within.to(device),
            reach - ends[-1],
        )

    def extended(self, x: torch.Tensor) -> torch.Tensor:
        """Keys or values (T, heads, d) with `tail` zero rows after them."""
        return F.pad(x, (0, 0, 0, 0, 0, self.tail)) if self.tail else x


@dataclass(frozen=True)
class PrefixKV:
    """A prefix's keys/values per layer, (1, Hkv, aligned length, d), zero past `length`, and
    the additive mask (0 / -inf, (1, 1, 1, aligned length)) that hides those zero keys."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]
    length: int
    mask: torch.Tensor | None  # None when the length is aligned already


@dataclass(frozen=True)
class _Rotary:
    """Rotary tables of the packed tokens: cos (T, 1, d) and the first half of sin (T, 1, d/2)
    (Hugging Face's tables repeat their first half, as rotate-half rotary requires)."""

    cos: torch.Tensor
    sin: torch.Tensor

    @classmethod
    def of(cls, cos: torch.Tensor, sin: torch.Tensor) -> _Rotary:
        half = sin.shape[-1] // 2
        if not (
            torch.equal(cos[..., :half], cos[..., half:])
            and torch.equal(sin[..., :half], sin[..., half:])
        ):
            raise ValueError("rotary tables: halves differ; not rotate-half rotary")
        return cls(cos.unsqueeze(1), sin[..., :half].unsqueeze(1))

    def rows(self, index: torch.Tensor) -> _Rotary:
        return _Rotary(self.cos[index], self.sin[index])

    def apply(self, x: torch.Tensor, kernels: Kernels) -> torch.Tensor:
        """x (T, heads, d) rotated (`elementwise.rotated`)."""
        return kernels.rotated(x, self.cos, self.sin)

    def apply_normed(
        self, x: torch.Tensor, norm: tuple[torch.Tensor, float], kernels: Kernels
    ) -> torch.Tensor:
        """x (T, heads, d) per-head normed by `norm` (weight, eps), then rotated."""
        return kernels.normed_rotated(x, *norm, self.cos, self.sin)


def _heads_first(x: torch.Tensor) -> torch.Tensor:
    """(T, heads, d) -> (1, heads, T, d), a view: the kernel's layout, read through strides."""
    return x.transpose(0, 1).unsqueeze(0)


def _on_prefix(
    q: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every query against the whole prefix: (out (T, H, d), lse (T, H)). All the documents'
    queries are one sequence here; the prefix K/V (1, Hkv, P, d) is read as is (the kernel maps
    query heads onto shared KV heads itself); `mask` hides its alignment padding."""
    out, lse = _flash_op()(_heads_first(q), keys, values, attn_mask=mask, scale=scale)
    return out[0].transpose(0, 1), lse[0].transpose(0, 1)


def _on_own(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, packing: _Packing, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every query against its own document's tokens up to itself: (out (T, H, d), lse (T, H)),
    one causal kernel call per document on views of the packed rows (no padding, no copies).

    Each document's key view runs on past its end to an aligned length (into the next
    document, or `packing.tail`'s zero rows): the causal mask, aligned top-left, never lets one
    of its queries reach those keys, and the kernel is faster on aligned key counts."""
    return _per_document(
        q,
        packing.extended(k),
        packing.extended(v),
        [((start, end), (start, start + _aligned(end - start))) for start, end in packing.bounds],
        scale,
        causal=True,
    )


def _last_on_own(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, packing: _Packing, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each document's last query (B, H, d) against all of its own keys: (out, lse) (B, H, ...)."""
    ranges = [((row, row + 1), bounds) for row, bounds in enumerate(packing.bounds)]
    return _per_document(q, k, v, ranges, scale, causal=False)


def _per_document(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    ranges: Sequence[tuple[tuple[int, int], tuple[int, int]]],
    scale: float,
    *,
    causal: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One kernel call per document: its query rows against its key rows ((q range, key range)
    each), on strided views; the outputs and LSEs concatenated in row order."""
    outs, lses = [], []
    for (q_start, q_end), (k_start, k_end) in ranges:
        out, lse = _flash_op()(
            _heads_first(q[q_start:q_end]),
            _heads_first(k[k_start:k_end]),
            _heads_first(v[k_start:k_end]),
            is_causal=causal,
            scale=scale,
        )
        outs.append(out[0].transpose(0, 1))
        lses.append(lse[0].transpose(0, 1))
    return torch.cat(outs), torch.cat(lses)


def _projections(
    layer: torch.nn.Module, x: torch.Tensor, fused: _Fused, rotary: _Rotary, kernels: Kernels
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q, k, v) (T, heads, d) of packed tokens x (T, hidden): normed where the layer norms
    them, q and k rotated (one pass over both heads' sets where the norms allow it)."""
    attn = layer.self_attn
    d = attn.head_dim
    t = x.shape[0]
    nq, nk, _ = fused.split
    qkv = F.linear(x, fused.qkv_weight, fused.qkv_bias)
    if fused.qk_norm is not None:
        qk = rotary.apply_normed(qkv[:, : nq + nk].view(t, -1, d), fused.qk_norm, kernels)
        q, k = qk[:, : nq // d], qk[:, nq // d :]
    else:
        q = qkv[:, :nq].view(t, -1, d)
        q, k = _normed(attn, q, qkv[:, nq : nq + nk].view(t, -1, d), kernels)
        q, k = rotary.apply(q, kernels), rotary.apply(k, kernels)
    return q, k, qkv[:, nq + nk :].view(t, -1, d)


def _normed(attn: torch.nn.Module, q: torch.Tensor, k: torch.Tensor, kernels: Kernels):
    """q and k through the layer's own q/k norms, each where it has one."""
    if getattr(attn, "q_norm", None) is not None:
        q = _rms(attn.q_norm, q, kernels)
    if getattr(attn, "k_norm", None) is not None:
        k = _rms(attn.k_norm, k, kernels)
    return q, k


def _last_projections(
    layer: torch.nn.Module,
    x: torch.Tensor,
    fused: _Fused,
    rotary: _Rotary,
    last: torch.Tensor,
    kernels: Kernels,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The last layer's (q, k, v): queries of the rows `last` only, keys and values of all."""
    attn = layer.self_attn
    d = attn.head_dim
    nq, nk, _ = fused.split
    weight, bias = fused.qkv_weight, fused.qkv_bias
    q = F.linear(x[last], weight[:nq], None if bias is None else bias[:nq]).view(len(last), -1, d)
    kv = F.linear(x, weight[nq:], None if bias is None else bias[nq:])
    q, k = _normed(attn, q, kv[:, :nk].view(x.shape[0], -1, d), kernels)
    k = rotary.apply(k, kernels)
    return rotary.rows(last).apply(q, kernels), k, kv[:, nk:].view(x.shape[0], -1, d)


def _mlp(layer: torch.nn.Module, x: torch.Tensor, fused: _Fused, kernels: Kernels) -> torch.Tensor:
    mlp = layer.mlp
    gate, up = F.linear(x, fused.gate_up_weight).split(fused.intermediate, dim=-1)
    if _is_silu(mlp.act_fn):
        return mlp.down_proj(kernels.silu_gated(gate, up))
    return mlp.down_proj(mlp.act_fn(gate).mul_(up))


def _is_silu(act: object) -> bool:
    """Whether an MLP's activation is SiLU (torch's module or Hugging Face's)."""
    return type(act).__name__ in ("SiLU", "SiLUActivation")


def last_hidden(
    base_model: torch.nn.Module,
    prefix: PrefixKV | None,
    rows: Sequence[Sequence[int]],
    *,
    keep_kv: bool = False,
) -> tuple[torch.Tensor, PrefixKV | None]:
    """(B, hidden) final-norm hidden state at the last token of each of `rows` (token ids, none
    empty), each following `prefix` (None: no prefix); and, with `keep_kv` and one row, that
    row's keys/values, to be the prefix of others."""
    layers = base_model.layers
    device = next(base_model.parameters()).device
    p = 0 if prefix is None else prefix.length
    packing = _Packing.of([len(r) for r in rows], device)
    if keep_kv and len(rows) != 1:
        raise ValueError("keep_kv: only for one row (a prefix)")
    ids = torch.as_tensor([t for r in rows for t in r], dtype=torch.long, device=device)
    h = base_model.embed_tokens(ids)  # (T, hidden)
    cos, sin = base_model.rotary_emb(h.unsqueeze(0), (p + packing.within).unsqueeze(0))
    rotary = _Rotary.of(cos[0], sin[0])
    kernels = kernels_of(base_model)
    kept: list[tuple[torch.Tensor, torch.Tensor]] = []
    for i, layer in enumerate(layers):
        forward_checkpoint()
        fused = _layer_weights(layer)
        scale = layer.self_attn.scaling
        x = _rms(layer.input_layernorm, h, kernels)
        if i < len(layers) - 1:
            q, k, v = _projections(layer, x, fused, rotary, kernels)
            own = _on_own(q, k, v, packing, scale)
        else:  # the scored tokens only: each document's last query against all its keys
            q, k, v = _last_projections(layer, x, fused, rotary, packing.last, kernels)
            h = h[packing.last]
            own = _last_on_own(q, k, v, packing, scale)
        if keep_kv:
            kept.append((_as_cache(k), _as_cache(v)))
        if prefix is None:
            ctx = own[0]
        else:
            keys, values = prefix.layers[i]
            ctx = kernels.merged(*_on_prefix(q, keys, values, prefix.mask, scale), *own)
        h = h + layer.self_attn.o_proj(ctx.reshape(ctx.shape[0], -1))
        h = h + _mlp(layer, _rms(layer.post_attention_layernorm, h, kernels), fused, kernels)
    hidden = _rms(base_model.norm, h, kernels)
    if not keep_kv:
        return hidden, None
    return hidden, PrefixKV(kept, len(rows[0]), _padding_mask(len(rows[0]), h.dtype, device))


def _padding_mask(length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor | None:
    """0 for the `length` real keys, -inf for the alignment padding after them."""
    if _aligned(length) == length:
        return None
    mask = torch.zeros((1, 1, 1, _aligned(length)), dtype=dtype, device=device)
    mask[..., length:] = float("-inf")
    return mask


def _as_cache(x: torch.Tensor) -> torch.Tensor:
    """(T, heads, d) of one sequence -> (1, heads, aligned T, d), the KV-cache layout, zero past
    T (hidden from the documents' queries by `PrefixKV.mask`)."""
    t = x.shape[0]
    out = x.new_zeros((1, x.shape[1], _aligned(t), x.shape[2]))
    out[0, :, :t] = x.transpose(0, 1)
    return out
