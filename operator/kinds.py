"""The kinds a RerankerService's children may have: one table, from which the renderer, the
reconciler, the status, the handlers, RBAC, the emulator and the tests take what they need."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OptionalApi:
    """An API served only when its CRD is installed. A child of such a kind that the spec asks
    for gets a condition named after the kind: True Available, or False `missing_reason`."""

    provider: str  # who installs the CRD
    missing_reason: str
    consequence: str  # what the user loses while it is missing


@dataclass(frozen=True)
class ChildKind:
    """One kind of child: where it is served, which template renders it, whether it is optional."""

    kind: str
    api_version: str
    plural: str
    template: str  # in reranker_operator.templates
    optional: OptionalApi | None = None

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


_PROMETHEUS_OPERATOR = "the Prometheus Operator"

# In apply order: the claim before the Deployment mounting it, the Deployment before what
# points at it. Children the spec no longer asks for (e.g. the HPA after autoscaling is switched
# off) are found by these kinds plus the instance label, and pruned.
CHILD_KINDS: tuple[ChildKind, ...] = (
    ChildKind("PersistentVolumeClaim", "v1", "persistentvolumeclaims", "pvc.yaml.j2"),
    ChildKind("Deployment", "apps/v1", "deployments", "deployment.yaml.j2"),
    ChildKind("Service", "v1", "services", "service.yaml.j2"),
    ChildKind("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers",
              "hpa.yaml.j2"),
    ChildKind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", "pdb.yaml.j2"),
    ChildKind("Ingress", "networking.k8s.io/v1", "ingresses", "ingress.yaml.j2"),
    ChildKind("ServiceMonitor", "monitoring.coreos.com/v1", "servicemonitors",
              "servicemonitor.yaml.j2",
              OptionalApi(_PROMETHEUS_OPERATOR, "ServiceMonitorCRDMissing",
                          "The /metrics endpoint still works and Ready is not affected.")),
    ChildKind("PrometheusRule", "monitoring.coreos.com/v1", "prometheusrules",
              "prometheusrule.yaml.j2",
              OptionalApi(_PROMETHEUS_OPERATOR, "PrometheusRuleCRDMissing",
                          "No alerts are evaluated; Ready is not affected.")),
    ChildKind("ConfigMap", "v1", "configmaps", "dashboard.yaml.j2"),  # the Grafana dashboard
)

OPTIONAL_KINDS: tuple[ChildKind, ...] = tuple(k for k in CHILD_KINDS if k.optional is not None)

_BY_KIND = {(k.api_version, k.kind): k for k in CHILD_KINDS}
_BY_NAME = {k.kind: k for k in CHILD_KINDS}


def child_kind(api_version: str, kind: str) -> ChildKind:
    """The table entry of a child kind; KeyError for kinds the operator never manages."""
    return _BY_KIND[(api_version, kind)]


def kind_named(kind: str) -> ChildKind:
    """The table entry of a kind by its name alone (child kinds have unique names)."""
    return _BY_NAME[kind]
