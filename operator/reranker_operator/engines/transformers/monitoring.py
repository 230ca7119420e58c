"""The alerts and dashboard panels of the bundled server (engine: transformers), in the series it
exports (reranker_contract.Metric)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reranker_contract import Metric
from reranker_operator.engines.base import AlertRule, MakeAlert, Panel
from reranker_operator.render import promql
from reranker_operator.render.promql import RATE_WINDOW
from reranker_operator.render.promql import num as _num
from reranker_operator.render.promql import rate as _rate

if TYPE_CHECKING:
    from reranker_operator.api.spec import PrometheusRuleSpec


def _server(name: str, namespace: str, extra: str = "") -> str:
    return promql.server(name, namespace, extra)


def _quantile(q: float, name: str, namespace: str, extra: str = "") -> str:
    return promql.histogram_p(q, Metric.HTTP_REQUEST_DURATION, _server(name, namespace, extra))


def _mean(metric: str, name: str, namespace: str) -> str:
    return promql.mean(metric, _server(name, namespace))


def _stage_p95(metric: str, sel: str) -> str:
    return promql.histogram_p(0.95, metric, sel)


def server_alerts(
    name: str,
    namespace: str,
    spec: PrometheusRuleSpec,
    rule: MakeAlert,
    *,
    prefix_reuse: bool,
    holds_device: bool = True,
) -> list[AlertRule]:
    """The bundled server's alerts; `prefix_reuse`: a Qwen3-style model, whose documents should
    reuse the shared prefix; `holds_device`: the server holds the model's GPU (False: the front
    of an engine process that does, whose own alerts watch its memory)."""
    who = f"reranker {namespace}/{name}"
    post = 'method="POST"'  # the rerank APIs; probes and scrapes are GETs
    sel = _server(name, namespace)
    errors = _rate(Metric.HTTP_REQUESTS_TOTAL, _server(name, namespace, f'{post},status=~"5.."'))
    total = _rate(Metric.HTTP_REQUESTS_TOTAL, _server(name, namespace, post))
    rejected = _rate(Metric.RERANK_REQUESTS_TOTAL, _server(name, namespace, 'status="rejected"'))
    threshold_pct = _num(spec.error_rate_threshold * 100)
    rules = [
        rule(
            "RerankerHighErrorRate",
            f"sum({errors}) / sum({total}) > {_num(spec.error_rate_threshold)}",
            "critical",
            f"{who}: high share of 5xx answers",
            "{{ $value | humanizePercentage }} of rerank requests answered 5xx over the last "
            f"{RATE_WINDOW} (threshold {threshold_pct}%).",
        ),
        rule(
            "RerankerHighLatency",
            f"{_quantile(0.95, name, namespace, post)} > {_num(spec.p95_latency_seconds)}",
            "warning",
            f"{who}: p95 latency is high",
            "p95 rerank request latency is {{ $value | humanizeDuration }} over the last "
            f"{RATE_WINDOW} (threshold {_num(spec.p95_latency_seconds)}s).",
        ),
        rule(
            "RerankerQueueRejections",
            f"sum({rejected}) > {_num(spec.queue_rejections_per_second)}",
            "warning",
            f"{who}: requests rejected, the queue is full",
            "{{ $value | humanize }} requests/s refused with 429 because the queue was full "
            f"over the last {RATE_WINDOW} (threshold {_num(spec.queue_rejections_per_second)}/s):"
            " add replicas or raise server.maxConcurrentRequests.",
        ),
        rule(
            "RerankerQueueTimeHigh",
            f"{_stage_p95(Metric.QUEUE_TIME, sel)} > {_num(spec.queue_time_p95_seconds)}",
            "warning",
            f"{who}: documents wait long for the model",
            "p95 time a pair waits in the queue before its forward pass is "
            "{{ $value | humanizeDuration }} over the last "
            f"{RATE_WINDOW} (threshold {_num(spec.queue_time_p95_seconds)}s): the replicas are "
            "saturated; add replicas (autoscaling.maxReplicas) or a faster GPU.",
        ),
    ]
    if holds_device:
        rules.append(
            rule(
                "RerankerGPUMemoryHigh",
                f"max by (pod, gpu_id) ({Metric.GPU_MEMORY_RESERVED}{sel} / "
                f"{Metric.GPU_MEMORY_TOTAL}{sel}) > {_num(spec.gpu_memory_ratio)}",
                "warning",
                f"{who}: GPU memory nearly full",
                "{{ $labels.pod }} holds {{ $value | humanizePercentage }} of GPU {{ $labels.gpu_id }}"
                f"'s memory (threshold {_num(spec.gpu_memory_ratio * 100)}%): lower "
                "server.maxBatchTokens, use float16/bfloat16 or quantization, or a larger GPU.",
            )
        )
    rules.append(
        rule(
            "RerankerScoreCheckFailing",
            f"min by (pod) ({Metric.SCORE_CHECK_PASSED}{sel}) == 0",
            "warning",
            f"{who}: a pod's score check failed",
            "Pod {{ $labels.pod }} scored its probes wrong, so it stays not-ready and its rollout "
            "is held (the old pods keep serving): see the RerankerService's status and events "
            "for the probe that failed and what the pod scored.",
        )
    )
    if prefix_reuse:
        scored = _rate(f"{Metric.DOCUMENTS_PER_REQUEST}_sum", sel)
        reused = _rate(Metric.PREFIX_CACHE_REUSE_TOTAL, sel)
        rules.append(
            rule(
                "RerankerPrefixReuseLow",
                f"(sum({reused}) or vector(0)) / sum({scored}) < {_num(spec.prefix_reuse_ratio)} "
                f"and sum({scored}) > 0",
                "warning",
                f"{who}: documents no longer share the prompt prefix",
                "Only {{ $value | humanizePercentage }} of scored pairs reused a shared prefix KV "
                f"cache over the last {RATE_WINDOW} (threshold "
                f"{_num(spec.prefix_reuse_ratio * 100)}%): requests carry one or two documents, or "
                "the prefix path turned itself off (see /info shortcuts and the server log).",
            )
        )
    return rules


def server_panels(name: str, namespace: str, *, holds_device: bool = True) -> list[Panel]:
    """Panels on the bundled server's own series; `holds_device` as in `server_alerts`."""
    sel = _server(name, namespace)
    panels: list[Panel] = [
        (
            "Requests/s by status",
            "reqps",
            "HTTP requests per second, by status code (all routes).",
            [(f"sum by (status) ({_rate(Metric.HTTP_REQUESTS_TOTAL, sel)})", "{{status}}")],
        ),
        (
            "Rerank outcomes/s",
            "reqps",
            "Rerank requests that reached the engine, by outcome: ok, invalid (e.g. too long), "
            "rejected (queue full or stopping), error.",
            [(f"sum by (status) ({_rate(Metric.RERANK_REQUESTS_TOTAL, sel)})", "{{status}}")],
        ),
        (
            "Request latency (POST)",
            "s",
            "p50 and p95 of the rerank routes' HTTP latency.",
            [
                (_quantile(0.5, name, namespace, 'method="POST"'), "p50"),
                (_quantile(0.95, name, namespace, 'method="POST"'), "p95"),
            ],
        ),
        (
            "Time per stage (p95)",
            "s",
            "Where a request's time goes: tokenization (per request), queue (per pair, before its "
            "forward pass), inference (per batch the model ran).",
            [
                (_stage_p95(Metric.TOKENIZATION_DURATION, sel), "tokenization"),
                (_stage_p95(Metric.QUEUE_TIME, sel), "queue"),
                (_stage_p95(Metric.INFERENCE_DURATION_STAGE, sel), "inference"),
            ],
        ),
        (
            "Documents per request (mean)",
            "short",
            "Mean documents (pairs) per answered request.",
            [(_mean(Metric.DOCUMENTS_PER_REQUEST, name, namespace), "documents")],
        ),
        (
            "Tokens per request (mean)",
            "short",
            "Mean prompt tokens per answered request.",
            [(_mean(Metric.TOKENS_PER_REQUEST, name, namespace), "tokens")],
        ),
        (
            "Work held per pod",
            "short",
            "Pairs queued, tokens queued and pairs being scored, per pod: what autoscaling on "
            "queued work reads.",
            [
                (f"sum by (pod) ({Metric.QUEUE_DEPTH}{sel})", "{{pod}} pairs queued"),
                (f"sum by (pod) ({Metric.QUEUED_TOKENS}{sel})", "{{pod}} tokens queued"),
                (f"sum by (pod) ({Metric.INFLIGHT_PAIRS}{sel})", "{{pod}} pairs in flight"),
            ],
        ),
        (
            "Batch size (mean sequences per forward pass)",
            "short",
            "Mean sequences per forward pass the model ran (a shared prefix's own forward counts "
            "as one).",
            [(_mean(Metric.BATCH_SIZE, name, namespace), "sequences")],
        ),
        (
            "Padding ratio (mean)",
            "percentunit",
            "Share of padding in the forward passes' padded tokens: compute spent on nothing.",
            [(_mean(Metric.PADDING_RATIO, name, namespace), "padding")],
        ),
        (
            "Forward passes/s by path",
            "ops",
            "Forward passes per second: prefix (a shared prompt prefix), continuation (documents "
            "on its KV cache), full (whole sequences).",
            [(f"sum by (path) ({_rate(Metric.FORWARD_PASSES_TOTAL, sel)})", "{{path}}")],
        ),
        (
            "Prefix-cache reuse",
            "percentunit",
            "Share of scored pairs computed on a shared prefix KV cache (Qwen3 models), and the "
            "prefix tokens it saved per second (right axis values in tokens/s).",
            [
                (
                    f"(sum({_rate(Metric.PREFIX_CACHE_REUSE_TOTAL, sel)}) or vector(0)) / "
                    f"sum({_rate(f'{Metric.DOCUMENTS_PER_REQUEST}_sum', sel)})",
                    "pairs reusing a prefix",
                ),
                (f"sum({_rate(Metric.PREFIX_TOKENS_SAVED_TOTAL, sel)})", "tokens saved/s"),
            ],
        ),
        (
            "Model throughput",
            "short",
            "Real tokens the model's layers computed per second, and the model FLOPs spent on them "
            "(in GFLOP/s).",
            [
                (f"sum({_rate(Metric.COMPUTED_TOKENS_TOTAL, sel)})", "tokens/s"),
                (f"sum({_rate(Metric.MODEL_FLOPS_TOTAL, sel)}) / 1e9", "GFLOP/s"),
            ],
        ),
    ]
    if holds_device:
        panels.append(
            (
                "GPU memory used",
                "percentunit",
                "Memory the server holds on each GPU (reserved by torch's allocator) and what its "
                "tensors use of it, as shares of the device's total.",
                [
                    (
                        f"max by (pod, gpu_id) ({Metric.GPU_MEMORY_RESERVED}{sel} / "
                        f"{Metric.GPU_MEMORY_TOTAL}{sel})",
                        "{{pod}} gpu {{gpu_id}} reserved",
                    ),
                    (
                        f"max by (pod, gpu_id) ({Metric.GPU_MEMORY}{sel} / {Metric.GPU_MEMORY_TOTAL}{sel})",
                        "{{pod}} gpu {{gpu_id}} allocated by tensors",
                    ),
                ],
            )
        )
    panels += [
        (
            "Score check",
            "short",
            "Per pod, its score check before Ready: 1 passed, 0 failed (the pod stays not-ready "
            "and the rollout holds; the RerankerService's status names the probe).",
            [(f"max by (pod) ({Metric.SCORE_CHECK_PASSED}{sel})", "{{pod}}")],
        ),
        (
            "Refused requests/s",
            "reqps",
            "Requests refused with 429: the queue full (add replicas) or a client over its rate "
            "limit (server.auth.rateLimit).",
            [
                (
                    f"sum({_rate(Metric.RERANK_REQUESTS_TOTAL, _server(name, namespace, 'status=' + chr(34) + 'rejected' + chr(34)))})",
                    "queue full",
                ),
                (
                    f"sum by (limit) ({_rate(Metric.RATE_LIMITED_TOTAL, sel)})",
                    "rate limit: {{limit}}",
                ),
            ],
        ),
    ]
    return panels
