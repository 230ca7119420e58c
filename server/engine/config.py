"""Knobs of the throughput engine (see docs/engine.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineConfig:
    """Scheduler and cache settings; every field has a safe default."""

    max_batch_tokens: int = 16384  # padded tokens per forward: batch size x longest sequence
    max_batch_size: int = 32  # sequences per forward
    max_concurrent_requests: int = 512  # admitted requests in flight; more -> QueueFullError
    score_cache_size: int = (
        0  # LRU entries of (model, instruction, query, doc, truncation) -> score
    )
    prefix_cache: bool = True  # use the backend's shared-prefix KV path when it supports one
    prefix_min_pairs: int = 3  # pending pairs with one prefix key needed to take the prefix path
    schedule_window: int = 256  # oldest pending pairs considered when packing a full batch
    retry_after_s: float = 1.0  # Retry-After hint carried by QueueFullError
    max_inflight_batches: int = 2  # batches handed to the model thread at once (plan ahead)
    encode_workers: int = 2  # threads that tokenize requests

    def __post_init__(self) -> None:
        for name in (
            "max_batch_tokens",
            "max_batch_size",
            "max_concurrent_requests",
            "prefix_min_pairs",
            "schedule_window",
            "max_inflight_batches",
            "encode_workers",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"EngineConfig.{name} must be a positive integer, got {value!r}")
        size = self.score_cache_size
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"EngineConfig.score_cache_size must be an integer >= 0, got {size!r}")
        wait = self.retry_after_s
        if not isinstance(wait, (int, float)) or isinstance(wait, bool) or not wait > 0:
            raise ValueError(f"EngineConfig.retry_after_s must be a number > 0, got {wait!r}")
