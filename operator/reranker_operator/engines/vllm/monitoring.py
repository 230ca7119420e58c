"""The alerts and dashboard panels of a RerankerService with `engine: vllm`, in the series names
of the pinned vLLM version (engines/vllm/facts.py VllmMetric, checked against a running vLLM).

vLLM counts each (query, document) pair as one request. The guides' signals: queue time p95
under 200 ms, KV-cache usage below 95%, failed requests, prefix-cache hit ratio above 50%.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reranker_operator.engines.base import AlertRule, MakeAlert, Panel
from reranker_operator.engines.vllm.facts import VllmMetric as V
from reranker_operator.render import promql
from reranker_operator.render.promql import RATE_WINDOW, num, rate

if TYPE_CHECKING:
    from reranker_operator.api.spec import PrometheusRuleSpec


def _hit_ratio(sel: str) -> str:
    hits, queries = rate(V.PREFIX_CACHE_HITS_TOTAL, sel), rate(V.PREFIX_CACHE_QUERIES_TOTAL, sel)
    return f"sum({hits}) / sum({queries})"


def vllm_alerts(
    name: str, namespace: str, spec: PrometheusRuleSpec, rule: MakeAlert, *, prefix_caching: bool
) -> list[AlertRule]:
    """The engine-specific alerts; `rule(alert, expr, severity, summary, description)` builds
    one (with the shared labels and `for`)."""
    who = f"reranker {namespace}/{name} (vLLM)"
    sel = promql.server(name, namespace)
    errors = rate(V.HTTP_REQUESTS_TOTAL, promql.server(name, namespace, 'status="5xx"'))
    total = rate(V.HTTP_REQUESTS_TOTAL, sel)
    rules = [
        rule(
            "RerankerHighErrorRate",
            f"sum({errors}) / sum({total}) > {num(spec.error_rate_threshold)}",
            "critical",
            f"{who}: high share of 5xx answers",
            "{{ $value | humanizePercentage }} of vLLM's HTTP answers were 5xx over the last "
            f"{RATE_WINDOW} (threshold {num(spec.error_rate_threshold * 100)}%).",
        ),
        rule(
            "RerankerHighLatency",
            f"{promql.histogram_p(0.95, V.E2E_REQUEST_LATENCY, sel)} > "
            f"{num(spec.p95_latency_seconds)}",
            "warning",
            f"{who}: p95 latency is high",
            "p95 end-to-end latency of a scored pair is {{ $value | humanizeDuration }} over "
            f"the last {RATE_WINDOW} (threshold {num(spec.p95_latency_seconds)}s).",
        ),
        rule(
            "RerankerQueueTimeHigh",
            f"{promql.histogram_p(0.95, V.REQUEST_QUEUE_TIME, sel)} > "
            f"{num(spec.queue_time_p95_seconds)}",
            "warning",
            f"{who}: pairs wait long in vLLM's queue",
            "p95 time a pair waits in vLLM's scheduler queue is {{ $value | humanizeDuration }} "
            f"over the last {RATE_WINDOW} (threshold {num(spec.queue_time_p95_seconds)}s): "
            "add replicas (autoscaling on queuedPairsPerPod) or raise vllm.maxNumSeqs.",
        ),
        _kv_cache_full(who, sel, spec, rule),
        rule(
            "RerankerQueueRejections",
            f"sum({rate(V.ADMISSION_REJECTIONS_TOTAL, sel)}) > "
            f"{num(spec.queue_rejections_per_second)}",
            "warning",
            f"{who}: requests refused at admission",
            "{{ $value | humanize }} requests/s refused by vLLM's admission control over the "
            f"last {RATE_WINDOW} (threshold {num(spec.queue_rejections_per_second)}/s).",
        ),
    ]
    if prefix_caching:
        rules.append(_prefix_reuse_low(who, sel, spec, rule))
    return rules


def vllm_engine_alerts(
    name: str, namespace: str, spec: PrometheusRuleSpec, rule: MakeAlert, *, prefix_caching: bool
) -> list[AlertRule]:
    """The alerts on vLLM's engine itself (KV cache, prefix cache): with the front too, whose
    own alerts watch the requests."""
    who = f"reranker {namespace}/{name} (vLLM)"
    sel = promql.server(name, namespace)
    rules = [_kv_cache_full(who, sel, spec, rule)]
    if prefix_caching:
        rules.append(_prefix_reuse_low(who, sel, spec, rule))
    return rules


def _kv_cache_full(who: str, sel: str, spec: PrometheusRuleSpec, rule: MakeAlert) -> AlertRule:
    return rule(
        "RerankerKVCacheFull",
        f"max by (pod) ({V.KV_CACHE_USAGE}{sel}) > {num(spec.kv_cache_usage_ratio)}",
        "warning",
        f"{who}: KV cache nearly full",
        "{{ $labels.pod }} uses {{ $value | humanizePercentage }} of its KV cache "
        f"(threshold {num(spec.kv_cache_usage_ratio * 100)}%): requests queue for memory; "
        "raise vllm.gpuMemoryUtilization, lower vllm.maxModelLen or add replicas.",
    )


def _prefix_reuse_low(who: str, sel: str, spec: PrometheusRuleSpec, rule: MakeAlert) -> AlertRule:
    queries = rate(V.PREFIX_CACHE_QUERIES_TOTAL, sel)
    return rule(
        "RerankerPrefixReuseLow",
        f"{_hit_ratio(sel)} < {num(spec.prefix_reuse_ratio)} and sum({queries}) > 0",
        "warning",
        f"{who}: prefix-cache hit ratio is low",
        "{{ $value | humanizePercentage }} of prompt tokens hit vLLM's prefix cache over "
        f"the last {RATE_WINDOW} (threshold {num(spec.prefix_reuse_ratio * 100)}%): "
        "requests carry few documents each, or the KV cache is too small to keep prefixes.",
    )


def vllm_panels(name: str, namespace: str) -> list[Panel]:
    """The engine-specific dashboard panels."""
    sel = promql.server(name, namespace)
    return [
        (
            "Requests/s by status",
            "reqps",
            "vLLM's HTTP answers per second by status class.",
            [(f"sum by (status) ({rate(V.HTTP_REQUESTS_TOTAL, sel)})", "{{status}}")],
        ),
        (
            "Pairs scored/s",
            "ops",
            "Pairs (vLLM requests) finished per second, by reason.",
            [
                (
                    f"sum by (finished_reason) ({rate(V.REQUEST_SUCCESS_TOTAL, sel)})",
                    "{{finished_reason}}",
                )
            ],
        ),
        (
            "Pairs waiting and running per pod",
            "short",
            "vLLM's scheduler: pairs waiting (what autoscaling on queuedPairsPerPod reads) and "
            "running.",
            [
                (f"sum by (pod) ({V.NUM_REQUESTS_WAITING}{sel})", "{{pod}} waiting"),
                (f"sum by (pod) ({V.NUM_REQUESTS_RUNNING}{sel})", "{{pod}} running"),
            ],
        ),
        (
            "Queue time",
            "s",
            "p50 and p95 time a pair waits in vLLM's queue (guide: p95 < 200 ms).",
            [
                (promql.histogram_p(0.5, V.REQUEST_QUEUE_TIME, sel), "p50"),
                (promql.histogram_p(0.95, V.REQUEST_QUEUE_TIME, sel), "p95"),
            ],
        ),
        (
            "End-to-end latency per pair",
            "s",
            "p50 and p95 from arrival to score.",
            [
                (promql.histogram_p(0.5, V.E2E_REQUEST_LATENCY, sel), "p50"),
                (promql.histogram_p(0.95, V.E2E_REQUEST_LATENCY, sel), "p95"),
            ],
        ),
        *vllm_engine_panels(name, namespace),
    ]


def vllm_engine_panels(name: str, namespace: str) -> list[Panel]:
    """The panels on vLLM's engine itself (memory, prefix cache, tokens, admission): with the
    front too, whose own panels show the requests."""
    sel = promql.server(name, namespace)
    return [
        (
            "KV-cache usage",
            "percentunit",
            "Share of the KV cache in use per pod (70-95% is healthy).",
            [(f"max by (pod) ({V.KV_CACHE_USAGE}{sel})", "{{pod}}")],
        ),
        (
            "Prefix-cache hit ratio",
            "percentunit",
            "Share of prompt tokens served from vLLM's prefix cache (guide: > 50%).",
            [(_hit_ratio(sel), "hits")],
        ),
        (
            "Prompt vs generation tokens/s",
            "short",
            "A reranker only reads prompts: generation tokens should stay at zero.",
            [
                (f"sum({rate(V.PROMPT_TOKENS_TOTAL, sel)})", "prompt"),
                (f"sum({rate(V.GENERATION_TOKENS_TOTAL, sel)})", "generation"),
            ],
        ),
        (
            "Refused at admission/s",
            "reqps",
            "Requests vLLM refused before scheduling them.",
            [(f"sum by (reason) ({rate(V.ADMISSION_REJECTIONS_TOTAL, sel)})", "{{reason}}")],
        ),
    ]
