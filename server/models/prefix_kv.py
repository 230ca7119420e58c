"""Score many continuations of one shared prefix from a single KV cache (causal models).

The prefix runs once with `use_cache=True`; each batch of continuations then runs on a
`DynamicCache` whose layers hold the prefix keys/values *expanded* (a view, no copy) to the batch
size. Continuations are right-padded (left padding inside the continuation would put pad tokens
between the prefix and the text), the attention mask is `cat(ones(B, P), cont_mask)` and the
position ids are `P + arange(L)`. The result is the final-norm hidden state at each
continuation's last real token, equal to a plain full forward of `prefix + continuation`.

Models or attention implementations that cannot take a cache (an error, no layered
`DynamicCache`, sliding-window layers) or whose first cached result differs from a full
recompute of one sequence fall back to full recomputation; the reason is recorded per model in
`prefix_cache_unsupported`.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence

import torch
from reranker_server.models import hf_compat, last_token
from reranker_server.models.sub_batches import DEFAULT_OVERHEAD_TOKENS, split_by_length

log = logging.getLogger(__name__)

# model -> why the cached path failed (the model then always uses full recomputation)
prefix_cache_unsupported: weakref.WeakKeyDictionary[torch.nn.Module, str] = (
    weakref.WeakKeyDictionary()
)
# models whose cached path matched a full recompute once (checked on the first cached call)
_verified: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


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


def _prefix_cache(base_model: torch.nn.Module, prefix_ids: Sequence[int]):
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
    batch_size: int,
    overhead_tokens: int,
) -> torch.Tensor:
    kv, prefix_last = _prefix_cache(base_model, prefix_ids)
    last_only = last_token.supported(base_model)
    p = len(prefix_ids)
    device = prefix_last.device
    out = torch.empty(
        (len(continuations), prefix_last.shape[-1]), dtype=prefix_last.dtype, device=device
    )
    nonempty = [i for i, c in enumerate(continuations) if len(c) > 0]
    for i, c in enumerate(continuations):
        if len(c) == 0:  # the prefix's own last token is this sequence's last token
            out[i] = prefix_last
    groups = split_by_length(
        [len(continuations[i]) for i in nonempty],
        overhead_tokens=overhead_tokens,
        max_size=batch_size,
    )
    for group in groups:  # sub-batches of similar length, all on the one prefix cache
        idx = [nonempty[k] for k in group]
        rows = [continuations[i] for i in idx]
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
    return out


def last_hidden_with_prefix(
    base_model: torch.nn.Module,
    prefix_ids: Sequence[int],
    continuations: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    batch_size: int | None = None,
    overhead_tokens: int = DEFAULT_OVERHEAD_TOKENS,
) -> torch.Tensor:
    """(B, hidden) final-norm hidden states at each continuation's last real token.

    `base_model` is the decoder stack (e.g. `Qwen3ForCausalLM.model`), returning
    `last_hidden_state`. The prefix is computed once; `batch_size` (default: all) bounds the
    continuations per forward. The continuations are sorted by length and cut into sub-batches
    minimising padded tokens + `overhead_tokens` per forward (`sub_batches.split_by_length`),
    all reusing the one prefix cache. Equal to `last_hidden_full` on `prefix + continuation` (fp32: ~1e-6).
    """
    if len(continuations) == 0:
        raise ValueError("continuations: need at least one continuation")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size!r}")
    bs = batch_size or len(continuations)
    prefix = list(prefix_ids)
    if not prefix or base_model in prefix_cache_unsupported:
        return _full_chunks(base_model, prefix, continuations, pad_token_id, bs)
    with torch.inference_mode():
        try:
            out = _cached_path(base_model, prefix, continuations, pad_token_id, bs, overhead_tokens)
        except (TypeError, ValueError, NotImplementedError, AttributeError, RuntimeError) as exc:
            if isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower():
                raise
            _record(base_model, f"{type(exc).__name__}: {exc}")
        else:
            if base_model in _verified or _matches_full(
                base_model, prefix, continuations, out, pad_token_id
            ):
                return out
    return _full_chunks(base_model, prefix, continuations, pad_token_id, bs)


def _record(base_model: torch.nn.Module, reason: str) -> None:
    prefix_cache_unsupported[base_model] = reason
    log.warning("shared-prefix KV disabled for %s: %s", type(base_model).__name__, reason)


def _matches_full(
    base_model: torch.nn.Module,
    prefix: list[int],
    continuations: Sequence[Sequence[int]],
    cached: torch.Tensor,
    pad_token_id: int,
) -> bool:
    """First cached call per model: compare one continuation with a full recompute."""
    j = min(
        range(len(continuations)), key=lambda i: (len(continuations[i]) == 0, len(continuations[i]))
    )
    diff = full_recompute_mismatch(
        base_model, prefix + list(continuations[j]), cached[j], pad_token_id=pad_token_id
    )
    if diff is not None:
        _record(base_model, f"cached result differs from a full recompute by {diff:.3g}")
        return False
    _verified.add(base_model)
    return True


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
    return diff if diff > tol * (1.0 + float(ref.abs().max())) else None


def _full_chunks(
    base_model: torch.nn.Module,
    prefix: list[int],
    continuations: Sequence[Sequence[int]],
    pad_token_id: int,
    batch_size: int,
) -> torch.Tensor:
    seqs = [prefix + list(c) for c in continuations]
    parts = [
        last_hidden_full(base_model, seqs[i : i + batch_size], pad_token_id=pad_token_id)
        for i in range(0, len(seqs), batch_size)
    ]
    return torch.cat(parts, dim=0)
