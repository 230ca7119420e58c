"""Alert rules and the Grafana dashboard of one RerankerService, built as plain data.

Every PromQL expression is scoped to one Service's series: `namespace` and `job` (the
prometheus-operator sets `job` to the scraped Service's name, which is the RerankerService's
name) for the server's own metrics, `namespace` and `deployment` for kube-state-metrics.
Names and namespaces are DNS labels (checked before rendering) and thresholds are numbers, so
no spec value can change an expression's structure.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from reranker_contract import Metric

from reranker_operator.render import promql
from reranker_operator.engines.vllm.monitoring import vllm_alerts, vllm_panels
from reranker_operator.render.promql import RATE_WINDOW
from reranker_operator.render.promql import deployment as _deployment
from reranker_operator.render.promql import num as _num
from reranker_operator.render.promql import pods as _pods
from reranker_operator.render.promql import rate as _rate
from reranker_operator.api.spec import PrometheusRuleSpec

# kube-state-metrics series the rules read (not exported by the server itself).
KUBE_STATE_METRICS = ("kube_deployment_status_replicas_available", "kube_deployment_spec_replicas",
                      "kube_pod_container_status_waiting_reason",
                      "kube_pod_container_status_restarts_total")


def _server(name: str, namespace: str, extra: str = "") -> str:
    return promql.server(name, namespace, extra)


def _quantile(q: float, name: str, namespace: str, extra: str = "") -> str:
    return promql.histogram_p(q, Metric.HTTP_REQUEST_DURATION, _server(name, namespace, extra))


def _mean(metric: str, name: str, namespace: str) -> str:
    return promql.mean(metric, _server(name, namespace))


def _stage_p95(metric: str, sel: str) -> str:
    return promql.histogram_p(0.95, metric, sel)


def alert_rules(name: str, namespace: str, spec: PrometheusRuleSpec, *, causal: bool = False,
                engine: str = "transformers", prefix_caching: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """The alerting rules of one RerankerService (the `rules` of its PrometheusRule group);
    `causal`: a Qwen3-style model, whose documents should reuse the shared prefix; `engine`
    vllm: vLLM's signals in its series (`prefix_caching`: its prefix cache is on)."""
    who = f"reranker {namespace}/{name}"
    post = 'method="POST"'  # the rerank APIs; probes and scrapes are GETs
    sel = _server(name, namespace)
    errors = _rate(Metric.HTTP_REQUESTS_TOTAL, _server(name, namespace, f'{post},status=~"5.."'))
    total = _rate(Metric.HTTP_REQUESTS_TOTAL, _server(name, namespace, post))
    rejected = _rate(Metric.RERANK_REQUESTS_TOTAL, _server(name, namespace, 'status="rejected"'))
    deploy = _deployment(name, namespace)
    labels = {"rerankerservice": name, "namespace": namespace}
    threshold_pct = _num(spec.error_rate_threshold * 100)

    def rule(alert: str, expr: str, severity: str, summary: str,
             description: str) -> dict[str, Any]:
        return {"alert": alert, "expr": expr, "for": spec.for_,
                "labels": {"severity": severity, **labels},
                "annotations": {"summary": summary, "description": description}}

    workload = [
        rule("RerankerNoReplicasAvailable",
             f"kube_deployment_status_replicas_available{deploy} == 0 "
             f"and on (namespace, deployment) kube_deployment_spec_replicas{deploy} > 0",
             "critical", f"{who}: no replica is available",
             "The Deployment wants replicas but none is available; the service answers "
             "nothing. See the RerankerService's conditions and the pods' events."),
        rule("RerankerPodCrashLooping",
             "max by (pod) (kube_pod_container_status_waiting_reason"
             f"{_pods(name, namespace, 'reason=' + chr(34) + 'CrashLoopBackOff' + chr(34))}) > 0",
             "critical", f"{who}: a server pod is crash-looping",
             "Pod {{ $labels.pod }}'s server container is in CrashLoopBackOff: see "
             "`kubectl logs --previous` (model load failure, out of memory, bad settings)."),
    ]
    if engine == "vllm":
        return [*vllm_alerts(name, namespace, spec, prefix_caching=prefix_caching, rule=rule),
                *workload]  # fmt: skip
    rules = [
        rule("RerankerHighErrorRate",
             f"sum({errors}) / sum({total}) > {_num(spec.error_rate_threshold)}",
             "critical", f"{who}: high share of 5xx answers",
             "{{ $value | humanizePercentage }} of rerank requests answered 5xx over the last "
             f"{RATE_WINDOW} (threshold {threshold_pct}%)."),
        rule("RerankerHighLatency",
             f"{_quantile(0.95, name, namespace, post)} > {_num(spec.p95_latency_seconds)}",
             "warning", f"{who}: p95 latency is high",
             "p95 rerank request latency is {{ $value | humanizeDuration }} over the last "
             f"{RATE_WINDOW} (threshold {_num(spec.p95_latency_seconds)}s)."),
        rule("RerankerQueueRejections",
             f"sum({rejected}) > {_num(spec.queue_rejections_per_second)}",
             "warning", f"{who}: requests rejected, the queue is full",
             "{{ $value | humanize }} requests/s refused with 429 because the queue was full "
             f"over the last {RATE_WINDOW} (threshold {_num(spec.queue_rejections_per_second)}/s):"
             " add replicas or raise server.maxConcurrentRequests."),
        rule("RerankerQueueTimeHigh",
             f"{_stage_p95(Metric.QUEUE_TIME, sel)} > {_num(spec.queue_time_p95_seconds)}",
             "warning", f"{who}: documents wait long for the model",
             "p95 time a pair waits in the queue before its forward pass is "
             "{{ $value | humanizeDuration }} over the last "
             f"{RATE_WINDOW} (threshold {_num(spec.queue_time_p95_seconds)}s): the replicas are "
             "saturated; add replicas (autoscaling.maxReplicas) or a faster GPU."),
        rule("RerankerGPUMemoryHigh",
             f"max by (pod, gpu_id) ({Metric.GPU_MEMORY_RESERVED}{sel} / "
             f"{Metric.GPU_MEMORY_TOTAL}{sel}) > {_num(spec.gpu_memory_ratio)}",
             "warning", f"{who}: GPU memory nearly full",
             "{{ $labels.pod }} holds {{ $value | humanizePercentage }} of GPU {{ $labels.gpu_id }}"
             f"'s memory (threshold {_num(spec.gpu_memory_ratio * 100)}%): lower "
             "server.maxBatchTokens, use float16/bfloat16 or quantization, or a larger GPU."),
    ]
    if causal:
        scored = _rate(f"{Metric.DOCUMENTS_PER_REQUEST}_sum", sel)
        reused = _rate(Metric.PREFIX_CACHE_REUSE_TOTAL, sel)
        rules.append(rule(
            "RerankerPrefixReuseLow",
            f"(sum({reused}) or vector(0)) / sum({scored}) < {_num(spec.prefix_reuse_ratio)} "
            f"and sum({scored}) > 0",
            "warning", f"{who}: documents no longer share the prompt prefix",
            "Only {{ $value | humanizePercentage }} of scored pairs reused a shared prefix KV "
            f"cache over the last {RATE_WINDOW} (threshold "
            f"{_num(spec.prefix_reuse_ratio * 100)}%): requests carry one or two documents, or "
            "the prefix path turned itself off (see /info shortcuts and the server log)."))
    return [*rules, *workload]


