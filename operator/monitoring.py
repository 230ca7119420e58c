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

from .spec import PrometheusRuleSpec

# kube-state-metrics series the rules read (not exported by the server itself).
KUBE_STATE_METRICS = ("kube_deployment_status_replicas_available", "kube_deployment_spec_replicas")
RATE_WINDOW = "5m"


def _num(value: float) -> str:
    """A float as a PromQL number literal."""
    return format(float(value), ".10g")


def _server(name: str, namespace: str, extra: str = "") -> str:
    """The label matchers of one RerankerService's server series."""
    sel = f'namespace="{namespace}",job="{name}"'
    return "{" + (f"{sel},{extra}" if extra else sel) + "}"


def _deployment(name: str, namespace: str) -> str:
    return f'{{namespace="{namespace}",deployment="{name}"}}'


def _rate(metric: str, selector: str) -> str:
    return f"rate({metric}{selector}[{RATE_WINDOW}])"


def _quantile(q: float, name: str, namespace: str, extra: str = "") -> str:
    buckets = _rate(f"{Metric.HTTP_REQUEST_DURATION}_bucket", _server(name, namespace, extra))
    return f"histogram_quantile({_num(q)}, sum by (le) ({buckets}))"


def _mean(metric: str, name: str, namespace: str) -> str:
    """The mean observation of a histogram over the rate window."""
    sel = _server(name, namespace)
    return f"sum({_rate(metric + '_sum', sel)}) / sum({_rate(metric + '_count', sel)})"


def alert_rules(name: str, namespace: str, spec: PrometheusRuleSpec) -> list[dict[str, Any]]:
    """The alerting rules of one RerankerService (the `rules` of its PrometheusRule group)."""
    who = f"reranker {namespace}/{name}"
    post = 'method="POST"'  # the rerank APIs; probes and scrapes are GETs
    errors = _rate(Metric.HTTP_REQUESTS_TOTAL, _server(name, namespace, f'{post},status=~"5.."'))
    total = _rate(Metric.HTTP_REQUESTS_TOTAL, _server(name, namespace, post))
    rejected = _rate(Metric.HTTP_REQUESTS_TOTAL, _server(name, namespace, 'status="429"'))
    deploy = _deployment(name, namespace)
    labels = {"rerankerservice": name, "namespace": namespace}
    threshold_pct = _num(spec.error_rate_threshold * 100)

    def rule(alert: str, expr: str, severity: str, summary: str,
             description: str) -> dict[str, Any]:
        return {"alert": alert, "expr": expr, "for": spec.for_,
                "labels": {"severity": severity, **labels},
                "annotations": {"summary": summary, "description": description}}

    return [
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
             "{{ $value | humanize }} requests/s answered 429 (queue full) over the last "
             f"{RATE_WINDOW} (threshold {_num(spec.queue_rejections_per_second)}/s): add "
             "replicas or raise server.maxConcurrentRequests."),
        rule("RerankerNoReplicasAvailable",
             f"kube_deployment_status_replicas_available{deploy} == 0 "
             f"and on (namespace, deployment) kube_deployment_spec_replicas{deploy} > 0",
             "critical", f"{who}: no replica is available",
             "The Deployment wants replicas but none is available; the service answers "
             "nothing. See the RerankerService's conditions and the pods' events."),
    ]


def _panel(idx: int, title: str, unit: str, targets: list[tuple[str, str]]) -> dict[str, Any]:
    """A timeseries panel in a two-column grid."""
    return {
        "id": idx + 1,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (idx % 2), "y": 8 * (idx // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(targets)],
    }


def dashboard_panels(name: str, namespace: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(title, unit, [(expr, legend)]) of every panel."""
    sel = _server(name, namespace)
    return [
        ("Requests/s by status", "reqps",
         [(f"sum by (status) ({_rate(Metric.HTTP_REQUESTS_TOTAL, sel)})", "{{status}}")]),
        ("Rerank outcomes/s", "reqps",
         [(f"sum by (status) ({_rate(Metric.RERANK_REQUESTS_TOTAL, sel)})", "{{status}}")]),
        ("Request latency (POST)", "s",
         [(_quantile(0.5, name, namespace, 'method="POST"'), "p50"),
          (_quantile(0.95, name, namespace, 'method="POST"'), "p95")]),
        ("Documents per request (mean)", "short",
         [(_mean(Metric.DOCUMENTS_PER_REQUEST, name, namespace), "documents")]),
        ("Tokens per request (mean)", "short",
         [(_mean(Metric.TOKENS_PER_REQUEST, name, namespace), "tokens")]),
        ("Queue depth (pairs waiting)", "short",
         [(f"sum by (pod) ({Metric.QUEUE_DEPTH}{sel})", "{{pod}}")]),
        ("Batch size (mean sequences per forward pass)", "short",
         [(_mean(Metric.BATCH_SIZE, name, namespace), "sequences")]),
        ("Padding ratio (mean)", "percentunit",
         [(_mean(Metric.PADDING_RATIO, name, namespace), "padding")]),
        ("Prefix-cache reuse", "short",
         [(f"sum({_rate(Metric.PREFIX_CACHE_REUSE_TOTAL, sel)})", "pairs/s"),
          (f"sum({_rate(Metric.PREFIX_TOKENS_SAVED_TOTAL, sel)})", "tokens saved/s")]),
        ("GPU memory allocated", "bytes",
         [(f"sum by (pod, gpu_id) ({Metric.GPU_MEMORY}{sel})", "{{pod}} gpu {{gpu_id}}")]),
        ("Available replicas", "short",
         [(f"sum(kube_deployment_status_replicas_available{_deployment(name, namespace)})",
           "available"),
          (f"sum(kube_deployment_spec_replicas{_deployment(name, namespace)})", "desired")]),
    ]


def dashboard_config_map_name(instance: str) -> str:
    """Name of the ConfigMap holding the Grafana dashboard."""
    return f"{instance}-dashboard"


def dashboard_uid(name: str, namespace: str) -> str:
    """A stable Grafana uid (at most 40 characters) unique per RerankerService."""
    return "reranker-" + hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:20]


def dashboard(name: str, namespace: str) -> dict[str, Any]:
    """The Grafana dashboard model of one RerankerService."""
    panels = [_panel(i, title, unit, targets)
              for i, (title, unit, targets) in enumerate(dashboard_panels(name, namespace))]
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


def dashboard_json(name: str, namespace: str) -> str:
    """The dashboard as the JSON text the Grafana sidecar reads from the ConfigMap."""
    return json.dumps(dashboard(name, namespace), indent=2, sort_keys=True)
