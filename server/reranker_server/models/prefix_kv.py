"""Score many continuations of one shared prefix from a single KV cache (causal models).

The prefix runs once with `use_cache=True`; each batch of continuations then runs on a
`DynamicCache` whose layers hold the prefix keys/values *expanded* (a view, no copy) to the batch
size. Continuations are right-padded (left padding inside the continuation would put pad tokens
between the prefix and the text), the attention mask is `cat(ones(B, P), cont_mask)` and the
position ids are `P + arange(L)`. The result is the final-norm hidden state at each
continuation's last real token, equal to a plain full forward of `prefix + continuation`.
The caller (the engine's planner) decides the forwards: each sub-batch of continuations is one
forward on the one prefix cache; the result says what ran (`PrefixRun`).

Models or attention implementations that cannot take a cache (an error, no layered
`DynamicCache`, sliding-window layers) or whose first cached result differs from a full
recompute of one sequence fall back to full recomputation; the reason is recorded per model in
`prefix_cache_unsupported`.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from reranker_server.models import hf_compat, last_token, packed_decoder
from reranker_server.models.resource_errors import is_device_failure

log = logging.getLogger(__name__)

# model -> why the cached path failed (the model then always uses full recomputation)
prefix_cache_unsupported: weakref.WeakKeyDictionary[torch.nn.Module, str] = (
    weakref.WeakKeyDictionary()
)
# models whose cached path matched a full recompute once (checked on the first cached call),
# on the plain and on the packed path
_verified: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()
_verified_packed: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@dataclass(frozen=True)
class Shape:
    """One forward as it ran: the real lengths of its sequences, its padded width and the
    cached tokens they attended to without recomputing them."""

    path: str  # "prefix" | "continuation" | "full"
    lengths: tuple[int, ...]
    width: int
    context: int = 0
    packed: bool = False  # the sequences ran unpadded (the kernels saw the real tokens only)


@dataclass
class PrefixRun:
    """Hidden states (B, hidden) in the order of the continuations, and what ran."""

    hidden: torch.Tensor
    used_cache: bool
    last_only: bool
    shapes: list[Shape] = field(default_factory=list)
    packed: bool = False  # continuations took the packed path (`packed_decoder`)


def check_sub_batches(sub_batches: Sequence[Sequence[int]], n: int) -> None:
    """Every position 0..n-1 exactly once, no empty sub-batch; ValueError otherwise."""
    seen = sorted(i for group in sub_batches for i in group)
    if seen != list(range(n)) or any(len(group) == 0 for group in sub_batches):
        raise ValueError(
            f"sub_batches: must cover positions 0..{n - 1} once each, got {sub_batches!r}"
        )


def _right_pad(
    rows: Sequence[Sequence[int]], pad_token_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, mask, lengths) of right-padded rows."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    width = int(lengths.max()) if len(rows) else 0
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
    mask = (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).long()
    return ids.to(device), mask.to(device), lengths.to(device)


def last_hidden_full(
    base_model: torch.nn.Module,
    sequences: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
) -> torch.Tensor:
    """(B, hidden) last-real-token hidden states of whole sequences (right-padded, no cache)."""
    if any(len(s) == 0 for s in sequences):
        raise ValueError("sequences: every sequence needs at least one token")
    ids, mask, lengths = _right_pad(sequences, pad_token_id, _device(base_model))
    positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0).expand_as(ids)
    with torch.inference_mode():
        out = base_model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False
        )
        hidden = out.last_hidden_state
        return hidden[torch.arange(len(sequences), device=ids.device), lengths - 1]


def prefix_cache(base_model: torch.nn.Module, prefix_ids: Sequence[int]):
    """Run the prefix once; returns (per-layer (keys, values) with batch 1, last hidden)."""
    device = _device(base_model)
    ids = torch.as_tensor([list(prefix_ids)], dtype=torch.long, device=device)
    out = base_model(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        position_ids=torch.arange(ids.shape[1], device=device).unsqueeze(0),
        use_cache=True,
    )
    cache = hf_compat.output_cache(out)
    if cache is None or not hasattr(cache, "layers"):
        raise TypeError(f"model returned no layered KV cache ({type(cache).__name__})")
    kv = []
    for layer in cache.layers:
        if type(layer).__name__ != "DynamicLayer":
            raise TypeError(f"cache layer {type(layer).__name__} is not a plain DynamicLayer")
        kv.append((layer.keys, layer.values))
    return kv, out.last_hidden_state[0, -1]


def _expanded_cache(kv: list[tuple[torch.Tensor, torch.Tensor]], batch: int):
    """A DynamicCache whose layers view the batch-1 prefix keys/values as `batch` rows."""
    from transformers import DynamicCache

    cache = DynamicCache(ddp_cache_data=kv)
    for layer in cache.layers:
        layer.keys = layer.keys.expand(batch, -1, -1, -1)
        layer.values = layer.values.expand(batch, -1, -1, -1)
    return cache


def _cached_path(
    base_model: torch.nn.Module,
    prefix_ids: Sequence[int],
    continuations: Sequence[Sequence[int]],
    pad_token_id: int,
    sub_batches: Sequence[Sequence[int]],
    packed: bool,
) -> PrefixRun:
    kv: list = []
    packed_prefix = None
    if packed:  # the prefix's keys/values from the packed path too
        hidden, packed_prefix = packed_decoder.last_hidden(
            base_model, None, [prefix_ids], keep_kv=True
        )
        prefix_last = hidden[0]
    else:
        kv, prefix_last = prefix_cache(base_model, prefix_ids)
    last_only = packed or last_token.supported(base_model)
    p = len(prefix_ids)
    device = prefix_last.device
    out = torch.empty(
        (len(continuations), prefix_last.shape[-1]), dtype=prefix_last.dtype, device=device
    )
    run = PrefixRun(out, True, last_only, [Shape("prefix", (p,), p, packed=packed)], packed=packed)
    for group in sub_batches:  # each sub-batch one forward on the one prefix cache
        empty = [i for i in group if len(continuations[i]) == 0]
        for i in empty:  # the prefix's own last token is this sequence's last token
            out[i] = prefix_last
        idx = [i for i in group if len(continuations[i]) > 0]
        if not idx:
            continue
        rows = [continuations[i] for i in idx]
        if packed:  # the documents packed, cascade attention (`packed_decoder`)
            out[torch.as_tensor(idx, device=device)] = packed_decoder.last_hidden(
                base_model, packed_prefix, rows
            )[0]
            lengths_of = tuple(len(r) for r in rows)
            run.shapes.append(Shape("continuation", lengths_of, max(lengths_of), p, packed=True))
            continue
        ids, mask, lengths = _right_pad(rows, pad_token_id, device)
        b, width = ids.shape
        attention = torch.cat([torch.ones((b, p), dtype=mask.dtype, device=device), mask], dim=1)
        positions = (p + torch.arange(width, device=device)).unsqueeze(0).expand(b, -1)
        inputs = {
            "input_ids": ids,
            "attention_mask": attention,
            "position_ids": positions,
            hf_compat.cache_argument(base_model): _expanded_cache(kv, b),
            "use_cache": True,
        }
        if last_only:  # the last layer runs for the scored token only
            picked = last_token.last_token_hidden(base_model, inputs, lengths - 1, kv[-1])
        else:
            hidden = base_model(**inputs).last_hidden_state
            picked = hidden[torch.arange(b, device=device), lengths - 1]
        out[torch.as_tensor(idx, device=device)] = picked
        run.shapes.append(Shape("continuation", tuple(len(r) for r in rows), width, p))
    return run


def last_hidden_with_prefix(
    base_model: torch.nn.Module,
    prefix_ids: Sequence[int],
    continuations: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    sub_batches: Sequence[Sequence[int]] | None = None,
) -> PrefixRun:
    """Final-norm hidden states at each continuation's last real token.

    `base_model` is the decoder stack (e.g. `Qwen3ForCausalLM.model`), returning
    `last_hidden_state`. The prefix is computed once; each of `sub_batches` (positions into
    `continuations`; default: all in one) is one forward on its cache. Equal to
    `last_hidden_full` on `prefix + continuation` (fp32: ~1e-6). Where the cached path is off
    for the model (or fails its first-use check) each sub-batch recomputes whole sequences.
    """
    if len(continuations) == 0:
        raise ValueError("continuations: need at least one continuation")
    groups = (
        [list(g) for g in sub_batches]
        if sub_batches is not None
        else [list(range(len(continuations)))]
    )
    check_sub_batches(groups, len(continuations))
    prefix = list(prefix_ids)
    if not prefix or base_model in prefix_cache_unsupported:
        return _full_groups(base_model, prefix, continuations, pad_token_id, groups)
    with torch.inference_mode():
        while True:  # the packed path first where supported; once off, the plain cached path
            packed = packed_decoder.supported(base_model)
            try:
                run = _cached_path(base_model, prefix, continuations, pad_token_id, groups, packed)
            except (
                TypeError,
                ValueError,
                NotImplementedError,
                AttributeError,
                RuntimeError,
            ) as exc:
                if is_device_failure(exc):  # the device, not the model: never turns a path off
                    raise
                reason = f"{type(exc).__name__}: {exc}"
            else:
                verified = _verified_packed if packed else _verified
                if base_model in verified:
                    return run
                reason = _mismatch(base_model, prefix, continuations, run.hidden, pad_token_id)
                if reason is None:
                    verified.add(base_model)
                    return run
            if not packed:
                _record(base_model, reason)
                break
            packed_decoder.disable(base_model, reason)
            log.warning(
                "packed decoder path disabled for %s: %s", type(base_model).__name__, reason
            )
    return _full_groups(base_model, prefix, continuations, pad_token_id, groups)


def _record(base_model: torch.nn.Module, reason: str) -> None:
    prefix_cache_unsupported[base_model] = reason
    log.warning("shared-prefix KV disabled for %s: %s", type(base_model).__name__, reason)


def _mismatch(
    base_model: torch.nn.Module,
    prefix: list[int],
    continuations: Sequence[Sequence[int]],
    cached: torch.Tensor,
    pad_token_id: int,
) -> str | None:
    """First cached call per model and path: the shortest and the longest continuation against
    a full recompute; why they differ, or None."""
    order = sorted(range(len(continuations)), key=lambda i: len(continuations[i]))
    for j in dict.fromkeys((order[0], order[-1])):
        diff = full_recompute_mismatch(
            base_model, prefix + list(continuations[j]), cached[j], pad_token_id=pad_token_id
        )
        if diff is not None:
            return f"cached result differs from a full recompute by {diff:.3g}"
    return None


def full_recompute_mismatch(
    base_model: torch.nn.Module,
    sequence: Sequence[int],
    hidden_row: torch.Tensor,
    *,
    pad_token_id: int,
) -> float | None:
    """The max abs difference between `hidden_row` and a plain forward of `sequence` when it is
    beyond tolerance (1e-3 in fp32, 0.1 in half precision, relative to the reference's scale);
    None when they agree."""
    ref = last_hidden_full(base_model, [list(sequence)], pad_token_id=pad_token_id)[0].float()
    tol = 1e-3 if hidden_row.dtype in (torch.float32, torch.float64) else 0.1
    diff = float((hidden_row.float() - ref).abs().max())
    if diff != diff or not bool(torch.isfinite(hidden_row).all()):  # NaN passes `diff > tol`
        return float("nan")
    return diff if diff > tol * (1.0 + float(ref.abs().max())) else None


def _full_groups(
    base_model: torch.nn.Module,
    prefix: list[int],
    continuations: Sequence[Sequence[int]],
    pad_token_id: int,
    groups: Sequence[Sequence[int]],
) -> PrefixRun:
    """Each sub-batch one forward of whole sequences `prefix + continuation` (no cache)."""
    seqs = [prefix + list(c) for c in continuations]
    out: torch.Tensor | None = None
    shapes = []
    for group in groups:
        rows = [seqs[i] for i in group]
        hidden = last_hidden_full(base_model, rows, pad_token_id=pad_token_id)
        if out is None:
            out = hidden.new_empty((len(seqs), hidden.shape[-1]))
        out[torch.as_tensor(list(group), device=hidden.device)] = hidden
        shapes.append(Shape("full", tuple(len(r) for r in rows), max(len(r) for r in rows)))
    assert out is not None  # continuations is not empty
    return PrefixRun(out, False, False, shapes)
