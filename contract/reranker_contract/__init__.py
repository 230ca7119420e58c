"""The contract between the operator and the server: one place for every fact both sides use.

The operator renders a Deployment whose container the server reads; the alerts, the dashboard,
the HPA and the Prometheus Adapter rules query the series the server exports. Both import the
names, defaults and numbers below, so one edit changes both sides. Pure data: importable without
torch, transformers or kopf (the operator image has neither torch nor the server's dependencies).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# -- the container ----------------------------------------------------------------------------
PORT = 8080  # the server listens here (PORT); the operator's containerPort and Service target
PORT_NAME = "http"  # the container port's name (probes, the Service, the ServiceMonitor)
CONTAINER_NAME = "reranker"  # the server container in the pod (alerts on restarts read it)
MODEL_CACHE_PATH = "/models-cache"  # HF_HOME and CACHE_DIR of the server and the init container
READY_PATH = "/ready"  # readiness and startup probes: 503 while loading or draining
LIVENESS_PATH = "/healthz"  # liveness probe: the process answers
METRICS_PATH = "/metrics"  # Prometheus text format
PLAYGROUND_PATH = "/playground"  # the browser page (spec.server.playground)
METRICS_PORT_NAME = (
    "metrics"  # the container port of /metrics when spec.server.metricsPort moves it
)
API_KEYS_DIR = "/etc/reranker/api-keys"  # spec.server.auth.apiKeysSecret, mounted (API_KEYS_FILE)
JWKS_DIR = "/etc/reranker/jwks"  # spec.server.auth.jwt.jwks, mounted (JWT_JWKS_FILE is a key in it)
# The uid and gid every container runs as: both images' USER, the pods' runAsUser/runAsGroup/
# fsGroup, the operator's Deployment. High (>= 10000), so it is no user of the node's own.
RUN_AS_UID = 10001

# The model card's instruction for Qwen3-Reranker, used when neither the resource
# (spec.model.instruction) nor the request names one.
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


class Env(StrEnum):
    """The server's environment variables (each also a `--flag`; see reranker_server.config)."""

    MODEL_NAME = "MODEL_NAME"
    MODEL_REVISION = "MODEL_REVISION"
    SERVED_MODEL_NAME = "SERVED_MODEL_NAME"
    MODEL_FAMILY = "MODEL_FAMILY"
    DEFAULT_INSTRUCTION = "DEFAULT_INSTRUCTION"
    MAX_SEQUENCE_LENGTH = "MAX_SEQUENCE_LENGTH"
    DTYPE = "DTYPE"
    DEVICE = "DEVICE"
    ATTN_IMPLEMENTATION = "ATTN_IMPLEMENTATION"
    QUANTIZATION = "QUANTIZATION"
    BATCH_SIZE = "BATCH_SIZE"
    MAX_BATCH_TOKENS = "MAX_BATCH_TOKENS"
    MAX_CLIENT_BATCH_SIZE = "MAX_CLIENT_BATCH_SIZE"
    MAX_CONCURRENT_REQUESTS = "MAX_CONCURRENT_REQUESTS"
    MAX_REQUEST_BYTES = "MAX_REQUEST_BYTES"
    MAX_REQUEST_TOKENS = "MAX_REQUEST_TOKENS"
    MAX_QUEUED_TOKENS = "MAX_QUEUED_TOKENS"
    # documents longer than the model's max length: truncate, or chunk into windows scored whole
    LONG_DOCUMENTS = "LONG_DOCUMENTS"
    CHUNK_OVERLAP_TOKENS = "CHUNK_OVERLAP_TOKENS"
    MAX_CHUNKS_PER_DOCUMENT = "MAX_CHUNKS_PER_DOCUMENT"
    MAX_CHUNKS_PER_REQUEST = "MAX_CHUNKS_PER_REQUEST"
    HEADER_TIMEOUT_SECONDS = "HEADER_TIMEOUT_SECONDS"
    BODY_TIMEOUT_SECONDS = "BODY_TIMEOUT_SECONDS"
    SCORE_CACHE_SIZE = "SCORE_CACHE_SIZE"
    PREFIX_CACHE = "PREFIX_CACHE"
    MODEL_WORKERS = "MODEL_WORKERS"
    TORCH_THREADS = "TORCH_THREADS"
    API_KEY = "API_KEY"
    HOST = "HOST"
    PORT = "PORT"
    LOG_LEVEL = "LOG_LEVEL"
    CACHE_DIR = "CACHE_DIR"
    DRAIN_SECONDS = "DRAIN_SECONDS"
    REQUEST_TIMEOUT_SECONDS = "REQUEST_TIMEOUT_SECONDS"
    TRUST_REMOTE_CODE = "TRUST_REMOTE_CODE"
    PLAYGROUND = "PLAYGROUND"
    COMPILE_KERNELS = "COMPILE_KERNELS"
    WARMUP = "WARMUP"
    ENGINE_URL = "ENGINE_URL"  # score through a vLLM engine process at this URL (the front)
    API_KEYS_FILE = "API_KEYS_FILE"  # a mounted file or Secret of API keys (reloaded)
    JWT_JWKS_FILE = "JWT_JWKS_FILE"
    JWT_ISSUER = "JWT_ISSUER"
    JWT_AUDIENCE = "JWT_AUDIENCE"
    JWT_ALGORITHMS = "JWT_ALGORITHMS"
    JWT_LEEWAY_SECONDS = "JWT_LEEWAY_SECONDS"
    JWT_REQUIRED_SCOPE = "JWT_REQUIRED_SCOPE"
    RATE_LIMIT_REQUESTS_PER_MINUTE = "RATE_LIMIT_REQUESTS_PER_MINUTE"
    RATE_LIMIT_PAIRS_PER_MINUTE = "RATE_LIMIT_PAIRS_PER_MINUTE"
    RATE_LIMIT_TOKENS_PER_MINUTE = "RATE_LIMIT_TOKENS_PER_MINUTE"
    TRUSTED_PROXIES = "TRUSTED_PROXIES"
    AUTH_FAILURES_PER_MINUTE = "AUTH_FAILURES_PER_MINUTE"
    METRICS_PORT = "METRICS_PORT"
    # read by huggingface_hub, not by our settings
    HF_HOME = "HF_HOME"
    HF_HUB_OFFLINE = "HF_HUB_OFFLINE"
    HF_TOKEN = "HF_TOKEN"


