"""The emulator's nodes (devtools/reranker_devtools/devcluster/nodes.py): the scheduler's fit and message, claims
bound to volumes, generic ephemeral volumes, and the one-node attachment of ReadWriteOnce
volumes (Multi-Attach), on a three-node cluster driven by the stand-in Deployment controller."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from reranker_devtools.devcluster import PODS, DevCluster
from reranker_devtools.devcluster.nodes import Cluster, make_node, misfit, pod_requests, schedule

NS = "default"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
TOLERATE_GPU = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def pod_spec(
    gpus: int = 0, cpu: str = "1", volumes: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": cpu, "memory": "1Gi"}}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}  # a limit alone requests it
    return {
        "initContainers": [
            {"name": "model-download", "image": "x", "resources": {"requests": {"cpu": "2"}}}
        ],
        "containers": [{"name": "server", "image": "x", "resources": resources}],
        "volumes": volumes or [],
        **extra,
    }


def deployment(name: str, replicas: int, spec: dict[str, Any]) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def claim(name: str, modes: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"accessModes": modes, "resources": {"requests": {"storage": "1Gi"}}},
    }


@pytest.fixture
def three_nodes() -> Iterator[DevCluster]:
    with DevCluster() as cluster:
        for name in ("gpu-a", "gpu-b", "gpu-c"):
            cluster.add_node(name, gpus=1, taints=[GPU_TAINT])
        yield cluster


def pods_of(cluster: DevCluster, app: str) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in cluster.list(PODS, NS, f"app={app}")}


def condition(pod: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in pod["status"]["conditions"] if c["type"] == type_)


def warnings(cluster: DevCluster, reason: str) -> dict[str, str]:
    return {
        e["involvedObject"]["name"]: e["message"]
        for e in cluster.list("v1/events", NS)
        if e["reason"] == reason
    }


def test_requests_sum_containers_and_cover_each_init_container() -> None:
    spec = pod_spec(gpus=2, cpu="500m")
    spec["containers"].append({"name": "side", "resources": {"requests": {"cpu": "250m"}}})
    assert pod_requests(spec) == {
        "cpu": Decimal(2),
        "memory": Decimal(2**30),
        "nvidia.com/gpu": Decimal(2),
    }


def test_filters_in_the_scheduler_order_and_words() -> None:
    gpu = make_node("g", gpus=1, taints=[GPU_TAINT])
    cpu = make_node("c", labels={"pool": "cpu"})
    assert misfit(gpu, pod_spec(), {}) == [
        "node(s) had untolerated taint {nvidia.com/gpu: present}"
    ]
    assert misfit(gpu, pod_spec(tolerations=TOLERATE_GPU, nodeSelector={"pool": "cpu"}), {}) == [
        "node(s) didn't match Pod's node affinity/selector"
    ]
    assert misfit(cpu, pod_spec(gpus=1), {}) == ["Insufficient nvidia.com/gpu"]
    assert misfit(gpu, pod_spec(gpus=1, tolerations=TOLERATE_GPU), {}) == []
    assert misfit(
        gpu,
        pod_spec(gpus=1, cpu="15", tolerations=TOLERATE_GPU),
        {"cpu": Decimal(2), "nvidia.com/gpu": Decimal(1)},
    ) == ["Insufficient cpu", "Insufficient nvidia.com/gpu"]


def test_the_message_counts_each_reason_over_the_nodes() -> None:
    cluster = Cluster(
        nodes={
            n.name: n
            for n in (
                make_node("a", gpus=1, taints=[GPU_TAINT]),
                make_node("b", gpus=1, taints=[GPU_TAINT]),
                make_node("c"),
            )
        }
    )
    busy = {"metadata": {"name": "p"}, "spec": {**pod_spec(gpus=1), "nodeName": "a"}}
    pod = {"metadata": {"name": "q"}, "spec": pod_spec(gpus=1, tolerations=TOLERATE_GPU)}
    assert schedule(cluster, pod, [busy]) == ("b", "")
    busy_b = {"metadata": {"name": "r"}, "spec": {**pod_spec(gpus=1), "nodeName": "b"}}
    assert schedule(cluster, pod, [busy, busy_b]) == (
        None,
        "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
    )
    assert schedule(cluster, {"metadata": {"name": "s"}, "spec": pod_spec(gpus=1)}, []) == (
        None,
        "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, "
        "2 node(s) had untolerated taint {nvidia.com/gpu: present}.",
    )


def test_without_nodes_pods_run_as_before() -> None:
    with DevCluster() as cluster:
        cluster.create(deployment("plain", 3, pod_spec(gpus=8)))
        dep = cluster.simulate_rollout(NS, "plain", "ready")
        assert dep["status"]["readyReplicas"] == 3
        assert all("nodeName" not in p["spec"] for p in pods_of(cluster, "plain").values())


def test_pods_spread_over_nodes_and_the_one_that_fits_nowhere_stays_pending(
    three_nodes: DevCluster,
) -> None:
    cluster = three_nodes
    cluster.create(deployment("big", 4, pod_spec(gpus=1, tolerations=TOLERATE_GPU)))
    dep = cluster.simulate_rollout(NS, "big", "ready")
    pods = pods_of(cluster, "big")
    nodes = sorted(p["spec"].get("nodeName", "-") for p in pods.values())
    assert nodes == ["-", "gpu-a", "gpu-b", "gpu-c"]
    pending = pods["big-sim-3"]
    assert pending["status"]["phase"] == "Pending"
    scheduled = condition(pending, "PodScheduled")
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    assert (scheduled["status"], scheduled["reason"], scheduled["message"]) == (
        "False",
        "Unschedulable",
        message,
    )
    assert warnings(cluster, "FailedScheduling") == {"big-sim-3": message}
    assert (dep["status"]["readyReplicas"], dep["status"]["replicas"]) == (3, 4)
    assert dep["status"]["conditions"][0]["status"] == "False"  # not Available


def test_one_read_write_once_claim_attaches_on_one_node_only(three_nodes: DevCluster) -> None:
    cluster = three_nodes
    cluster.create(claim("cache", ["ReadWriteOnce"]))
    volumes = [{"name": "model-cache", "persistentVolumeClaim": {"claimName": "cache"}}]
    cluster.create(
        deployment("rwo", 3, pod_spec(gpus=1, tolerations=TOLERATE_GPU, volumes=volumes))
    )
    dep = cluster.simulate_rollout(NS, "rwo", "ready")
    pods = pods_of(cluster, "rwo")
    pvc = cluster.get("v1/persistentvolumeclaims", NS, "cache")
    volume = pvc["spec"]["volumeName"]
    assert pvc["status"]["phase"] == "Bound"
    assert cluster.get("v1/persistentvolumes", None, volume)["spec"]["accessModes"] == [
        "ReadWriteOnce"
    ]
    assert condition(pods["rwo-sim-0"], "Ready")["status"] == "True"
    for name in ("rwo-sim-1", "rwo-sim-2"):
        status = pods[name]["status"]
        assert condition(pods[name], "PodScheduled")["status"] == "True"
        assert status["phase"] == "Pending"
        assert [s["state"] for s in status["initContainerStatuses"]] == [
            {"waiting": {"reason": "PodInitializing"}}
        ]
    expected = (
        f'Multi-Attach error for volume "{volume}" Volume is already used by pod(s) rwo-sim-0'
    )
    assert warnings(cluster, "FailedAttachVolume") == {"rwo-sim-1": expected, "rwo-sim-2": expected}
    assert dep["status"]["readyReplicas"] == 1
    # the holder goes away: a waiting pod gets the volume, and its replacement, on the free
    # node, waits in turn
    cluster.delete(PODS, NS, "rwo-sim-0")
    cluster.simulate_rollout(NS, "rwo", "ready")
    pods = pods_of(cluster, "rwo")
    assert {n: condition(p, "Ready")["status"] for n, p in pods.items()} == {
        "rwo-sim-0": "False",
        "rwo-sim-1": "True",
        "rwo-sim-2": "False",
    }
    assert pods["rwo-sim-0"]["spec"]["nodeName"] == "gpu-a"
    assert warnings(cluster, "FailedAttachVolume")["rwo-sim-0"] == (
        f'Multi-Attach error for volume "{volume}" Volume is already used by pod(s) rwo-sim-1'
    )


@pytest.mark.parametrize("modes", [["ReadWriteMany"], ["ReadOnlyMany", "ReadWriteOnce"]])
def test_multi_node_claims_attach_everywhere(three_nodes: DevCluster, modes: list[str]) -> None:
    cluster = three_nodes
    cluster.create(claim("shared", modes))
    volumes = [{"name": "model-cache", "persistentVolumeClaim": {"claimName": "shared"}}]
    cluster.create(
        deployment("rwx", 3, pod_spec(gpus=1, tolerations=TOLERATE_GPU, volumes=volumes))
    )
    dep = cluster.simulate_rollout(NS, "rwx", "ready")
    assert dep["status"]["readyReplicas"] == 3
    assert {p["spec"]["nodeName"] for p in pods_of(cluster, "rwx").values()} == {
        "gpu-a",
        "gpu-b",
        "gpu-c",
    }
    assert warnings(cluster, "FailedAttachVolume") == {}


def test_generic_ephemeral_volumes_give_each_pod_its_own_claim(three_nodes: DevCluster) -> None:
    cluster = three_nodes
    template = {
        "metadata": {"labels": {"cache": "yes"}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "ssd",
            "resources": {"requests": {"storage": "5Gi"}},
        },
    }
    volumes = [{"name": "model-cache", "ephemeral": {"volumeClaimTemplate": template}}]
    cluster.create(
        deployment("eph", 3, pod_spec(gpus=1, tolerations=TOLERATE_GPU, volumes=volumes))
    )
    dep = cluster.simulate_rollout(NS, "eph", "ready")
    assert dep["status"]["readyReplicas"] == 3
    pods = pods_of(cluster, "eph")
    claims = {
        c["metadata"]["name"]: c for c in cluster.list("v1/persistentvolumeclaims", NS, "cache=yes")
    }
    assert sorted(claims) == [f"{p}-model-cache" for p in sorted(pods)]
    for pod_name, pod in pods.items():
        own = claims[f"{pod_name}-model-cache"]
        assert [(r["kind"], r["uid"]) for r in own["metadata"]["ownerReferences"]] == [
            ("Pod", pod["metadata"]["uid"])
        ]
        assert own["spec"]["storageClassName"] == "ssd" and own["status"]["phase"] == "Bound"
    cluster.delete(PODS, NS, "eph-sim-2")  # the claim goes with its pod
    assert cluster.get("v1/persistentvolumeclaims", NS, "eph-sim-2-model-cache") is None
