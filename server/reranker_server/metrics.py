"""Prometheus metrics of the HTTP server (default REGISTRY; the engine defines its own)."""

from __future__ import annotations

from typing import Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from reranker_contract import Metric
from reranker_server.device_memory import DeviceMemoryCollector
from reranker_server.engine_metrics import EngineMetricsRelay

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
RERANK_REQUESTS = Counter(Metric.RERANK_REQUESTS_TOTAL, "Rerank requests by outcome", ["status"])
DOCUMENTS_PER_REQUEST = Histogram(
    Metric.DOCUMENTS_PER_REQUEST,
    "Documents in one rerank request",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)
TRUNCATED_DOCUMENTS = Counter(
    Metric.TRUNCATED_DOCUMENTS_TOTAL,
    "Documents cut to fit the model's max length or max_tokens_per_doc",
)
CHUNKED_DOCUMENTS = Counter(
    Metric.CHUNKED_DOCUMENTS_TOTAL,
    "Documents longer than the max length split into windows that fit (long_documents chunk)",
)
CHUNK_WINDOWS = Counter(
    Metric.CHUNK_WINDOWS_TOTAL, "Windows the chunked documents were split into (each one pair)"
)
AUTH_FAILURES = Counter(Metric.AUTH_FAILURES_TOTAL, "Rejected credentials, by reason", ["reason"])
RATE_LIMITED = Counter(
    Metric.RATE_LIMITED_TOTAL,
    "Requests refused by a per-client limit (by client class)",
    ["limit", "client_class"],
)
REQUEST_LIMITS = (
    "max_request_bytes",
    "max_header_bytes",
    "header_timeout",
    "body_timeout",
    "content_type",
    "max_request_tokens",
    "max_queued_tokens",
    "max_concurrent_requests",
    "max_chunks_per_document",
    "max_chunks_per_request",
)
REQUESTS_REFUSED = Counter(
    Metric.REQUESTS_REFUSED_TOTAL,
    "Requests refused for their own size or the pod's load, by the limit (a setting) they met",
    ["limit"],
)
REQUESTS_ABANDONED = Counter(
    Metric.REQUESTS_ABANDONED_TOTAL,
    "Scoring requests whose client disconnected before the answer (their queued pairs dropped)",
)
# Every label value these counters can take starts at 0, so a rate over them is 0, not absent,
# before the first event (an alert or panel on "rejected" then has a value from the start).
for _status in ("ok", "invalid", "rejected", "error"):
    RERANK_REQUESTS.labels(status=_status)
for _reason in ("missing", "invalid", "expired", "forbidden", "backoff"):
    AUTH_FAILURES.labels(reason=_reason)
for _limit in REQUEST_LIMITS:
    REQUESTS_REFUSED.labels(limit=_limit)
for _limit in ("requests", "pairs", "tokens"):
    for _class in ("api_key", "jwt", "address"):
        RATE_LIMITED.labels(limit=_limit, client_class=_class)

TOKENS_PER_REQUEST = Histogram(
    Metric.TOKENS_PER_REQUEST,
    "Prompt tokens of one rerank request",
    buckets=(64, 256, 1024, 4096, 16384, 65536, 262144, 1048576),
)


class GpuMemoryCollector:
    """GPU memory per visible CUDA device, read at scrape time: allocated by tensors, reserved
    by torch's caching allocator (what the process really holds), and the device's total (so an
    alert can say "90% of this GPU" without a hard-coded size). Without CUDA the families are
    exported with no samples."""

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        families = {
            Metric.GPU_MEMORY: GaugeMetricFamily(
                Metric.GPU_MEMORY, "CUDA memory allocated by tensors", labels=["gpu_id"]
            ),
            Metric.GPU_MEMORY_RESERVED: GaugeMetricFamily(
                Metric.GPU_MEMORY_RESERVED,
                "CUDA memory reserved by the caching allocator",
                labels=["gpu_id"],
            ),
            Metric.GPU_MEMORY_TOTAL: GaugeMetricFamily(
                Metric.GPU_MEMORY_TOTAL, "CUDA device memory", labels=["gpu_id"]
            ),
        }
        import torch

        for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
            gpu = str(i)
            families[Metric.GPU_MEMORY].add_metric([gpu], torch.cuda.memory_allocated(i))
            families[Metric.GPU_MEMORY_RESERVED].add_metric([gpu], torch.cuda.memory_reserved(i))
            families[Metric.GPU_MEMORY_TOTAL].add_metric(
                [gpu], torch.cuda.get_device_properties(i).total_memory
            )
        yield from families.values()


REGISTRY.register(GpuMemoryCollector())
# the model's device memory (reranker_server.device_memory); its device is set once loaded
DEVICE_MEMORY = DeviceMemoryCollector()
REGISTRY.register(DEVICE_MEMORY)


class ScoreCheckSource(Protocol):
    """What the score-check gauges read (reranker_server.score_check.ScoreCheckReport)."""

    passed: bool | None
    checked_at: float | None
    deviation: float | None


class ScoreCheckCollector:
    """The score check's gauges, read at scrape time from the latest report: passed (1/0) and
    when it ran, absent while the check is pending or off; the largest parity deviation from
    the operator's record, absent when nothing was compared."""

    def __init__(self) -> None:
        self.report: ScoreCheckSource | None = None

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        report = self.report
        passed = GaugeMetricFamily(
            Metric.SCORE_CHECK_PASSED, "1: the score check passed; 0: it failed (pod not ready)"
        )
        stamp = GaugeMetricFamily(
            Metric.SCORE_CHECK_TIMESTAMP, "Unix time the score check ran (its age: time() - it)"
        )
        deviation = GaugeMetricFamily(
            Metric.SCORE_CHECK_PARITY_DEVIATION,
            "Largest |score - recorded score| over the probes compared with the operator's record",
        )
        if report is not None and report.passed is not None:
            passed.add_metric([], 1.0 if report.passed else 0.0)
            if report.checked_at is not None:
                stamp.add_metric([], report.checked_at)
            if report.deviation is not None:
                deviation.add_metric([], report.deviation)
        yield from (passed, stamp, deviation)


# the latest score check's report (set by reranker_server.api.state once the check ran)
SCORE_CHECK = ScoreCheckCollector()
REGISTRY.register(SCORE_CHECK)
# the engine behind the front (ENGINE_URL): its own series, read at scrape time (attached by
# reranker_server.api.state once the remote backend loaded)
ENGINE_METRICS = EngineMetricsRelay()
REGISTRY.register(ENGINE_METRICS)
