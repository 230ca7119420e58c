"""The rendered NetworkPolicy, read with the NetworkPolicy API's semantics: it selects exactly the
server pods, lets in the callers the spec names (and no one else), Prometheus to the metrics
port, and fuzzed spec values can never widen it (no empty selector, no rule without peers)."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

import kubernetes_validate
import pytest

from render_helpers import FULL_SPEC, KEDA_SPEC, example_crs, make_cr
from reranker_operator.api.constants import OPERATOR_NAMESPACE, OPERATOR_POD_LABELS
from reranker_operator.api.spec import InvalidSpecError, parse_spec
from reranker_operator.render.manifests import render_children

NS = "ml"


@dataclass(frozen=True)
class Pod:
    """A pod that may call the server: its namespace (and that namespace's labels) and labels."""

    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)

    @property
    def ns_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against labels; {} selects all."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def admits(policy: dict[str, Any], caller: Pod, port: int) -> bool:
    """Whether the policy's ingress rules let `caller` reach `port` on a selected pod."""
    for rule in policy["spec"].get("ingress") or []:
        ports = rule.get("ports")
        if ports is not None and not any(p.get("port") == port for p in ports):
            continue
        peers = rule.get("from")
        if peers is None:
            return True  # a rule without `from` admits everyone
        for peer in peers:
            ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
            in_ns = (
                selects(ns_sel, caller.ns_labels)
                if ns_sel is not None
                else caller.namespace == policy["metadata"]["namespace"]
            )
            if in_ns and (pod_sel is None or selects(pod_sel, caller.labels)):
                return True
    return False


def _children(spec: dict[str, Any], name: str = "demo") -> dict[str, dict[str, Any]]:
    return {
        c["kind"] + ("" if c["kind"] != "Service" else "/" + c["metadata"]["name"]): c
        for c in render_children(make_cr(spec, name=name, namespace=NS))
    }


def _ports(deployment: dict[str, Any]) -> dict[str, int]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def _specs() -> dict[str, dict[str, Any]]:
    specs = {name: cr["spec"] for name, cr in example_crs().items()}
    specs["full"], specs["keda"] = FULL_SPEC, KEDA_SPEC
    return specs


@pytest.mark.parametrize("name", sorted(_specs()))
def test_the_policy_selects_exactly_the_server_pods(name: str) -> None:
    kids = _children(_specs()[name])
    policy, deployment = kids["NetworkPolicy"], kids["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(policy["spec"]["podSelector"], pod_labels)
    other = _children(_specs()[name], name="other")["Deployment"]
    assert not selects(
        policy["spec"]["podSelector"], other["spec"]["template"]["metadata"]["labels"]
    )
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}


@pytest.mark.parametrize("name", sorted(_specs()))
def test_callers_and_the_scraper_reach_their_ports_and_nobody_else(name: str) -> None:
    spec = _specs()[name]
    kids = _children(spec)
    policy, ports = kids["NetworkPolicy"], _ports(kids["Deployment"])
    api = ports["http"]
    metrics = ports.get("metrics", api)
    same_ns = Pod(NS, {"app": "rag"})
    stranger = Pod("team-b", {"app": "rag"})
    scraper = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
    assert admits(policy, same_ns, api)
    assert not admits(policy, stranger, api) and not admits(policy, stranger, metrics)
    assert admits(policy, scraper, metrics)
    if metrics != api:  # the scraper gets the metrics port only
        assert not admits(policy, scraper, api)
        assert not admits(policy, same_ns, metrics)
    assert not admits(policy, same_ns, 9999)
    # the operator reads each pod's score check on the server port, from deploy/'s namespace
    operator = Pod(OPERATOR_NAMESPACE, dict(OPERATOR_POD_LABELS))
    assert admits(policy, operator, api)
    assert not admits(policy, Pod(OPERATOR_NAMESPACE, {"app": "other"}), api)
    service = kids[f"Service/{make_cr(spec)['metadata']['name']}"]
    for port in service["spec"]["ports"]:
        target = port["targetPort"]
        assert (ports[target] if isinstance(target, str) else target) in {api, metrics}


def test_allow_from_opens_exactly_the_selected_callers() -> None:
    spec = copy.deepcopy(_specs()["full"])
    spec["networkPolicy"] = {
        "allowFrom": [
            {"namespaceLabels": {"team": "search"}, "podLabels": {"app": "rag"}},
            {"podLabels": {"role": "gateway"}},
        ],
        "prometheusNamespaceLabels": {"kubernetes.io/metadata.name": "observability"},
        "prometheusPodLabels": {"app.kubernetes.io/name": "prometheus"},
        "ingressControllerNamespaceLabels": {"kubernetes.io/metadata.name": "ingress-nginx"},
    }
    kids = _children(spec)
    policy, ports = kids["NetworkPolicy"], _ports(kids["Deployment"])
    api, metrics = ports["http"], ports.get("metrics", ports["http"])
    assert admits(policy, Pod("b", {"app": "rag"}, {"team": "search"}), api)
    assert not admits(policy, Pod("b", {"app": "other"}, {"team": "search"}), api)
    assert not admits(policy, Pod("c", {"app": "rag"}, {"team": "ads"}), api)
    assert admits(policy, Pod(NS, {"role": "gateway"}), api)
    assert not admits(policy, Pod("c", {"role": "gateway"}), api)  # podLabels alone: own ns
    assert admits(policy, Pod("ingress-nginx", {"any": "pod"}), api)
    assert admits(policy, Pod("observability", {"app.kubernetes.io/name": "prometheus"}), metrics)
    assert not admits(policy, Pod("observability", {"app": "grafana"}), metrics)
    assert not admits(policy, Pod("monitoring", {"app.kubernetes.io/name": "prometheus"}), metrics)


