"""Bundled-server scoring options that were reachable only through `spec.env`: the score cache
(`spec.server.scoreCache`) and the attention kernel (`spec.model.attentionImplementation`).
Both are the bundled server's (engine transformers); the resource refuses them with vllm."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reranker_contract import ATTN_IMPLEMENTATIONS, Env
from reranker_operator.api.base import SpecModel

# the server's choices (reranker_contract.ATTN_IMPLEMENTATIONS), spelled for the CRD enum
AttentionImplementation = Literal["sdpa", "eager", "flash_attention_2"]
assert AttentionImplementation.__args__ == ATTN_IMPLEMENTATIONS  # type: ignore[attr-defined]

ATTENTION_DESCRIPTION = (
    f"Attention kernel the bundled server loads the model with ({Env.ATTN_IMPLEMENTATION}); "
    f"unset: {ATTN_IMPLEMENTATIONS[0]}. eager is the plain matmul path; flash_attention_2 needs "
    "resources.gpus >= 1 and an image with the flash-attn package (the default image has none). "
    "Engine transformers only: vLLM picks its own backend (vllm.extraArgs --attention-backend)."
)

# One entry holds a sha256 hex key, a float and a token count in an ordered dict: ~350 bytes,
# so the default is ~35 MB of the pod's memory.
DEFAULT_SCORE_CACHE_SIZE = 100_000


class ScoreCacheSpec(SpecModel):
    """An in-memory LRU of pair scores in each server pod: a repeated (model, instruction,
    query, document, truncation) pair is answered without a forward pass. Per pod, lost on
    restart; hits and misses are exported as reranker_score_cache_{hits,misses}_total.
    Engine transformers, or vllm behind the bundled server (vllm.front); bare vLLM has none."""

    enabled: bool = Field(False, description="Cache scores in each pod.")
    size: int = Field(
        DEFAULT_SCORE_CACHE_SIZE,
        ge=1,
        le=10_000_000,
        description=f"Pairs each pod keeps ({Env.SCORE_CACHE_SIZE}); about 350 bytes each.",
    )

    def entries(self) -> int:
        """What SCORE_CACHE_SIZE gets: the size when enabled, 0 (off) otherwise."""
        return self.size if self.enabled else 0
