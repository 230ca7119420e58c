"""Decoder forward that runs the last layer for one token per row (the scored token).

A causal reranker reads one hidden state per sequence, so in the last decoder layer only the
keys and values need every token; the query, attention output and MLP run for the last real
token alone (for the benchmark's 4-layer Qwen3 that skips ~20% of the FLOPs). The layers before
the last run unchanged: a forward pre-hook on the last layer captures its input (hidden states,
rotary cos/sin) and stops the stack. Supported: Qwen3, Qwen2 and Llama layers (`input_layernorm`,
`self_attn.{q,k,v,o}_proj` with optional `q_norm`/`k_norm`, `post_attention_layernorm`, `mlp`,
no sliding window) under `base_model.norm`. Anything else returns None (the caller then runs
the plain forward); callers verify the first result per model against a full recompute.
"""

from __future__ import annotations

import torch

from reranker_server.models.layer_capture import input_of_last_layer

_MODEL_TYPES = {"qwen3", "qwen2", "llama"}  # plain pre-norm layers, rotate-half rotary


def supported(base_model: torch.nn.Module) -> bool:
    """Whether `base_model`'s last layer has the structure `last_token_hidden` computes."""
    model_type = getattr(getattr(base_model, "config", None), "model_type", None)
    if model_type not in _MODEL_TYPES:
        return False
    layers = getattr(base_model, "layers", None)
    if not layers or getattr(base_model, "norm", None) is None:
        return False
    last = layers[-1]
    attn = getattr(last, "self_attn", None)
    if attn is None or getattr(attn, "sliding_window", None) is not None:
        return False
    names = ("q_proj", "k_proj", "v_proj", "o_proj", "scaling", "head_dim")
    return all(hasattr(attn, n) for n in names) and all(
        hasattr(last, n) for n in ("input_layernorm", "post_attention_layernorm", "mlp")
    )


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (rotate-half form); cos/sin are (B, L, head_dim)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def last_token_hidden(
    base_model: torch.nn.Module,
    inputs: dict,
    last: torch.Tensor,
    prefix_kv: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    """(B, hidden) final-norm hidden state at column `last[b]` of each row of `inputs`.

    `inputs` are the decoder's keyword inputs (tokens, attention mask over prefix + tokens,
    position ids, cache); `prefix_kv` is the last layer's cached prefix (keys, values) with
    batch 1, or None when there is no prefix. Keys after `last[b]` or masked out (padding, left
    or right) are not attended; the caller checks `supported(base_model)` first.
    """
    layers = base_model.layers
    h, kw = input_of_last_layer(layers[-1], lambda: base_model(**inputs))
    layer = layers[-1]
    attn = layer.self_attn
    cos, sin = kw["position_embeddings"]
    b, n, _ = h.shape
    hd = attn.head_dim
    rows = torch.arange(b, device=h.device)
    x = layer.input_layernorm(h)
    k = attn.k_proj(x).view(b, n, -1, hd)
    if getattr(attn, "k_norm", None) is not None:
        k = attn.k_norm(k)
    k = _rope(k.transpose(1, 2), cos, sin)
    v = attn.v_proj(x).view(b, n, -1, hd).transpose(1, 2)
    q = attn.q_proj(x[rows, last].unsqueeze(1)).view(b, 1, -1, hd)
    if getattr(attn, "q_norm", None) is not None:
        q = attn.q_norm(q)
    q = _rope(q.transpose(1, 2), cos[rows, last].unsqueeze(1), sin[rows, last].unsqueeze(1))
    # causal: keys up to the scored token, and only where the attention mask allows (padding)
    keep = inputs["attention_mask"].bool().clone()  # (B, prefix + n)
    keep[:, -n:] &= torch.arange(n, device=h.device).unsqueeze(0) <= last.unsqueeze(1)
    if prefix_kv is not None:
        pk, pv = prefix_kv
        k = torch.cat([pk.expand(b, -1, -1, -1), k], dim=2)
        v = torch.cat([pv.expand(b, -1, -1, -1), v], dim=2)
    if keep.shape[1] != k.shape[2]:
        raise ValueError("attention_mask: must cover the prefix and every input column")
    ctx = torch.nn.functional.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=keep[:, None, None, :],
        scale=attn.scaling,
        enable_gqa=q.shape[1] != k.shape[1],
    )
    out = h[rows, last].unsqueeze(1) + attn.o_proj(ctx.transpose(1, 2).reshape(b, 1, -1))
    out = out + layer.mlp(layer.post_attention_layernorm(out))
    return base_model.norm(out)[:, 0]
