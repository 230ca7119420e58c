"""Prometheus metrics of the engine (default REGISTRY, exported by the server's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from reranker_contract import Metric

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_TOKEN_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)

QUEUE_DEPTH = Gauge(Metric.QUEUE_DEPTH, "Pairs admitted and waiting for a forward pass")
QUEUED_TOKENS = Gauge(Metric.QUEUED_TOKENS, "Tokens of the pairs waiting for a forward pass")
INFLIGHT_PAIRS = Gauge(Metric.INFLIGHT_PAIRS, "Pairs handed to the model and not yet scored")
QUEUE_TIME = Histogram(
    Metric.QUEUE_TIME,
    "Seconds a pair waited between enqueue and the start of its batch",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    Metric.BATCH_SIZE,
    "Sequences per forward pass the model ran (a shared prefix's own forward counts as 1)",
    buckets=_BATCH_BUCKETS,
)
BATCH_TOKENS = Histogram(
    Metric.BATCH_TOKENS,
    "Padded tokens per forward pass the model ran (sequences x the longest)",
    buckets=_TOKEN_BUCKETS,
)
PADDING_RATIO = Histogram(
    Metric.PADDING_RATIO,
    "Padding tokens / padded tokens per forward pass the model ran",
    buckets=(0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0),
)
PREFIX_REUSE = Counter(
    Metric.PREFIX_CACHE_REUSE_TOTAL,
    "Pairs scored as continuations of a shared prefix KV cache (only when that path ran)",
)
PREFIX_TOKENS_SAVED = Counter(
    Metric.PREFIX_TOKENS_SAVED_TOTAL, "Prefix tokens not recomputed thanks to a shared prefix"
)
FORWARD_PASSES = Counter(Metric.FORWARD_PASSES_TOTAL, "Forward passes the model ran", ["path"])
for _path in ("prefix", "continuation", "full"):
    FORWARD_PASSES.labels(path=_path)  # 0 until the first such forward, never absent
OOM_RETRIES = Counter(
    Metric.OOM_RETRIES_TOTAL, "Batches split in two and retried after the device ran out of memory"
)
BATCHES_STOPPED = Counter(
    Metric.BATCHES_STOPPED_TOTAL,
    "Running batches stopped between layers because every request waiting for them was cancelled",
)
COMPUTED_TOKENS = Counter(
    Metric.COMPUTED_TOKENS_TOTAL, "Real (non-padding) tokens the model's layers computed"
)
MODEL_FLOPS = Counter(
    Metric.MODEL_FLOPS_TOTAL, "Model FLOPs spent on those tokens (estimated from the architecture)"
)
_STAGE_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)
TOKENIZATION_TIME = Histogram(
    Metric.TOKENIZATION_DURATION,
    "Seconds to tokenize, format and truncate one request",
    buckets=_STAGE_BUCKETS,
)
INFERENCE_TIME = Histogram(
    Metric.INFERENCE_DURATION_STAGE,
    "Seconds the model ran for one planned batch (all its forward passes)",
    buckets=_STAGE_BUCKETS,
)
SCORE_CACHE_HITS = Counter(Metric.SCORE_CACHE_HITS_TOTAL, "Documents answered from the score cache")
SCORE_CACHE_MISSES = Counter(Metric.SCORE_CACHE_MISSES_TOTAL, "Documents not in the score cache")