@dataclass(frozen=True)
class ServerDefaults:
    """Defaults both the server's settings and the RerankerService spec start from."""

    max_sequence_length: int = 8192
    max_batch_tokens: int = 16384  # padded tokens per forward pass
    max_batch_size: int = 32  # sequences per forward pass
    max_client_batch_size: int = 1000  # documents in one request (more: 413)
    max_concurrent_requests: int = 512  # admitted requests before 429
    # what one request and one pod may hold (413 / 429 beyond; docs/server.md, "Limits")
    max_request_bytes: int = 4 * 1024 * 1024  # a request's body
    max_request_tokens: int = 262144  # a request's tokens after truncation
    max_queued_tokens: int = 1048576  # tokens queued in the pod, every request together
    # long documents (docs/server.md, "Long documents: truncate or chunk"): truncate (cut to fit)
    # or chunk (overlapping windows that fit, the document's score the max over its windows)
    long_documents: str = "truncate"
    chunk_overlap_tokens: int = 64  # tokens consecutive windows share (at most a quarter window)
    max_chunks_per_document: int = 32  # windows one document may become (413 beyond)
    max_chunks_per_request: int = 256  # windows one request may hold (413 beyond)
    max_header_bytes: int = 16384  # request line and headers (431 beyond)
    header_timeout_seconds: int = 10  # to receive a request's line and headers
    body_timeout_seconds: int = 30  # to receive a request's body (408 after it)
    # failed authentications per minute per client address before it is backed off (429)
    auth_failures_per_minute: int = 30
    log_level: str = "info"
    # termination (spec.termination, the pod's grace period): after SIGTERM the server keeps
    # serving for drain_seconds (readiness 503), then finishes what is in flight; no request
    # runs longer than request_timeout_seconds (504 after it)
    drain_seconds: int = 5
    request_timeout_seconds: int = 60


DEFAULTS = ServerDefaults()


class ModelFamily(StrEnum):
    """How a model scores a (query, document) pair (spec.model.family, MODEL_FAMILY). Each one
    has a backend module in the server (reranker_server.models.families) and an entry in the
    operator's family registry (reranker_operator.api.families)."""

    QWEN3_CAUSAL = "qwen3-causal"  # a causal LM: logit(yes) - logit(no) at the last position
    CROSS_ENCODER = "cross-encoder"  # a sequence classifier with one label: its logit


FAMILIES: tuple[str, ...] = tuple(family.value for family in ModelFamily)

