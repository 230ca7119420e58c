"""The NetworkPolicy of a RerankerService's pods as data: who may reach which port, and where
the pods may connect.

Every peer the policy admits is a non-empty label selector: the RerankerService's own
namespace is named by its `kubernetes.io/metadata.name` label rather than by an empty
podSelector, so no spec value (or its absence) can produce a selector that matches everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reranker_contract import PORT
from reranker_operator.api.constants import OPERATOR_POD_LABELS
from reranker_operator.api.spec import RerankerServiceSpec
from reranker_operator.engines import engine

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
# Egress to the model hub: HTTPS anywhere but the private, link-local and shared ranges (the
# cluster's own networks).
PRIVATE_V4 = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
)
PRIVATE_V6 = ("fc00::/7", "fe80::/10", "::1/128")

JsonObject = dict[str, Any]


def _namespace(name: str) -> JsonObject:
    return {"matchLabels": {NAMESPACE_NAME_LABEL: name}}


def _peer(
    namespace_labels: dict[str, str] | None, pod_labels: dict[str, str] | None, own_namespace: str
) -> JsonObject:
    peer: JsonObject = {
        "namespaceSelector": {"matchLabels": dict(namespace_labels)}
        if namespace_labels
        else _namespace(own_namespace)
    }
    if pod_labels:
        peer["podSelector"] = {"matchLabels": dict(pod_labels)}
    return peer


@dataclass(frozen=True)
class PolicyRules:
    """The ingress and egress rules of the policy."""

    ingress: list[JsonObject]
    egress: list[JsonObject]


def policy_rules(spec: RerankerServiceSpec, namespace: str, *, downloads: bool) -> PolicyRules:
    """The rules for `spec`'s pods in `namespace`; `downloads`: the init container fetches the
    model from the hub."""
    n = spec.network_policy
    callers = [_peer(p.namespace_labels, p.pod_labels, namespace) for p in n.allow_from]
    if not callers:
        callers = [_peer(None, None, namespace)]
    if spec.autoscaling.scales_to_zero():
        interceptor = spec.autoscaling.keda.interceptor
        callers.append({"namespaceSelector": _namespace(interceptor.namespace)})
    if spec.ingress.enabled and n.ingress_controller_namespace_labels:
        callers.append(_peer(n.ingress_controller_namespace_labels, None, namespace))
    callers.append(_peer(n.operator_namespace_labels, OPERATOR_POD_LABELS, namespace))
    tcp = {"protocol": "TCP"}
    ingress = [{"from": callers, "ports": [{**tcp, "port": PORT}]}]
    served = engine(spec.engine).serving(spec)
    metrics_port = served.metrics_port(spec)
    scraper = _peer(n.prometheus_namespace_labels, n.prometheus_pod_labels, namespace)
    ingress.append({"from": [scraper], "ports": [{**tcp, "port": metrics_port or PORT}]})
    egress: list[JsonObject] = [{"ports": [{"protocol": "UDP", "port": 53}, {**tcp, "port": 53}]}]
    if downloads and n.hub_egress == "https":
        egress.append(
            {
                "to": [
                    {"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_V4)}},
                    {"ipBlock": {"cidr": "::/0", "except": list(PRIVATE_V6)}},
                ],
                "ports": [{**tcp, "port": 443}],
            }
        )
    return PolicyRules(ingress, egress)
