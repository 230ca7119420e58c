"""Cross-encoder logits computing only the [CLS] row of the last encoder layer.

A sequence classifier reads the first token's final hidden state, so in the last layer only the
keys and values need every token: the query, attention output, and feed-forward run for the
first token alone (for a 6-layer MiniLM that skips ~14% of the forward's FLOPs). The layers
before the last run unchanged (`model.base_model` up to a forward pre-hook on the last layer
that captures its input and stops the stack). Supported: BERT and RoBERTa-style layers
(`attention.self.{query,key,value}`, `attention.output`, `intermediate`, `output`) with a
`BertForSequenceClassification` pooler head or a RoBERTa classification head. The first call
per model is checked against the plain forward (fp32: 1e-4, relative to the logits' scale);
anything unsupported or different falls back to the plain forward, recorded in `unsupported`.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import torch

from reranker_server.models.layer_capture import input_of_last_layer
from reranker_server.models.resource_errors import is_device_failure

log = logging.getLogger(__name__)

# model -> why the [CLS]-only path is not used for it
unsupported: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()
_verified: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()

_HEADS = {
    "BertForSequenceClassification": "pooler",
    "RobertaForSequenceClassification": "features",
    "XLMRobertaForSequenceClassification": "features",
}


def structure_reason(model: torch.nn.Module) -> str | None:
    """None if the model has the structure this path relies on, else the reason."""
    head = _HEADS.get(type(model).__name__)
    if head is None:
        return f"{type(model).__name__} is not a supported sequence classifier"
    if model.config._attn_implementation not in ("sdpa", "eager"):
        return f"attention implementation {model.config._attn_implementation!r}"
    if getattr(model.config, "is_decoder", False):
        return "decoder configuration"
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if not layers:
        return "no base_model.encoder.layer"
    last = layers[-1]
    att = getattr(last, "attention", None)
    needed = (
        getattr(att, "self", None),
        getattr(att, "output", None),
        getattr(last, "intermediate", None),
        getattr(last, "output", None),
    )
    if any(m is None for m in needed) or not all(
        hasattr(att.self, n) for n in ("query", "key", "value", "scaling")
    ):
        return "last layer is not a BERT-style layer"
    if head == "pooler" and getattr(model.base_model, "pooler", None) is None:
        return "no pooler"
    return None


def _last_layer_cls(
    layer: torch.nn.Module, hidden: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """(B, 1, D) output of `layer` at position 0 only; keys/values over every unmasked token."""
    att = layer.attention.self
    b, n, _ = hidden.shape
    heads, size = att.num_attention_heads, att.attention_head_size
    first = hidden[:, :1]
    q = att.query(first).view(b, 1, heads, size).transpose(1, 2)
    k = att.key(hidden).view(b, n, heads, size).transpose(1, 2)
    v = att.value(hidden).view(b, n, heads, size).transpose(1, 2)
    keep = mask.bool()[:, None, None, :]  # (B, 1, 1, N): padding keys are masked out
    ctx = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=keep, scale=att.scaling
    )
    ctx = ctx.transpose(1, 2).reshape(b, 1, heads * size)
    attn_out = layer.attention.output(ctx, first)
    return layer.output(layer.intermediate(attn_out), attn_out)


def head(model: torch.nn.Module, cls_hidden: torch.Tensor) -> torch.Tensor:
    """Logits from the (B, 1, hidden) final [CLS] states: the pooler and classifier, or the
    RoBERTa classification head."""
    if _HEADS[type(model).__name__] == "pooler":
        pooled = model.base_model.pooler(cls_hidden)
        return model.classifier(model.dropout(pooled))
    return model.classifier(cls_hidden)


def _cls_logits(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    layers = model.base_model.encoder.layer
    hidden, _ = input_of_last_layer(layers[-1], lambda: model.base_model(**inputs))
    return head(model, _last_layer_cls(layers[-1], hidden, inputs["attention_mask"]))


def why_not_in_force(model: torch.nn.Module) -> str | None:
    """None while the [CLS]-only path is (or may be, before its first use) in force, else why not."""
    return unsupported.get(model) or structure_reason(model)


def classifier_logits(model: torch.nn.Module, inputs: dict[str, Any]) -> tuple[torch.Tensor, bool]:
    """(B, num_labels) logits of `model(**inputs)`, skipping the non-[CLS] rows of the last
    layer where it can; and whether it did.

    `inputs` holds input_ids, attention_mask (right padding) and optionally token_type_ids.
    Falls back to the plain forward for unsupported models (see module docstring).
    """
    with torch.inference_mode():
        if model not in unsupported:
            reason = structure_reason(model)
            if reason is None:
                try:
                    logits = _cls_logits(model, inputs)
                except (TypeError, ValueError, AttributeError, RuntimeError, KeyError) as exc:
                    if is_device_failure(exc):
                        raise  # a resource error, not a property of the model
                    reason = f"{type(exc).__name__}: {exc}"
                else:
                    if model in _verified:
                        return logits, True
                    reason = _check(model, inputs, logits)
                    if reason is None:
                        return logits, True
            unsupported[model] = reason
            log.warning("[CLS]-only last layer disabled for %s: %s", type(model).__name__, reason)
        return model(**inputs).logits, False


def _check(model: torch.nn.Module, inputs: dict[str, Any], logits: torch.Tensor) -> str | None:
    """First call per model: the plain forward must agree; returns the reason if not."""
    why = disagreement(logits, model(**inputs).logits)
    if why is not None:
        return f"[CLS]-only result {why}"
    _verified.add(model)
    return None


def disagreement(logits: torch.Tensor, reference: torch.Tensor) -> str | None:
    """How a shortcut's `logits` differ from the plain forward's `reference` beyond rounding
    (fp32: 1e-4, half precision: 5e-2, relative to the logits' scale; any non-finite value
    differs), or None where they agree."""
    tol = 1e-4 if logits.dtype in (torch.float32, torch.float64) else 5e-2
    ref = reference.float()
    diff = float((logits.float() - ref).abs().max())
    if not bool(torch.isfinite(logits).all()) or not diff <= tol * (1.0 + float(ref.abs().max())):
        return f"differs from the plain forward by {diff:.3g}"
    return None
