"""The operator's alerts and Grafana dashboard row, as plain data, from `OperatorMetric`.

`reranker_devtools.generate` writes them into the opt-in monitoring overlay
(deploy/overlays/monitoring/: prometheusrule.yaml, dashboard.yaml), so the overlay's queries
name exactly the series the operator exports. Every query is scoped to the scrape job of the
overlay's ServiceMonitor (`job` = the metrics Service's name).
"""

from __future__ import annotations

import json
from typing import Any

from reranker_operator.api.constants import OPERATOR_NAMESPACE
from reranker_operator.controller.metrics import CONTROLLER, OperatorMetric
from reranker_operator.render.monitoring import grafana_dashboard

M = OperatorMetric
METRICS_SERVICE = "reranker-operator-metrics"  # the overlay's Service; Prometheus's `job`
NAMESPACE = OPERATOR_NAMESPACE
JOB = f'job="{METRICS_SERVICE}"'
NOT_READY_FOR = "15m"
ERRORS_FOR = "15m"
DOWN_FOR = "5m"
RULE_NAME = "reranker-operator"
DASHBOARD_NAME = "reranker-operator-dashboard"
DASHBOARD_FILE = "reranker-operator.json"
LABELS = {
    "app.kubernetes.io/name": "reranker-operator",
    "app.kubernetes.io/part-of": "reranker-operator",
    "app.kubernetes.io/component": "monitoring",
}


def _rule(alert: str, expr: str, for_: str, severity: str, summary: str, text: str) -> dict:
    return {
        "alert": alert,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": text},
    }


def alert_rules() -> list[dict[str, Any]]:
    """The operator's alerts: reconcile errors sustained, a RerankerService not Ready, the
    operator down or not watching."""
    return [
        _rule(
            "RerankerOperatorReconcileErrors",
            f"sum(rate({M.RECONCILE_ERRORS_TOTAL}{{{JOB}}}[5m])) > 0",
            ERRORS_FOR,
            "warning",
            "The reranker operator's reconcile passes keep failing",
            "Reconcile passes have failed for "
            + ERRORS_FOR
            + " ({{ $value | humanize }}/s). See "
            + f"{M.RECONCILE_FAILURES_TOTAL} by kind and the RerankerServices' Degraded "
            "condition (kubectl get rerankerservices -A).",
        ),
        _rule(
            "RerankerServiceNotReady",
            f'max({M.RERANKER_SERVICES}{{{JOB},condition="Ready",status!="True"}}) > 0',
            NOT_READY_FOR,
            "warning",
            "A RerankerService has not been Ready for " + NOT_READY_FOR,
            "{{ $value }} RerankerService(s) have had Ready!=True for "
            + NOT_READY_FOR
            + ": kubectl get rerankerservices -A shows which, and their Ready condition why.",
        ),
        _rule(
            "RerankerOperatorDown",
            f"absent(up{{{JOB}}} == 1)",
            DOWN_FOR,
            "critical",
            "No reranker operator replica is up",
            "Prometheus has scraped no reranker operator replica for "
            + DOWN_FOR
            + ": RerankerServices are not reconciled.",
        ),
        _rule(
            "RerankerOperatorNotWatching",
            f"max({M.WATCHING}{{{JOB}}}) < 1",
            DOWN_FOR,
            "critical",
            "The reranker operator does not watch RerankerServices",
            "No operator replica's watch of RerankerServices has answered for "
            + DOWN_FOR
            + " (API server unreachable, RBAC, or the CRD missing).",
        ),
    ]


