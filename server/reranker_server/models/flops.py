"""Model FLOPs of a forward pass, from the architecture: what the hardware actually had to do
for the real (non-padding) tokens, with the shortcuts taken into account.

A matmul of (m x k) by (k x n) costs 2mkn FLOPs. Per token and layer, a pre-norm transformer
spends 2 x d x (q + 2 kv) on the query/key/value projections, 2 x q x d on the output
projection, 2 x n_mlp x d x ffn on its MLP (3 matrices for gated MLPs such as Qwen3's SwiGLU, 2
for BERT's), and 4 x q per attended key (scores and weighted sum). With the last-layer shortcut
the last layer computes keys and values for every token but queries, attention, output and MLP
for the scored row only. Norms, rotary embeddings and softmax are left out (a few percent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FlopModel:
    layers: int
    hidden: int
    q_dim: int  # heads x head_dim
    kv_dim: int  # kv heads x head_dim
    ffn: int
    mlp_matrices: int  # 3 (gated) or 2
    causal: bool

    @classmethod
    def of(cls, config: Any) -> FlopModel:
        hidden = int(config.hidden_size)
        heads = int(config.num_attention_heads)
        head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        causal = (
            bool(getattr(config, "is_decoder", False))
            or "ForCausalLM" in "".join(getattr(config, "architectures", None) or [])
            or getattr(config, "model_type", "") in ("qwen3", "qwen2", "llama")
        )
        gated = getattr(config, "hidden_act", "") in ("silu", "swiglu") or causal
        return cls(
            layers=int(config.num_hidden_layers),
            hidden=hidden,
            q_dim=heads * head_dim,
            kv_dim=kv_heads * head_dim,
            ffn=int(config.intermediate_size),
            mlp_matrices=3 if gated else 2,
            causal=causal,
        )

    @property
    def kv_per_token(self) -> float:
        return 2 * self.hidden * 2 * self.kv_dim

    @property
    def rest_per_token(self) -> float:
        """Query and output projections and the MLP, per token and layer."""
        return (
            2 * self.hidden * self.q_dim
            + 2 * self.q_dim * self.hidden
            + (2 * self.mlp_matrices * self.hidden * self.ffn)
        )

    def linear(self, lengths: Sequence[int], *, last_layer_one_row: bool = False) -> float:
        """FLOPs of the projections and MLPs (the matmuls with weights)."""
        tokens = sum(lengths)
        full_layers = self.layers - 1 if last_layer_one_row else self.layers
        total = full_layers * tokens * (self.kv_per_token + self.rest_per_token)
        if last_layer_one_row:
            total += tokens * self.kv_per_token + len(lengths) * self.rest_per_token
        return total

    def attended_keys(self, n: int, context: int) -> float:
        """Query-key pairs of a sequence of `n` tokens after `context` cached ones."""
        return n * context + (n * (n + 1) / 2 if self.causal else n * n)

    def attention(
        self, lengths: Sequence[int], *, context: int = 0, last_layer_one_row: bool = False
    ) -> float:
        """FLOPs of attention itself: scores and weighted sums, 4 x q per query-key pair."""
        full_layers = self.layers - 1 if last_layer_one_row else self.layers
        pairs = sum(self.attended_keys(n, context) for n in lengths)
        total = full_layers * 4 * self.q_dim * pairs
        if last_layer_one_row:  # the scored row attends to the context and all its tokens
            total += sum(4 * self.q_dim * (context + n) for n in lengths)
        return total

    def sequences(
        self, lengths: Sequence[int], *, context: int = 0, last_layer_one_row: bool = False
    ) -> float:
        """FLOPs of running `lengths` tokens per sequence, each after `context` cached tokens
        (the prefix) that it attends to but does not recompute."""
        return self.linear(lengths, last_layer_one_row=last_layer_one_row) + self.attention(
            lengths, context=context, last_layer_one_row=last_layer_one_row
        )
