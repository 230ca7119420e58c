"""Prometheus metrics of the HTTP server (default REGISTRY; the engine defines its own)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from reranker_contract import Metric

HTTP_REQUESTS = Counter(
    Metric.HTTP_REQUESTS_TOTAL,
    "HTTP requests by method, route and status",
    ["method", "endpoint", "status"],
)
HTTP_DURATION = Histogram(
    Metric.HTTP_REQUEST_DURATION,
    "HTTP request latency in seconds",
    ["method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
HTTP_ACTIVE = Gauge(Metric.HTTP_REQUESTS_ACTIVE, "HTTP requests being served")
INFERENCE_DURATION = Histogram(
    Metric.INFERENCE_DURATION,
    "Seconds from engine submission to scores, per rerank request",
    ["model_name"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
GPU_MEMORY = Gauge(Metric.GPU_MEMORY, "CUDA memory allocated by this process", ["gpu_id"])
RERANK_REQUESTS = Counter(Metric.RERANK_REQUESTS_TOTAL, "Rerank requests by outcome", ["status"])
DOCUMENTS_PER_REQUEST = Histogram(
    Metric.DOCUMENTS_PER_REQUEST,
    "Documents in one rerank request",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)
TOKENS_PER_REQUEST = Histogram(
    Metric.TOKENS_PER_REQUEST,
    "Prompt tokens of one rerank request",
    buckets=(64, 256, 1024, 4096, 16384, 65536, 262144, 1048576),
)


def update_gpu_memory() -> None:
    """Refresh gpu_memory_usage_bytes for every visible CUDA device (no-op without CUDA)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - the server always has torch
        return
    if not torch.cuda.is_available():
        return
    for i in range(torch.cuda.device_count()):
        GPU_MEMORY.labels(gpu_id=str(i)).set(torch.cuda.memory_allocated(i))