def prometheus_rule() -> dict[str, Any]:
    """The overlay's PrometheusRule."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": RULE_NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {"groups": [{"name": "reranker-operator", "rules": alert_rules()}]},
    }


def _panel(
    panel_id: int, title: str, description: str, unit: str, targets: list[tuple[str, str]]
) -> dict[str, Any]:
    x = 12 * ((panel_id - 2) % 2)
    y = 1 + 8 * ((panel_id - 2) // 2)
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def _rate(metric: str, by: str, extra: str = "") -> str:
    return f"sum by ({by}) (rate({metric}{{{JOB}{extra}}}[5m]))"


def _p95(histogram: str) -> str:
    return f"histogram_quantile(0.95, sum by (le) (rate({histogram}_bucket{{{JOB}}}[5m])))"


def dashboard_panels() -> list[dict[str, Any]]:
    """One row: passes, failures, durations, queue, API calls, children, services."""
    ctl = f',controller="{CONTROLLER}"'
    panels = [
        (
            "Reconciles/s by result",
            "Reconcile passes by result.",
            "ops",
            [(_rate(M.RECONCILE_TOTAL, "result", ctl), "{{result}}")],
        ),
        (
            "Failures/s by kind",
            "Failed passes: API conflict, forbidden, invalid spec, timeout, other.",
            "ops",
            [(_rate(M.RECONCILE_FAILURES_TOTAL, "kind"), "{{kind}}")],
        ),
        (
            "Pass duration p95",
            "95th percentile of a reconcile pass's duration.",
            "s",
            [(_p95(M.RECONCILE_TIME), "p95")],
        ),
        (
            "Passes waiting and in flight",
            "Passes waiting for their RerankerService's previous "
            "pass, passes running, and passes asked for per second.",
            "short",
            [
                (f"sum({M.WORKQUEUE_DEPTH}{{{JOB}}})", "waiting"),
                (f"sum({M.ACTIVE_WORKERS}{{{JOB}}})", "in flight"),
                (_rate(M.WORKQUEUE_ADDS_TOTAL, "name"), "asked/s"),
            ],
        ),
        (
            "Wait before a pass p95",
            "95th percentile of the time a pass waited.",
            "s",
            [(_p95(M.WORKQUEUE_QUEUE_DURATION), "p95")],
        ),
        (
            "API calls/s by code and method",
            "Kubernetes API calls, kopf's watches included.",
            "reqps",
            [(_rate(M.REST_CLIENT_REQUESTS_TOTAL, "code, method"), "{{method}} {{code}}")],
        ),
        (
            "Children written/s by kind",
            "Children applied, re-applied over drift, pruned.",
            "ops",
            [
                (_rate(M.CHILDREN_APPLIED_TOTAL, "kind"), "applied {{kind}}"),
                (_rate(M.DRIFT_CORRECTED_TOTAL, "kind"), "drift {{kind}}"),
                (_rate(M.CHILDREN_PRUNED_TOTAL, "kind"), "pruned {{kind}}"),
            ],
        ),
        (
            "RerankerServices by Ready",
            "Watched RerankerServices by their Ready condition.",
            "short",
            [
                (
                    f'max by (status) ({M.RERANKER_SERVICES}{{{JOB},condition="Ready"}})',
                    "Ready={{status}}",
                )
            ],
        ),
    ]
    row = {
        "id": 1,
        "type": "row",
        "title": "Reranker operator",
        "collapsed": False,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0},
        "panels": [],
    }
    return [row] + [_panel(i + 2, *p) for i, p in enumerate(panels)]


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard holding the operator's row."""
    return grafana_dashboard(
        "reranker-operator", "Reranker operator", ["reranker", "operator"], dashboard_panels()
    )


def dashboard_config_map() -> dict[str, Any]:
    """The ConfigMap Grafana's dashboard sidecar loads (label grafana_dashboard=1)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": DASHBOARD_NAME,
            "namespace": NAMESPACE,
            "labels": {**LABELS, "grafana_dashboard": "1"},
        },
        "data": {DASHBOARD_FILE: json.dumps(dashboard(), indent=2, sort_keys=False)},
    }


def queries() -> list[str]:
    """Every PromQL expression of the overlay: alert rules, then dashboard panels."""
    return [r["expr"] for r in alert_rules()] + [
        t["expr"] for p in dashboard_panels() for t in p.get("targets", [])
    ]
