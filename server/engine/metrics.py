"""Prometheus metrics of the engine (default REGISTRY, exported by the server's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_TOKEN_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)

QUEUE_DEPTH = Gauge("reranker_queue_depth", "Pairs admitted and waiting for a forward pass")
QUEUE_TIME = Histogram(
    "reranker_queue_time_seconds",
    "Seconds a pair waited between enqueue and the start of its batch",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram("reranker_batch_size", "Sequences per forward pass", buckets=_BATCH_BUCKETS)
BATCH_TOKENS = Histogram(
    "reranker_batch_tokens",
    "Padded tokens per forward pass (batch x longest sequence, plus the prefix once)",
    buckets=_TOKEN_BUCKETS,
)
PADDING_RATIO = Histogram(
    "reranker_padding_ratio",
    "Padding tokens / padded tokens per forward pass",
    buckets=(0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0),
)
PREFIX_REUSE = Counter(
    "reranker_prefix_cache_reuse", "Pairs scored as continuations of a shared prefix KV cache"
)
PREFIX_TOKENS_SAVED = Counter(
    "reranker_prefix_tokens_saved", "Prefix tokens not recomputed thanks to a shared prefix"
)
SCORE_CACHE_HITS = Counter("reranker_score_cache_hits", "Documents answered from the score cache")
SCORE_CACHE_MISSES = Counter("reranker_score_cache_misses", "Documents not in the score cache")
