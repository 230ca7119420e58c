"""The real operator against the emulated API with KEDA: the ScaledObject, the HTTP add-on's
InterceptorRoute and proxy Service, switching between an HPA and KEDA (never both, no orphan),
scaling to zero and back (the ScaledToZero condition), and the KEDA CRDs missing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from operator_helpers import children, condition, example, wait_for, writes
from reranker_devtools.devcluster import DEPLOYMENTS, RERANKERS, DevCluster
from reranker_operator.controller.handlers import Controller

NS = "default"
NAME = "qwen3-reranker-0-6b"
KEDA = "qwen3-reranker-0.6b-keda.yaml"
PROXY = f"{NAME}-proxy"
# What KEDA's operator is to the API server: another field manager, scaling through /scale.
KEDA_MANAGER = "keda-operator"


def cr_of(cluster: DevCluster) -> dict[str, Any]:
    return cluster.get(RERANKERS, NS, NAME) or {}


def reason_of(cluster: DevCluster, type_: str) -> tuple[str, str] | None:
    cond = condition(cr_of(cluster), type_)
    return (cond["status"], cond["reason"]) if cond else None


def kinds_of(cluster: DevCluster) -> set[str]:
    return set(children(cluster, NAME))


def keda_scales(cluster: DevCluster, replicas: int) -> None:
    """What KEDA does to the Deployment: set its replicas through the scale subresource; then
    the Deployment controller's rollout."""
    cluster.patch(
        DEPLOYMENTS, NS, NAME, {"spec": {"replicas": replicas}}, "scale", manager=KEDA_MANAGER
    )
    cluster.simulate_rollout(NS, NAME, "ready")