def test_egress_is_dns_and_https_only_while_downloading() -> None:
    downloading = _children(_specs()["full"])["NetworkPolicy"]["spec"]["egress"]
    assert [sorted(p["port"] for p in r["ports"]) for r in downloading] == [[53, 53], [443]]
    for block in downloading[1]["to"]:
        cidr = block["ipBlock"]
        assert cidr["cidr"] in ("0.0.0.0/0", "::/0") and cidr["except"]  # never the pod network
    offline = copy.deepcopy(_specs()["full"])
    offline["networkPolicy"] = {**offline["networkPolicy"], "hubEgress": "none"}
    assert [
        sorted(p["port"] for p in r["ports"])
        for r in _children(offline)["NetworkPolicy"]["spec"]["egress"]
    ] == [[53, 53]]
    local = copy.deepcopy(_specs()["full"])
    local["model"] = {**local["model"], "name": "/models/local"}
    local["modelCache"] = {"enabled": False}
    egress = _children(local)["NetworkPolicy"]["spec"]["egress"]
    assert all(p["port"] == 53 for r in egress for p in r["ports"])  # nothing to download


def test_the_policy_can_be_switched_off() -> None:
    spec = copy.deepcopy(_specs()["full"])
    spec["networkPolicy"] = {"enabled": False}
    assert "NetworkPolicy" not in _children(spec)


def _random_labels(rng: random.Random) -> Any:
    choice = rng.random()
    if choice < 0.1:
        return {}
    if choice < 0.15:
        return None
    keys = ["app", "team", "kubernetes.io/metadata.name", "", "a" * 70, "x/y/z", "Bad Key"]
    values = ["rag", "", "search", "a" * 70, "*", "-bad"]
    return {rng.choice(keys): rng.choice(values) for _ in range(rng.randint(1, 3))}


def _random_policy(rng: random.Random) -> dict[str, Any]:
    policy: dict[str, Any] = {}
    if rng.random() < 0.8:
        policy["allowFrom"] = [
            {
                k: v
                for k, v in (
                    ("namespaceLabels", _random_labels(rng)),
                    ("podLabels", _random_labels(rng)),
                )
                if v is not None and rng.random() < 0.8
            }
            for _ in range(rng.randint(0, 4))
        ]
    for key in (
        "prometheusNamespaceLabels",
        "prometheusPodLabels",
        "ingressControllerNamespaceLabels",
    ):
        if rng.random() < 0.5:
            labels = _random_labels(rng)
            if labels is not None:
                policy[key] = labels
    if rng.random() < 0.3:
        policy["hubEgress"] = rng.choice(["https", "none", "all", ""])
    return policy


def _peers(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]


def test_fuzzed_spec_values_never_widen_the_policy() -> None:
    rng = random.Random(20261202)
    rendered = refused = 0
    for _ in range(400):
        spec = copy.deepcopy(FULL_SPEC)
        spec["networkPolicy"] = _random_policy(rng)
        try:
            parse_spec(spec)
        except InvalidSpecError as exc:
            assert exc.field.startswith(("networkPolicy", "ingress")) or "networkPolicy" in str(exc)
            refused += 1
            continue
        policy = _children(spec)["NetworkPolicy"]
        rendered += 1
        assert policy["spec"]["podSelector"]["matchLabels"]  # never every pod of the namespace
        for rule in policy["spec"]["ingress"]:
            assert rule.get("from"), rule  # a rule without peers would admit everyone
            assert rule.get("ports"), rule
        for peer in _peers(policy):
            assert peer, "an empty peer admits every pod"
            for sel in ("namespaceSelector", "podSelector"):
                if sel in peer:
                    assert peer[sel].get("matchLabels"), (sel, peer)  # {} would select all
        stranger = Pod("zz-unlisted", {"zz": "zz"})
        assert not any(
            admits(policy, stranger, p["port"])
            for r in policy["spec"]["ingress"]
            for p in r["ports"]
        )
        kubernetes_validate.validate(policy, "1.37", strict=True)
    assert rendered > 50 and refused > 50, (rendered, refused)


@pytest.mark.parametrize(
    "bad",
    [
        {"allowFrom": [{}]},
        {"allowFrom": [{"namespaceLabels": {}}]},
        {"allowFrom": [{"podLabels": {}}]},
        {"prometheusNamespaceLabels": {}},
        {"prometheusPodLabels": {}},
        {"ingressControllerNamespaceLabels": {}},
    ],
)
def test_an_empty_selector_is_refused_naming_the_field(bad: dict[str, Any]) -> None:
    spec = copy.deepcopy(FULL_SPEC)
    spec["networkPolicy"] = bad
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(spec)
    assert caught.value.field.startswith("networkPolicy."), caught.value.field
