"""The children a RerankerService may have: one table (role, kind, template, params builder),
from which the renderer, the reconciler, the status, the handlers, RBAC, the emulator and the
tests take what they need. The kinds themselves are in reranker_operator.render.apis."""

from __future__ import annotations

from reranker_operator.engines import registered
from reranker_operator.render.apis import (
    CONFIG_MAP,
    DEPLOYMENT,
    HPA,
    HTTP_SCALED_OBJECT,
    INGRESS,
    INTERCEPTOR_ROUTE,
    NETWORK_POLICY,
    PDB,
    PROMETHEUS_RULE,
    PVC,
    RESOURCE_CLAIM_TEMPLATE,
    SCALED_OBJECT,
    SERVICE,
    SERVICE_MONITOR,
    Child,
    ChildKind,
    OptionalApi,
)
from reranker_operator.render.params import (
    dashboard_params,
    deployment_params,
    hpa_params,
    http_scaled_object_params,
    ingress_params,
    interceptor_route_params,
    network_policy_params,
    pdb_params,
    prometheus_rule_params,
    proxy_service_params,
    pvc_params,
    resource_claim_template_params,
    scaled_object_params,
    score_probes_params,
    service_monitor_params,
    service_params,
)

__all__ = [
    "CHILDREN",
    "CHILD_KINDS",
    "DEPLOYMENT",
    "OPTIONAL_KINDS",
    "PVC",
    "SCALERS",
    "Child",
    "ChildKind",
    "OptionalApi",
    "child_kind",
    "children",
    "kind_named",
]

_CACHE = Child("model-cache", PVC, "pvc.yaml.j2", pvc_params)
_GPU_CLAIM = Child(
    "gpu-claim",
    RESOURCE_CLAIM_TEMPLATE,
    "resourceclaimtemplate.yaml.j2",
    resource_claim_template_params,
)
# the score-check probes the server pods mount (spec.scoreCheck.probes)
_SCORE_PROBES = Child("score-probes", CONFIG_MAP, "score-probes.yaml.j2", score_probes_params)
# the Deployment and what points at it
_SERVED: tuple[Child, ...] = (
    Child("server", DEPLOYMENT, "deployment.yaml.j2", deployment_params),
    Child("service", SERVICE, "service.yaml.j2", service_params),
    Child("autoscaler", HPA, "hpa.yaml.j2", hpa_params),
    Child("scaled-object", SCALED_OBJECT, "scaledobject.yaml.j2", scaled_object_params),
    Child(
        "interceptor-route", INTERCEPTOR_ROUTE, "interceptorroute.yaml.j2", interceptor_route_params
    ),
    Child(
        "http-scaled-object",
        HTTP_SCALED_OBJECT,
        "httpscaledobject.yaml.j2",
        http_scaled_object_params,
    ),
    Child("wake-proxy", SERVICE, "proxy-service.yaml.j2", proxy_service_params),
    Child("network-policy", NETWORK_POLICY, "networkpolicy.yaml.j2", network_policy_params),
    Child("disruption-budget", PDB, "pdb.yaml.j2", pdb_params),
    Child("ingress", INGRESS, "ingress.yaml.j2", ingress_params),
    Child("service-monitor", SERVICE_MONITOR, "servicemonitor.yaml.j2", service_monitor_params),
    Child("alerts", PROMETHEUS_RULE, "prometheusrule.yaml.j2", prometheus_rule_params),
    Child("dashboard", CONFIG_MAP, "dashboard.yaml.j2", dashboard_params),  # the Grafana dashboard
)


def children() -> tuple[Child, ...]:
    """The table, in apply order: the claims (model cache, GPU) and each registered engine's
    own children (vLLM's score template) and the score-check probes before the Deployment
    using them, the Deployment before what points at it. The renderer reads it per pass; CHILDREN is the table of the
    engines registered when the operator starts (its kinds are what the operator watches and
    RBAC grants)."""
    engines = (child for engine in registered() for child in engine.children)
    return (_CACHE, _GPU_CLAIM, *engines, _SCORE_PROBES, *_SERVED)


CHILDREN: tuple[Child, ...] = children()

# Children the spec no longer asks for (e.g. the HPA after autoscaling is switched off) are
# found by these kinds plus the instance label, and pruned.
CHILD_KINDS: tuple[ChildKind, ...] = tuple(dict.fromkeys(c.kind for c in CHILDREN))

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
