"""The real operator on the emulated API with spec.resources.dra: the ResourceClaimTemplate is
applied, owned and named by the Deployment's pods, replaced (and the old one pruned) when the
request changes; on a cluster without resource.k8s.io/v1 a condition names spec.resources.dra
and the operator keeps running."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from operator_helpers import children, condition, example, wait_for
from reranker_devtools.devcluster import DEPLOYMENTS, RERANKERS, DevCluster
from reranker_operator.controller.handlers import Controller

NS = "default"
NAME = "qwen3-reranker-0-6b-dra"
DRA = "qwen3-reranker-0.6b-dra.yaml"
TEMPLATES = "resource.k8s.io/v1/resourceclaimtemplates"


def templates(cluster: DevCluster) -> dict[str, dict[str, Any]]:
    return children(cluster, NAME, ["ResourceClaimTemplate"])


def claim_named_by_pods(cluster: DevCluster) -> str | None:
    dep = cluster.get(DEPLOYMENTS, NS, NAME)
    if not dep:
        return None
    claims = dep["spec"]["template"]["spec"].get("resourceClaims") or []
    return claims[0]["resourceClaimTemplateName"] if claims else None


def test_claim_template_applied_and_replaced(cluster: DevCluster, operator: Controller) -> None:
    cr = cluster.create(example(DRA))
    first = wait_for(lambda: claim_named_by_pods(cluster), "the Deployment naming a claim")
    got = wait_for(lambda: templates(cluster), "the ResourceClaimTemplate")
    assert list(got) == [f"ResourceClaimTemplate/{first}"]
    owner = got[f"ResourceClaimTemplate/{first}"]["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "RerankerService" and owner["uid"] == cr["metadata"]["uid"]
    wait_for(
        lambda: (
            (c := condition(cluster.get(RERANKERS, NS, NAME), "ResourceClaimTemplate"))
            and c["status"] == "True"
        ),
        "the ResourceClaimTemplate condition",
    )
    spec = copy.deepcopy(cluster.get(RERANKERS, NS, NAME)["spec"])
    spec["resources"]["dra"]["migProfile"] = "2g.35gb"
    cluster.patch(RERANKERS, NS, NAME, {"spec": {"resources": spec["resources"]}})
    second = wait_for(
        lambda: (n := claim_named_by_pods(cluster)) != first and n, "the pods naming a new claim"
    )
    wait_for(
        lambda: list(templates(cluster)) == [f"ResourceClaimTemplate/{second}"],
        "the old template pruned",
    )
    request = templates(cluster)[f"ResourceClaimTemplate/{second}"]["spec"]["spec"]["devices"]
    assert "2g.35gb" in request["requests"][0]["exactly"]["selectors"][1]["cel"]["expression"]


@pytest.mark.parametrize(
    "cluster_options", [{"unserved": ["ResourceClaimTemplate"]}], indirect=True
)
def test_missing_dra_api_names_the_field(cluster: DevCluster, operator: Controller) -> None:
    cluster.create(example(DRA))
    cond = wait_for(
        lambda: condition(cluster.get(RERANKERS, NS, NAME), "ResourceClaimTemplate"),
        "the ResourceClaimTemplate condition",
    )
    assert (cond["status"], cond["reason"]) == ("False", "ResourceClaimTemplateAPIMissing")
    assert "resource.k8s.io/v1" in cond["message"] and "spec.resources.dra" in cond["message"]
    assert not [c for c in cluster.calls if c.resource.startswith("resourceclaimtemplates")]
    wait_for(lambda: cluster.get(DEPLOYMENTS, NS, NAME), "the other children still applied")