def test_keda_example_creates_the_scaled_object_route_and_proxy(
    cluster: DevCluster, operator: Controller
) -> None:
    cluster.create(example(KEDA))
    expected = {
        f"Deployment/{NAME}",
        f"Service/{NAME}",
        f"ScaledObject/{NAME}",
        f"InterceptorRoute/{NAME}",
        f"Service/{PROXY}",
        f"NetworkPolicy/{NAME}",
        f"ServiceMonitor/{NAME}",
    }
    got = wait_for(
        lambda: (c := children(cluster, NAME)) and set(c) == expected and c, "the KEDA children"
    )
    assert not [k for k in got if k.startswith("HorizontalPodAutoscaler/")]
    assert "replicas" not in got[f"Deployment/{NAME}"]["spec"]  # KEDA owns the replica count
    scaled = got[f"ScaledObject/{NAME}"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == NAME and scaled["minReplicaCount"] == 0
    assert [t["type"] for t in scaled["triggers"]] == ["prometheus", "external-push"]
    assert got[f"InterceptorRoute/{NAME}"]["spec"]["target"]["service"] == NAME
    status = wait_for(
        lambda: cr_of(cluster).get("status", {}).get("endpoint") and cr_of(cluster)["status"],
        "the status",
    )
    assert status["endpoint"] == f"http://{PROXY}.{NS}.svc.cluster.local:8080"
    assert reason_of(cluster, "ScaledObject") == ("True", "Available")
    assert reason_of(cluster, "InterceptorRoute") == ("True", "Available")


def test_scale_to_zero_and_back_is_reported_plainly(
    cluster: DevCluster, operator: Controller
) -> None:
    cluster.create(example(KEDA))
    wait_for(lambda: cluster.get(DEPLOYMENTS, NS, NAME), "the Deployment")
    keda_scales(cluster, 1)
    wait_for(lambda: reason_of(cluster, "Ready") == ("True", "Available"), "Ready=True")
    assert reason_of(cluster, "ScaledToZero") == ("False", "Running")

    keda_scales(cluster, 0)
    wait_for(
        lambda: reason_of(cluster, "ScaledToZero") == ("True", "ScaledToZero"), "ScaledToZero=True"
    )
    assert reason_of(cluster, "Ready") == ("False", "ScaledToZero")  # not serving: not Ready
    assert reason_of(cluster, "Degraded") == ("False", "ScaledToZero")  # but not failing
    status = cr_of(cluster)["status"]
    assert status["replicaSummary"] == "0/0"
    assert PROXY in condition(cr_of(cluster), "ScaledToZero")["message"]
    warnings = [e for e in cluster.list("v1/events", NS) if e.get("type") == "Warning"]
    assert warnings == []
    # The operator leaves KEDA's replica count alone.
    assert cluster.get(DEPLOYMENTS, NS, NAME)["spec"]["replicas"] == 0

    keda_scales(cluster, 2)
    wait_for(lambda: reason_of(cluster, "Ready") == ("True", "Available"), "Ready again")
    assert reason_of(cluster, "ScaledToZero") == ("False", "Running")
    assert cr_of(cluster)["status"]["replicaSummary"] == "2/2"


def _scaler_overlaps(cluster: DevCluster) -> list[str]:
    """Writes that created a scaler while another scaler of this service existed."""
    live: set[str] = set()
    overlaps = []
    for call in writes(cluster.calls):
        kind = {"horizontalpodautoscalers": "HPA", "scaledobjects": "ScaledObject"}.get(
            call.resource.split("/")[0]
        )
        if kind is None:
            continue
        if call.verb == "delete":
            live.discard(kind)
        else:
            if live - {kind}:
                overlaps.append(f"{call.verb} {kind} while {sorted(live)} exists")
            live.add(kind)
    return overlaps


def test_switching_between_hpa_and_keda_leaves_no_orphan(
    cluster: DevCluster, operator: Controller
) -> None:
    hpa_manifest = example("qwen3-reranker-0.6b.yaml")
    hpa_manifest["spec"]["metrics"] = {"serviceMonitor": {"enabled": True}}
    cluster.create(hpa_manifest)
    wait_for(lambda: f"HorizontalPodAutoscaler/{NAME}" in kinds_of(cluster), "the HPA")

    keda_spec = copy.deepcopy(example(KEDA)["spec"])
    cluster.patch(
        RERANKERS, NS, NAME, {"spec": {"autoscaling": keda_spec["autoscaling"], "replicas": 0}}
    )
    got = wait_for(
        lambda: (
            (k := kinds_of(cluster))
            and f"ScaledObject/{NAME}" in k
            and f"HorizontalPodAutoscaler/{NAME}" not in k
            and f"Service/{PROXY}" in k
            and f"InterceptorRoute/{NAME}" in k
            and k
        ),
        "HPA -> KEDA",
    )
    assert f"InterceptorRoute/{NAME}" in got
    keda_scales(cluster, 0)
    wait_for(lambda: reason_of(cluster, "ScaledToZero") == ("True", "ScaledToZero"), "at zero")

    # Back to the HPA: the KEDA children go, and the Deployment KEDA left at zero is woken (an
    # HPA does not scale a Deployment at zero replicas).
    cluster.patch(
        RERANKERS,
        NS,
        NAME,
        {
            "spec": {
                "replicas": 1,
                "autoscaling": hpa_manifest["spec"]["autoscaling"] | {"keda": None},
            }
        },
    )
    got = wait_for(
        lambda: (
            (k := kinds_of(cluster))
            and f"HorizontalPodAutoscaler/{NAME}" in k
            and f"ScaledObject/{NAME}" not in k
            # the operator deletes the orphans one call at a time: wait for all of them
            and f"InterceptorRoute/{NAME}" not in k
            and f"Service/{PROXY}" not in k
            and k
        ),
        "KEDA -> HPA",
    )
    assert f"InterceptorRoute/{NAME}" not in got and f"Service/{PROXY}" not in got
    wait_for(
        lambda: cluster.get(DEPLOYMENTS, NS, NAME)["spec"].get("replicas") == 1,
        "the Deployment scaled to minReplicas",
    )
    cluster.simulate_rollout(NS, NAME, "ready")
    wait_for(lambda: reason_of(cluster, "Ready") == ("True", "Available"), "Ready under the HPA")
    assert condition(cr_of(cluster), "ScaledToZero") is None
    assert condition(cr_of(cluster), "ScaledObject") is None
    assert cr_of(cluster)["status"]["endpoint"] == f"http://{NAME}.{NS}.svc.cluster.local:8080"
    assert _scaler_overlaps(cluster) == []


@pytest.mark.parametrize(
    "cluster_options",
    [{"unserved": ["ScaledObject", "InterceptorRoute", "HTTPScaledObject"]}],
    indirect=True,
)
def test_missing_keda_apis_set_conditions(cluster: DevCluster, operator: Controller) -> None:
    cluster.create(example(KEDA))
    wait_for(
        lambda: reason_of(cluster, "ScaledObject") == ("False", "ScaledObjectCRDMissing"),
        "ScaledObjectCRDMissing",
    )
    assert reason_of(cluster, "InterceptorRoute") == ("False", "InterceptorRouteCRDMissing")
    message = condition(cr_of(cluster), "ScaledObject")["message"]
    assert "keda.sh/v1alpha1" in message and "KEDA" in message
    missing = {"ScaledObjectCRDMissing", "InterceptorRouteCRDMissing"}
    # one Warning event per missing API, posted one after the other: wait for both
    wait_for(
        lambda: (
            missing
            <= {
                e.get("reason") for e in cluster.list("v1/events", NS) if e.get("type") == "Warning"
            }
        ),
        "both Warning events",
    )
    assert not [
        c for c in cluster.calls if c.resource.startswith(("scaledobjects", "interceptorroutes"))
    ]
    assert f"Deployment/{NAME}" in kinds_of(cluster)
