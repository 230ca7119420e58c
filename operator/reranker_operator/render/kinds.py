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
_NOT_SCALED = ("Nothing scales the Deployment: it keeps its current replicas, and requests that "
               "arrive while none runs are refused.")  # fmt: skip

PVC = ChildKind("PersistentVolumeClaim", "v1", "persistentvolumeclaims")
CONFIG_MAP = ChildKind("ConfigMap", "v1", "configmaps")
DEPLOYMENT = ChildKind("Deployment", "apps/v1", "deployments")
SERVICE = ChildKind("Service", "v1", "services")
HPA = ChildKind("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers")
SCALED_OBJECT = ChildKind(
    "ScaledObject", "keda.sh/v1alpha1", "scaledobjects",
    OptionalApi(_KEDA, "ScaledObjectCRDMissing", _NOT_SCALED))
INTERCEPTOR_ROUTE = ChildKind(
    "InterceptorRoute", "http.keda.sh/v1beta1", "interceptorroutes",
    OptionalApi(_HTTP_ADD_ON, "InterceptorRouteCRDMissing",
                "Requests through <name>-proxy are not routed; the Deployment is not woken "
                "from zero."))
HTTP_SCALED_OBJECT = ChildKind(
    "HTTPScaledObject", "http.keda.sh/v1alpha1", "httpscaledobjects",
    OptionalApi(_HTTP_ADD_ON, "HTTPScaledObjectCRDMissing", _NOT_SCALED))
NETWORK_POLICY = ChildKind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies")
PDB = ChildKind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets")
INGRESS = ChildKind("Ingress", "networking.k8s.io/v1", "ingresses")
SERVICE_MONITOR = ChildKind(
    "ServiceMonitor", "monitoring.coreos.com/v1", "servicemonitors",
    OptionalApi(_PROMETHEUS_OPERATOR, "ServiceMonitorCRDMissing",
                "The /metrics endpoint still works and Ready is not affected."))
PROMETHEUS_RULE = ChildKind(
    "PrometheusRule", "monitoring.coreos.com/v1", "prometheusrules",
    OptionalApi(_PROMETHEUS_OPERATOR, "PrometheusRuleCRDMissing",
                "No alerts are evaluated; Ready is not affected."))

# Children the spec no longer asks for (e.g. the HPA after autoscaling is switched off) are
# found by these kinds plus the instance label, and pruned.
CHILD_KINDS: tuple[ChildKind, ...] = (
    PVC, CONFIG_MAP, DEPLOYMENT, SERVICE, HPA, SCALED_OBJECT, INTERCEPTOR_ROUTE,
    HTTP_SCALED_OBJECT, NETWORK_POLICY, PDB, INGRESS, SERVICE_MONITOR, PROMETHEUS_RULE,
)


@dataclass(frozen=True)
class Child:
    """One child a RerankerService may have: its role (the params builder's key), kind and
    template (in reranker_templates, templates/)."""

    role: str
    kind: ChildKind
    template: str


# In apply order: the claim and the template before the Deployment mounting them, the
# Deployment before what points at it.
CHILDREN: tuple[Child, ...] = (
    Child("model-cache", PVC, "pvc.yaml.j2"),
    Child("vllm-template", CONFIG_MAP, "vllm-template.yaml.j2"),
    Child("server", DEPLOYMENT, "deployment.yaml.j2"),
    Child("service", SERVICE, "service.yaml.j2"),
    Child("autoscaler", HPA, "hpa.yaml.j2"),
    Child("scaled-object", SCALED_OBJECT, "scaledobject.yaml.j2"),
    Child("interceptor-route", INTERCEPTOR_ROUTE, "interceptorroute.yaml.j2"),
    Child("http-scaled-object", HTTP_SCALED_OBJECT, "httpscaledobject.yaml.j2"),
    Child("wake-proxy", SERVICE, "proxy-service.yaml.j2"),
    Child("network-policy", NETWORK_POLICY, "networkpolicy.yaml.j2"),
    Child("disruption-budget", PDB, "pdb.yaml.j2"),
    Child("ingress", INGRESS, "ingress.yaml.j2"),
    Child("service-monitor", SERVICE_MONITOR, "servicemonitor.yaml.j2"),
    Child("alerts", PROMETHEUS_RULE, "prometheusrule.yaml.j2"),
    Child("dashboard", CONFIG_MAP, "dashboard.yaml.j2"),  # the Grafana dashboard
)

# What scales the Deployment: at most one of them at a time, so one no longer wanted is deleted
# before the children are applied (an HPA and KEDA's own HPA would fight over the replicas).
SCALERS: tuple[ChildKind, ...] = (HPA, SCALED_OBJECT, HTTP_SCALED_OBJECT)

OPTIONAL_KINDS: tuple[ChildKind, ...] = tuple(k for k in CHILD_KINDS if k.optional is not None)

_BY_KIND = {(k.api_version, k.kind): k for k in CHILD_KINDS}
_BY_NAME = {k.kind: k for k in CHILD_KINDS}


def child_kind(api_version: str, kind: str) -> ChildKind:
    """The table entry of a child kind; KeyError for kinds the operator never manages."""
    return _BY_KIND[(api_version, kind)]


def kind_named(kind: str) -> ChildKind:
    """The table entry of a kind by its name alone (child kinds have unique names)."""
    return _BY_NAME[kind]
