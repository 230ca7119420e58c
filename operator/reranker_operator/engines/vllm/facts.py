"""The facts of `engine: vllm`: the pinned vLLM release, its image, port, probes and the flags the
operator owns, and the series it exports, as a running vLLM of the pinned version names them.
Only the operator (and its tests and bench) reads them; the bundled server never does."""

from __future__ import annotations

from enum import StrEnum

from reranker_contract import PORT, QUEUE_WINDOW, AdapterRule
from reranker_contract.score_check import ScoringEngine

ENGINE_NAME = str(ScoringEngine.VLLM)  # spec.engine's value for this engine
VLLM_VERSION = "0.32.0"  # the vLLM release the operator's defaults, alerts and dashboard target
VLLM_IMAGE = "vllm/vllm-openai"
# `vllm serve` flags the operator sets from the resource; spec.vllm.extraArgs may not repeat them
# (each one of the pinned vLLM's flags, engines/vllm/known_flags.py; a test checks it)
VLLM_OWNED_FLAGS = (
    "--model",
    "--served-model-name",
    "--host",
    "--port",
    "--runner",
    "--dtype",
    "--tensor-parallel-size",
    "-tp",
    "--data-parallel-size",
    "-dp",
    "--gpu-memory-utilization",
    "--max-model-len",
    "--enable-prefix-caching",
    "--no-enable-prefix-caching",
    "--max-num-seqs",
    "--max-num-batched-tokens",
    "--hf-overrides",
    "--chat-template",
    "--download-dir",
    "--revision",
    "--trust-remote-code",
    "--api-key",
    "--config",
    "--shutdown-timeout",  # spec.server.requestTimeoutSeconds: in-flight requests drain
)
VLLM_PORT = PORT  # bare vLLM (vllm.front false) listens where the bundled server would
# behind our front (vllm.front, the default) vLLM listens here, in its own container, on
# localhost only: the front calls it and relays its /metrics; nothing outside the pod reaches it
VLLM_FRONTED_PORT = 8001
VLLM_CONTAINER_NAME = "vllm"  # vLLM's container behind the front (the front is CONTAINER_NAME)
VLLM_HEALTH_PATH = "/health"  # 200 once the engine is up (startup, readiness, liveness probes)
# behind the front the probes run in vLLM's container (vLLM listens on localhost only): the
# image's Python, isolated (-I) and without site-packages (-S) so it starts in milliseconds; a
# non-2xx answer or no answer raises, a non-zero exit the kubelet counts as a failure
VLLM_PROBE_COMMAND = (
    "python3",
    "-I",
    "-S",
    "-c",
    "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=4)",
)
VLLM_TEMPLATE_DIR = "/etc/reranker/vllm"  # the score template ConfigMap's mount
VLLM_TEMPLATE_FILE = "score-template.jinja"
# the Qwen3-Reranker overrides that make vLLM score with the yes/no head (vllm-project/vllm#19260)
VLLM_QWEN3_OVERRIDES = {
    "architectures": ["Qwen3ForSequenceClassification"],
    "classifier_from_token": ["no", "yes"],
    "is_original_qwen3_reranker": True,
}
# the per-pod custom metric the HPA reads for queued pairs (Prometheus Adapter serves it)
VLLM_WAITING = "vllm_requests_waiting_per_pod"


class VllmMetric(StrEnum):
    """vLLM's Prometheus series (checked against a running vLLM by the tests). vLLM counts every
    (query, document) pair as one request. Labels: `model_name` (the served name), `engine`."""

    NUM_REQUESTS_RUNNING = "vllm:num_requests_running"
    NUM_REQUESTS_WAITING = "vllm:num_requests_waiting"
    KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"  # 0..1 (the guides' old gpu_cache_usage_perc)
    PREFIX_CACHE_QUERIES_TOTAL = "vllm:prefix_cache_queries_total"  # tokens looked up
    PREFIX_CACHE_HITS_TOTAL = "vllm:prefix_cache_hits_total"  # tokens found cached
    PROMPT_TOKENS_TOTAL = "vllm:prompt_tokens_total"
    GENERATION_TOKENS_TOTAL = "vllm:generation_tokens_total"
    REQUEST_SUCCESS_TOTAL = "vllm:request_success_total"  # {finished_reason: stop|abort|error|...}
    REQUEST_QUEUE_TIME = "vllm:request_queue_time_seconds"  # histogram (the guides' time_in_queue)
    E2E_REQUEST_LATENCY = "vllm:e2e_request_latency_seconds"  # histogram
    ADMISSION_REJECTIONS_TOTAL = "vllm:admission_rejections_total"  # {reason}
    HTTP_REQUESTS_TOTAL = "http_requests_total"  # {handler, method, status: 2xx|4xx|5xx}


VLLM_ADAPTER_RULES: tuple[AdapterRule, ...] = (
    AdapterRule(
        VLLM_WAITING,
        VllmMetric.NUM_REQUESTS_WAITING,
        f"avg(avg_over_time(<<.Series>>{{<<.LabelMatchers>>}}[{QUEUE_WINDOW}])) by (<<.GroupBy>>)",
        "engine vllm: the per-pod requests (one per pair) waiting in vLLM's scheduler, averaged "
        "over the window",
    ),
)