def _panel(idx: int, title: str, unit: str, description: str,
           targets: list[tuple[str, str]]) -> dict[str, Any]:  # fmt: skip
    """A timeseries panel in a two-column grid."""
    return {
        "id": idx + 1,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (idx % 2), "y": 8 * (idx // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(targets)],
    }


Panel = tuple[str, str, str, list[tuple[str, str]]]  # title, unit, description, [(expr, legend)]


def dashboard_panels(name: str, namespace: str, engine: str = "transformers") -> list[Panel]:
    """Every panel: (title, unit, description, [(expr, legend)])."""
    engine_panels = (vllm_panels(name, namespace) if engine == "vllm"
                     else server_panels(name, namespace))  # fmt: skip
    return [*engine_panels, *workload_panels(name, namespace)]


def workload_panels(name: str, namespace: str) -> list[Panel]:
    """Panels on the Deployment's pods, from kube-state-metrics (either engine)."""
    deploy = _deployment(name, namespace)
    return [
        ("Available replicas", "short",
         "Replicas available and desired (kube-state-metrics).",
         [(f"sum(kube_deployment_status_replicas_available{deploy})", "available"),
          (f"sum(kube_deployment_spec_replicas{deploy})", "desired")]),
        ("Server restarts (1h)", "short",
         "Restarts of the server container per pod over the last hour (kube-state-metrics).",
         [(f"sum by (pod) (increase(kube_pod_container_status_restarts_total{_pods(name, namespace)}[1h]))",
           "{{pod}}")]),
    ]


def server_panels(name: str, namespace: str) -> list[Panel]:
    """Panels on the bundled server's own series."""
    sel = _server(name, namespace)
    return [
        ("Requests/s by status", "reqps",
         "HTTP requests per second, by status code (all routes).",
         [(f"sum by (status) ({_rate(Metric.HTTP_REQUESTS_TOTAL, sel)})", "{{status}}")]),
        ("Rerank outcomes/s", "reqps",
         "Rerank requests that reached the engine, by outcome: ok, invalid (e.g. too long), "
         "rejected (queue full or stopping), error.",
         [(f"sum by (status) ({_rate(Metric.RERANK_REQUESTS_TOTAL, sel)})", "{{status}}")]),
        ("Request latency (POST)", "s",
         "p50 and p95 of the rerank routes' HTTP latency.",
         [(_quantile(0.5, name, namespace, 'method="POST"'), "p50"),
          (_quantile(0.95, name, namespace, 'method="POST"'), "p95")]),
        ("Time per stage (p95)", "s",
         "Where a request's time goes: tokenization (per request), queue (per pair, before its "
         "forward pass), inference (per batch the model ran).",
         [(_stage_p95(Metric.TOKENIZATION_DURATION, sel), "tokenization"),
          (_stage_p95(Metric.QUEUE_TIME, sel), "queue"),
          (_stage_p95(Metric.INFERENCE_DURATION_STAGE, sel), "inference")]),
        ("Documents per request (mean)", "short",
         "Mean documents (pairs) per answered request.",
         [(_mean(Metric.DOCUMENTS_PER_REQUEST, name, namespace), "documents")]),
        ("Tokens per request (mean)", "short",
         "Mean prompt tokens per answered request.",
         [(_mean(Metric.TOKENS_PER_REQUEST, name, namespace), "tokens")]),
        ("Work held per pod", "short",
         "Pairs queued, tokens queued and pairs being scored, per pod: what autoscaling on "
         "queued work reads.",
         [(f"sum by (pod) ({Metric.QUEUE_DEPTH}{sel})", "{{pod}} pairs queued"),
          (f"sum by (pod) ({Metric.QUEUED_TOKENS}{sel})", "{{pod}} tokens queued"),
          (f"sum by (pod) ({Metric.INFLIGHT_PAIRS}{sel})", "{{pod}} pairs in flight")]),
        ("Batch size (mean sequences per forward pass)", "short",
         "Mean sequences per forward pass the model ran (a shared prefix's own forward counts "
         "as one).",
         [(_mean(Metric.BATCH_SIZE, name, namespace), "sequences")]),
        ("Padding ratio (mean)", "percentunit",
         "Share of padding in the forward passes' padded tokens: compute spent on nothing.",
         [(_mean(Metric.PADDING_RATIO, name, namespace), "padding")]),
        ("Forward passes/s by path", "ops",
         "Forward passes per second: prefix (a shared prompt prefix), continuation (documents "
         "on its KV cache), full (whole sequences).",
         [(f"sum by (path) ({_rate(Metric.FORWARD_PASSES_TOTAL, sel)})", "{{path}}")]),
        ("Prefix-cache reuse", "percentunit",
         "Share of scored pairs computed on a shared prefix KV cache (Qwen3 models), and the "
         "prefix tokens it saved per second (right axis values in tokens/s).",
         [(f"(sum({_rate(Metric.PREFIX_CACHE_REUSE_TOTAL, sel)}) or vector(0)) / "
           f"sum({_rate(f'{Metric.DOCUMENTS_PER_REQUEST}_sum', sel)})", "pairs reusing a prefix"),
          (f"sum({_rate(Metric.PREFIX_TOKENS_SAVED_TOTAL, sel)})", "tokens saved/s")]),
        ("Model throughput", "short",
         "Real tokens the model's layers computed per second, and the model FLOPs spent on them "
         "(in GFLOP/s).",
         [(f"sum({_rate(Metric.COMPUTED_TOKENS_TOTAL, sel)})", "tokens/s"),
          (f"sum({_rate(Metric.MODEL_FLOPS_TOTAL, sel)}) / 1e9", "GFLOP/s")]),
        ("GPU memory used", "percentunit",
         "Memory the server holds on each GPU (reserved by torch's allocator) and what its "
         "tensors use of it, as shares of the device's total.",
         [(f"max by (pod, gpu_id) ({Metric.GPU_MEMORY_RESERVED}{sel} / "
           f"{Metric.GPU_MEMORY_TOTAL}{sel})", "{{pod}} gpu {{gpu_id}} reserved"),
          (f"max by (pod, gpu_id) ({Metric.GPU_MEMORY}{sel} / {Metric.GPU_MEMORY_TOTAL}{sel})",
           "{{pod}} gpu {{gpu_id}} allocated by tensors")]),
        ("Refused requests/s", "reqps",
         "Requests refused with 429: the queue full (add replicas) or a client over its rate "
         "limit (server.auth.rateLimit).",
         [(f"sum({_rate(Metric.RERANK_REQUESTS_TOTAL, _server(name, namespace, 'status=' + chr(34) + 'rejected' + chr(34)))})",
           "queue full"),
          (f"sum by (limit) ({_rate(Metric.RATE_LIMITED_TOTAL, sel)})", "rate limit: {{limit}}")]),
    ]


def dashboard_config_map_name(instance: str) -> str:
    """Name of the ConfigMap holding the Grafana dashboard."""
    return f"{instance}-dashboard"


def dashboard_uid(name: str, namespace: str) -> str:
    """A stable Grafana uid (at most 40 characters) unique per RerankerService."""
    return "reranker-" + hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:20]


def dashboard(name: str, namespace: str, engine: str = "transformers") -> dict[str, Any]:
    """The Grafana dashboard model of one RerankerService."""
    panels = [_panel(i, title, unit, description, targets)
              for i, (title, unit, description, targets)
              in enumerate(dashboard_panels(name, namespace, engine))]
    return {
        "uid": dashboard_uid(name, namespace),
        "title": f"Reranker {namespace}/{name}",
        "tags": ["reranker", namespace],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": [{
            "name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "hide": 0,
        }]},
        "panels": panels,
    }


def dashboard_json(name: str, namespace: str, engine: str = "transformers") -> str:
    """The dashboard as the JSON text the Grafana sidecar reads from the ConfigMap."""
    return json.dumps(dashboard(name, namespace, engine), indent=2, sort_keys=True)
