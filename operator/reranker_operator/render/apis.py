"""The Kubernetes kinds a RerankerService's children may have (where each is served, whether it
is optional) and the row of the children table (reranker_operator.render.kinds.CHILDREN)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reranker_operator.render.service import ParsedService


@dataclass(frozen=True)
class OptionalApi:
    """An API served only when its CRD is installed. A child of such a kind that the spec asks
    for gets a condition named after the kind: True Available, or False `missing_reason`."""

    provider: str  # who installs the CRD
    missing_reason: str
    consequence: str  # what the user loses while it is missing


@dataclass(frozen=True)
class ChildKind:
    """One kind of child: where it is served, whether it is optional."""

    kind: str
    api_version: str
    plural: str
    optional: OptionalApi | None = None

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


_PROMETHEUS_OPERATOR = "the Prometheus Operator"
_KEDA = "KEDA"
_HTTP_ADD_ON = "the KEDA HTTP add-on"
_NOT_SCALED = (
    "Nothing scales the Deployment: it keeps its current replicas, and requests that "
    "arrive while none runs are refused."
)

PVC = ChildKind("PersistentVolumeClaim", "v1", "persistentvolumeclaims")
CONFIG_MAP = ChildKind("ConfigMap", "v1", "configmaps")
DEPLOYMENT = ChildKind("Deployment", "apps/v1", "deployments")
SERVICE = ChildKind("Service", "v1", "services")
HPA = ChildKind("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers")
SCALED_OBJECT = ChildKind(
    "ScaledObject",
    "keda.sh/v1alpha1",
    "scaledobjects",
    OptionalApi(_KEDA, "ScaledObjectCRDMissing", _NOT_SCALED),
)
INTERCEPTOR_ROUTE = ChildKind(
    "InterceptorRoute",
    "http.keda.sh/v1beta1",
    "interceptorroutes",
    OptionalApi(
        _HTTP_ADD_ON,
        "InterceptorRouteCRDMissing",
        "Requests through <name>-proxy are not routed; the Deployment is not woken from zero.",
    ),
)
HTTP_SCALED_OBJECT = ChildKind(
    "HTTPScaledObject",
    "http.keda.sh/v1alpha1",
    "httpscaledobjects",
    OptionalApi(_HTTP_ADD_ON, "HTTPScaledObjectCRDMissing", _NOT_SCALED),
)
NETWORK_POLICY = ChildKind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies")
PDB = ChildKind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets")
INGRESS = ChildKind("Ingress", "networking.k8s.io/v1", "ingresses")
SERVICE_MONITOR = ChildKind(
    "ServiceMonitor",
    "monitoring.coreos.com/v1",
    "servicemonitors",
    OptionalApi(
        _PROMETHEUS_OPERATOR,
        "ServiceMonitorCRDMissing",
        "The /metrics endpoint still works and Ready is not affected.",
    ),
)
PROMETHEUS_RULE = ChildKind(
    "PrometheusRule",
    "monitoring.coreos.com/v1",
    "prometheusrules",
    OptionalApi(
        _PROMETHEUS_OPERATOR,
        "PrometheusRuleCRDMissing",
        "No alerts are evaluated; Ready is not affected.",
    ),
)

RESOURCE_CLAIM_TEMPLATE = ChildKind(
    "ResourceClaimTemplate",
    "resource.k8s.io/v1",
    "resourceclaimtemplates",
    OptionalApi(
        "Kubernetes >= 1.34 with Dynamic Resource Allocation",
        "ResourceClaimTemplateAPIMissing",
        "spec.resources.dra needs it: the server pods name a claim template that does not "
        "exist and are not created; on this cluster use spec.resources.gpus, mig or sharedGpu.",
    ),
)


@dataclass(frozen=True)
class Child:
    """One child a RerankerService may have: its role, kind, template (in reranker_templates,
    templates/) and the builder of its template's params (None: the spec asks for no such
    child)."""

    role: str
    kind: ChildKind
    template: str
    build: Callable[[ParsedService], Any]