DTYPES = ("auto", "float32", "float16", "bfloat16")
# dtype auto on a CPU with native bf16 takes bfloat16 only where a start-up matmul check measures
# it at least this much faster than float32 (the server's choice; the CRD's description says it)
CPU_BF16_MIN_SPEEDUP = 1.5
QUANTIZATIONS = ("none", "8bit", "4bit")
# what the server does with a document longer than the max length (LONG_DOCUMENTS; the first is
# its default): cut it to fit, or score it whole in overlapping windows
LONG_DOCUMENT_MODES = ("truncate", "chunk")
# attention kernels the server loads models with (ATTN_IMPLEMENTATION; the first is its default)
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")


def served_model_name(model: str, served_name: str | None) -> str:
    """The name the API reports (and requests may name): the served name, else the model id."""
    return served_name or model


# -- the series the server exports (what PromQL sees) -------------------------------------------
class Metric(StrEnum):
    """Prometheus series names. Counters carry `_total`; histograms are the family name (their
    series are `<name>_bucket`, `_sum` and `_count`)."""

    HTTP_REQUESTS_TOTAL = "http_requests_total"  # {method, endpoint, status}
    HTTP_REQUEST_DURATION = "http_request_duration_seconds"  # {method, endpoint}
    HTTP_REQUESTS_ACTIVE = "http_requests_active"
    INFERENCE_DURATION = "model_inference_duration_seconds"  # {model_name}
    GPU_MEMORY = "gpu_memory_usage_bytes"  # {gpu_id}: allocated by tensors
    GPU_MEMORY_RESERVED = "gpu_memory_reserved_bytes"  # {gpu_id}: held by torch's caching allocator
    GPU_MEMORY_TOTAL = "gpu_memory_total_bytes"  # {gpu_id}: the device's memory
    # {kind: total|used|free}: the model's device as the CUDA driver sees it (a MIG slice is
    # its own device; a shared GPU counts its other pods' memory as used); none on a CPU
    DEVICE_MEMORY = "reranker_device_memory_bytes"
    RERANK_REQUESTS_TOTAL = "reranker_requests_total"  # {status}
    DOCUMENTS_PER_REQUEST = "reranker_documents_per_request"
    TOKENS_PER_REQUEST = "reranker_tokens_per_request"
    TRUNCATED_DOCUMENTS_TOTAL = "reranker_truncated_documents_total"  # cut to fit max length
    CHUNKED_DOCUMENTS_TOTAL = "reranker_chunked_documents_total"  # split into windows that fit
    CHUNK_WINDOWS_TOTAL = "reranker_chunk_windows_total"  # the windows those documents became
    QUEUE_DEPTH = "reranker_queue_depth"
    QUEUE_TIME = "reranker_queue_time_seconds"
    BATCH_SIZE = "reranker_batch_size"
    BATCH_TOKENS = "reranker_batch_tokens"
    PADDING_RATIO = "reranker_padding_ratio"
    PREFIX_CACHE_REUSE_TOTAL = "reranker_prefix_cache_reuse_total"
    PREFIX_TOKENS_SAVED_TOTAL = "reranker_prefix_tokens_saved_total"
    SCORE_CACHE_HITS_TOTAL = "reranker_score_cache_hits_total"
    SCORE_CACHE_MISSES_TOTAL = "reranker_score_cache_misses_total"
    AUTH_FAILURES_TOTAL = (
        "reranker_auth_failures_total"  # {reason: missing|invalid|expired|forbidden}
    )
    RATE_LIMITED_TOTAL = (
        "reranker_rate_limited_total"  # {limit: requests|pairs|tokens, client_class}
    )
    # {limit: the setting}: requests refused for their size, or the pod's, before any scoring
    REQUESTS_REFUSED_TOTAL = "reranker_requests_refused_total"
    # requests whose client went away before the answer: their queued work was dropped
    REQUESTS_ABANDONED_TOTAL = "reranker_requests_abandoned_total"
    # the work each pod holds (gauges): what autoscaling on queued work reads
    QUEUED_TOKENS = "reranker_queued_tokens"  # tokens of the pairs in QUEUE_DEPTH
    INFLIGHT_PAIRS = "reranker_inflight_pairs"  # pairs handed to the model, not yet scored
    # what the model actually ran (from the backends' reports)
    FORWARD_PASSES_TOTAL = "reranker_forward_passes_total"  # {path: prefix|continuation|full}
    OOM_RETRIES_TOTAL = "reranker_oom_retries_total"  # batches split in two after out of memory
    # running batches stopped between layers: every request waiting for them was cancelled
    BATCHES_STOPPED_TOTAL = "reranker_batches_stopped_total"
    COMPUTED_TOKENS_TOTAL = "reranker_computed_tokens_total"  # real tokens run through layers
    MODEL_FLOPS_TOTAL = "reranker_model_flops_total"  # model FLOPs spent on them
    # per-stage timings (as TEI has): tokenization, queue (QUEUE_TIME), inference
    TOKENIZATION_DURATION = "reranker_tokenization_duration_seconds"  # per request
    INFERENCE_DURATION_STAGE = "reranker_inference_duration_seconds"  # per batch the model ran
    # the score check before /ready (reranker_contract.score_check): 1 passed, 0 failed (absent
    # while pending or off); when it ran; the largest parity deviation from the operator's record
    SCORE_CHECK_PASSED = "reranker_score_check_passed"
    SCORE_CHECK_TIMESTAMP = "reranker_score_check_timestamp_seconds"
    SCORE_CHECK_PARITY_DEVIATION = "reranker_score_check_parity_deviation"
    # the front of vLLM: 1 when the engine's /metrics answered the last relay (its `vllm:*`
    # series are exported beside the front's), 0 when not; absent without an engine behind
    ENGINE_METRICS_UP = "reranker_engine_metrics_up"


