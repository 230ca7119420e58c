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
from typing import TYPE_CHECKING, Any

from reranker_operator.engines import DEFAULT_ENGINE, engine
from reranker_operator.engines.base import Engine, Panel
from reranker_operator.render.promql import deployment as _deployment
from reranker_operator.render.promql import pods as _pods

if TYPE_CHECKING:
    from reranker_operator.api.spec import PrometheusRuleSpec

# kube-state-metrics series the rules read (not exported by the server itself).
KUBE_STATE_METRICS = (
    "kube_deployment_status_replicas_available",
    "kube_deployment_spec_replicas",
    "kube_pod_container_status_waiting_reason",
    "kube_pod_container_status_restarts_total",
)


def _engine(which: str | Engine) -> Engine:
    """The Engine a name names, or the Engine itself (one as a resource runs it: Engine.serving)."""
    return engine(which) if isinstance(which, str) else which


def alert_rules(
    name: str,
    namespace: str,
    spec: PrometheusRuleSpec,
    *,
    engine_name: str | Engine = DEFAULT_ENGINE,
    prefix_reuse: bool = False,
) -> list[dict[str, Any]]:
    """The alerting rules of one RerankerService (the `rules` of its PrometheusRule group): the
    engine's, in its series, then the workload's; `prefix_reuse`: the pods reuse a shared
    prompt prefix (Engine.prefix_reuse), whose reuse an alert watches."""
    who = f"reranker {namespace}/{name}"
    deploy = _deployment(name, namespace)
    labels = {"rerankerservice": name, "namespace": namespace}

    def rule(
        alert: str, expr: str, severity: str, summary: str, description: str
    ) -> dict[str, Any]:
        return {
            "alert": alert,
            "expr": expr,
            "for": spec.for_,
            "labels": {"severity": severity, **labels},
            "annotations": {"summary": summary, "description": description},
        }

    workload = [
        rule(
            "RerankerNoReplicasAvailable",
            f"kube_deployment_status_replicas_available{deploy} == 0 "
            f"and on (namespace, deployment) kube_deployment_spec_replicas{deploy} > 0",
            "critical",
            f"{who}: no replica is available",
            "The Deployment wants replicas but none is available; the service answers "
            "nothing. See the RerankerService's conditions and the pods' events.",
        ),
        rule(
            "RerankerPodCrashLooping",
            "max by (pod) (kube_pod_container_status_waiting_reason"
            f"{_pods(name, namespace, 'reason=' + chr(34) + 'CrashLoopBackOff' + chr(34))}) > 0",
            "critical",
            f"{who}: a server pod is crash-looping",
            "Pod {{ $labels.pod }}'s server container is in CrashLoopBackOff: see "
            "`kubectl logs --previous` (model load failure, out of memory, bad settings).",
        ),
    ]
    return [
        *_engine(engine_name).alerts(name, namespace, spec, rule, prefix_reuse=prefix_reuse),
        *workload,
    ]


def _panel(
    idx: int, title: str, unit: str, description: str, targets: list[tuple[str, str]]
) -> dict[str, Any]:
    """A timeseries panel in a two-column grid."""
    return {
        "id": idx + 1,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (idx % 2), "y": 8 * (idx // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard_panels(
    name: str, namespace: str, engine_name: str | Engine = DEFAULT_ENGINE
) -> list[Panel]:
    """Every panel: (title, unit, description, [(expr, legend)]): the engine's, then the
    workload's."""
    return [*_engine(engine_name).panels(name, namespace), *workload_panels(name, namespace)]


def workload_panels(name: str, namespace: str) -> list[Panel]:
    """Panels on the Deployment's pods, from kube-state-metrics (either engine)."""
    deploy = _deployment(name, namespace)
    return [
        (
            "Available replicas",
            "short",
            "Replicas available and desired (kube-state-metrics).",
            [
                (f"sum(kube_deployment_status_replicas_available{deploy})", "available"),
                (f"sum(kube_deployment_spec_replicas{deploy})", "desired"),
            ],
        ),
        (
            "Server restarts (1h)",
            "short",
            "Restarts of the server container per pod over the last hour (kube-state-metrics).",
            [
                (
                    f"sum by (pod) (increase(kube_pod_container_status_restarts_total{_pods(name, namespace)}[1h]))",
                    "{{pod}}",
                )
            ],
        ),
    ]


def dashboard_config_map_name(instance: str) -> str:
    """Name of the ConfigMap holding the Grafana dashboard."""
    return f"{instance}-dashboard"


def dashboard_uid(name: str, namespace: str) -> str:
    """A stable Grafana uid (at most 40 characters) unique per RerankerService."""
    return "reranker-" + hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:20]


def dashboard(name: str, namespace: str, engine: str | Engine = DEFAULT_ENGINE) -> dict[str, Any]:
    """The Grafana dashboard model of one RerankerService."""
    panels = [
        _panel(i, title, unit, description, targets)
        for i, (title, unit, description, targets) in enumerate(
            dashboard_panels(name, namespace, engine)
        )
    ]
    return grafana_dashboard(
        dashboard_uid(name, namespace),
        f"Reranker {namespace}/{name}",
        ["reranker", namespace],
        panels,
    )


def grafana_dashboard(
    uid: str, title: str, tags: list[str], panels: list[dict[str, Any]]
) -> dict[str, Any]:
    """A Grafana dashboard model with our conventions (3 h, 30 s refresh, a Prometheus
    data-source variable) around `panels`; the operator's own dashboard uses it too."""
    return {
        "uid": uid,
        "title": title,
        "tags": tags,
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "hide": 0,
                }
            ]
        },
        "panels": panels,
    }


def dashboard_json(name: str, namespace: str, engine: str | Engine = DEFAULT_ENGINE) -> str:
    """The dashboard as the JSON text the Grafana sidecar reads from the ConfigMap."""
    return json.dumps(dashboard(name, namespace, engine), indent=2, sort_keys=True)
