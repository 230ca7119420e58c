"""Cross-encoder logits over packed pairs: no padding anywhere in the forward, on CPUs.

A padded batch of pairs of 30-200 tokens spends about a third of its projections and MLPs on
padding rows. Here the batch's tokens are packed into one (tokens, hidden) matrix: embeddings,
projections, output dense layers, LayerNorms and the MLP run on real tokens only, and attention
runs once per pair on views of its own rows (bidirectional: no mask to build or apply). In the
last layer only the [CLS] rows go on past attention (`encoder_cls`'s shortcut, in packed form).

The model's own modules compute every step (embeddings, linears, LayerNorms, activation, pooler
and classifier), so only the packing and the attention calls are this module's. Supported: the
layers and heads `encoder_cls` supports (BERT, RoBERTa, XLM-R sequence classifiers), absolute
positions, float32 or bfloat16 on a CPU (on a GPU padded batches keep the device busy and one
call per pair would not). The first call per model is compared with the plain forward (fp32: 1e-4
relative to the logits' scale); a model that differs or raises uses the padded path from then
on, with the reason in `unsupported` (and `/info`'s `shortcuts`).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from reranker_server.contracts import forward_checkpoint
from reranker_server.models import encoder_cls

log = logging.getLogger(__name__)

# model -> why the packed path is not used for it
unsupported: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()
_verified: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()


def why_not(model: torch.nn.Module) -> str | None:
    """None while the packed path is (or may be, before its first check) in force, else why not."""
    if model in unsupported:
        return unsupported[model]
    param = next(model.parameters())
    if param.device.type != "cpu" or param.dtype not in (torch.float32, torch.bfloat16):
        return f"runs on CPUs in float32 or bfloat16 (here {param.device.type}, {param.dtype})"
    if model not in _structure_reasons:
        _structure_reasons[model] = _structure_reason(model)
    return _structure_reasons[model]


# model -> `_structure_reason`: asked on every plan and forward, the layers are walked once
_structure_reasons: weakref.WeakKeyDictionary[torch.nn.Module, str | None] = (
    weakref.WeakKeyDictionary()
)


def _structure_reason(model: torch.nn.Module) -> str | None:
    """Why the model's embeddings, layers or head are not ones this path computes (None: they
    are)."""
    reason = encoder_cls.structure_reason(model)
    if reason is not None:
        return reason
    if getattr(model.config, "position_embedding_type", "absolute") != "absolute":
        return f"position embeddings {model.config.position_embedding_type!r}, not absolute"
    embeddings = getattr(model.base_model, "embeddings", None)
    if embeddings is None or not all(
        hasattr(embeddings, name) for name in ("word_embeddings", "position_embeddings")
    ):
        return "no word and position embeddings"
    for layer in model.base_model.encoder.layer:
        att = getattr(getattr(layer, "attention", None), "self", None)
        if att is None or not all(
            hasattr(att, n) for n in ("query", "key", "value", "scaling", "num_attention_heads")
        ):
            return "a layer is not a BERT-style layer"
    return None


def _positions(embeddings: torch.nn.Module, lengths: Sequence[int]) -> torch.Tensor:
    """(T,) each packed token's position id: from 0 in each pair (BERT), or after the padding
    index (RoBERTa and XLM-R number real tokens from padding_idx + 1)."""
    start = getattr(embeddings, "padding_idx", None)
    offset = 0 if start is None else int(start) + 1
    return torch.cat([torch.arange(offset, offset + n) for n in lengths])


def _attention(
    att: torch.nn.Module, x: torch.Tensor, bounds: Sequence[tuple[int, int]], queries: torch.Tensor
) -> torch.Tensor:
    """Self-attention context of the rows `queries` selects ((Q, hidden): all rows, or each
    pair's first), each pair's queries against its own keys and values only."""
    heads, size = att.num_attention_heads, att.attention_head_size
    q = att.query(x if queries is None else x[queries])
    k, v = att.key(x), att.value(x)
    out = torch.empty_like(q)
    for i, (start, end) in enumerate(bounds):
        rows = slice(start, end) if queries is None else slice(i, i + 1)
        qi = q[rows].view(1, -1, heads, size).transpose(1, 2)
        ki = k[start:end].view(1, -1, heads, size).transpose(1, 2)
        vi = v[start:end].view(1, -1, heads, size).transpose(1, 2)
        ctx = F.scaled_dot_product_attention(qi, ki, vi, scale=att.scaling)
        out[rows] = ctx.transpose(1, 2).reshape(-1, heads * size)
    return out


def _packed_logits(
    model: torch.nn.Module, seqs: Sequence[Sequence[int]], types: Sequence[Sequence[int]] | None
) -> torch.Tensor:
    base = model.base_model
    lengths = [len(s) for s in seqs]
    ids = torch.tensor([t for s in seqs for t in s], dtype=torch.long)[None]
    kwargs = {"input_ids": ids, "position_ids": _positions(base.embeddings, lengths)[None]}
    if types is not None:
        kwargs["token_type_ids"] = torch.tensor([t for s in types for t in s])[None]
    x = base.embeddings(**kwargs)[0]  # (T, hidden)
    bounds, start = [], 0
    for n in lengths:
        bounds.append((start, start + n))
        start += n
    layers = base.encoder.layer
    for layer in layers[:-1]:
        forward_checkpoint()  # the layer hooks' stop point (`cancel_points`), called directly
        attn_out = layer.attention.output(_attention(layer.attention.self, x, bounds, None), x)
        x = layer.output(layer.intermediate(attn_out), attn_out)
    forward_checkpoint()
    last = layers[-1]
    firsts = torch.tensor([a for a, _ in bounds])
    first_x = x[firsts]
    attn_out = last.attention.output(_attention(last.attention.self, x, bounds, firsts), first_x)
    cls = last.output(last.intermediate(attn_out), attn_out)
    return encoder_cls.head(model, cls[:, None, :])


def packed_logits(
    model: torch.nn.Module, seqs: Sequence[Sequence[int]], types: Sequence[Sequence[int]] | None
) -> torch.Tensor:
    """(B, num_labels) logits of the pairs `seqs` (token ids; `types`: their token type ids or
    None). For a model `why_not` accepts; until `verified(model)`, the caller compares the result
    with the plain forward (`check`) or turns the path off where it raises (`turn_off`)."""
    with torch.inference_mode():
        return _packed_logits(model, seqs, types)


def verified(model: torch.nn.Module) -> bool:
    return model in _verified


def check(model: torch.nn.Module, logits: torch.Tensor, reference: torch.Tensor) -> bool:
    """The first packed result per model against the plain forward's `reference`; False (and
    the path off for the model) where they differ."""
    why = encoder_cls.disagreement(logits, reference)
    if why is not None:
        turn_off(model, f"packed result {why}")
        return False
    _verified.add(model)
    return True


def turn_off(model: torch.nn.Module, reason: str) -> None:
    """The padded path from now on for `model`, for `reason`."""
    unsupported[model] = reason
    log.warning("packed encoder path disabled for %s: %s", type(model).__name__, reason)