class HpaMetric(StrEnum):
    """Per-pod custom metrics the rendered HPA asks for; Prometheus Adapter serves them from the
    series above by the rules in `ADAPTER_RULES`."""

    REQUESTS_PER_SECOND = "reranker_requests_per_second"
    P95_LATENCY_SECONDS = "reranker_request_latency_p95_seconds"
    QUEUED_PAIRS = "reranker_queued_pairs_per_pod"  # pairs waiting for a forward pass
    QUEUED_TOKENS = "reranker_queued_tokens_per_pod"  # their tokens


# What autoscaling on queued work aims at per pod when the resource names no target: at the
# ~1000 pairs/s of a GPU pod on the guides' documents, 128 waiting pairs are ~130 ms of queue,
# inside the 200 ms queue-time alert (spec.metrics.prometheusRule.queueTimeP95Seconds).
DEFAULT_QUEUED_PAIRS_PER_POD = 128


@dataclass(frozen=True)
class AdapterRule:
    """One Prometheus Adapter `rules.custom` entry: serve `name` per pod from `series`."""

    name: str  # an HpaMetric, or an engine's own (reranker_operator.engines)
    series: str  # the exported series the adapter discovers and queries
    metrics_query: str  # the adapter's Go template (<<.Series>>, <<.LabelMatchers>>, <<.GroupBy>>)
    about: str


ADAPTER_WINDOW = "2m"  # rates and latency quantiles
# the queued-work gauges: short enough to follow a queue that builds in seconds, long enough
# that one scrape's burst does not scale (4 samples at a 15 s scrape interval)
QUEUE_WINDOW_SECONDS = 60
QUEUE_WINDOW = f"{QUEUE_WINDOW_SECONDS}s"

ADAPTER_RULES: tuple[AdapterRule, ...] = (
    AdapterRule(
        HpaMetric.REQUESTS_PER_SECOND,
        Metric.RERANK_REQUESTS_TOTAL,
        f"sum(rate(<<.Series>>{{<<.LabelMatchers>>}}[{ADAPTER_WINDOW}])) by (<<.GroupBy>>)",
        "the per-pod rate of the server's rerank request counter",
    ),
    AdapterRule(
        HpaMetric.P95_LATENCY_SECONDS,
        f"{Metric.INFERENCE_DURATION}_bucket",
        "histogram_quantile(0.95, sum(rate(<<.Series>>{<<.LabelMatchers>>}"
        f"[{ADAPTER_WINDOW}])) by (le, <<.GroupBy>>))",
        "the per-pod p95 of the rerank latency histogram (engine submission to scores, "
        "queueing included)",
    ),
    AdapterRule(
        HpaMetric.QUEUED_PAIRS,
        Metric.QUEUE_DEPTH,
        f"avg(avg_over_time(<<.Series>>{{<<.LabelMatchers>>}}[{QUEUE_WINDOW}])) by (<<.GroupBy>>)",
        "the per-pod (query, document) pairs waiting in the server's queue, averaged over the "
        "window so one burst does not scale",
    ),
    AdapterRule(
        HpaMetric.QUEUED_TOKENS,
        Metric.QUEUED_TOKENS,
        f"avg(avg_over_time(<<.Series>>{{<<.LabelMatchers>>}}[{QUEUE_WINDOW}])) by (<<.GroupBy>>)",
        "the tokens of those pairs, per pod, averaged over the window",
    ),
)
