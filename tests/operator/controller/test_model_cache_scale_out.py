"""Scaling out each model-cache mode on a three-node emulated cluster (devcluster.nodes), with
the real operator: every replica runs with a claim per pod or a ReadWriteMany claim; with a
ReadWriteOnce existing claim (the sharing CEL cannot refuse) or too few GPUs the status says
why, in the words of the attach/detach controller and the scheduler."""

from __future__ import annotations

from typing import Any

from operator_helpers import condition, example, operator_calls, wait_for
from reranker_devtools.devcluster import DEPLOYMENTS, PODS, RERANKERS, DevCluster
from reranker_operator.controller.handlers import Controller
from reranker_operator.controller.kube import permitted

NS = "default"
QWEN = "qwen3-reranker-0-6b"
VLLM = "qwen3-reranker-8b-vllm"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
HPA = "horizontal-pod-autoscaler"


def three_gpu_nodes(cluster: DevCluster, gpus: int) -> None:
    for name in ("node-a", "node-b", "node-c"):
        cluster.add_node(name, gpus=gpus, taints=[GPU_TAINT])
    cluster.auto_rollout("ready")


def scale_out(cluster: DevCluster, name: str, replicas: int) -> None:
    """What the HPA does: write the Deployment's replicas (its field, not the operator's)."""
    wait_for(lambda: cluster.get(DEPLOYMENTS, NS, name), "the Deployment")
    cluster.patch(DEPLOYMENTS, NS, name, {"spec": {"replicas": replicas}}, manager=HPA)


def ready_pods(cluster: DevCluster, name: str) -> dict[str, str]:
    """Ready pod name -> its node."""
    return {
        p["metadata"]["name"]: p["spec"]["nodeName"]
        for p in cluster.list(PODS, NS, f"app.kubernetes.io/instance={name}")
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    }


def status_when(cluster: DevCluster, name: str, probe: Any, what: str) -> dict[str, Any]:
    return wait_for(lambda: (cr := cluster.get(RERANKERS, NS, name)) and probe(cr) and cr, what)


def test_per_pod_cache_runs_every_replica(cluster: DevCluster, operator: Controller) -> None:
    three_gpu_nodes(cluster, gpus=1)
    cluster.create(example("qwen3-reranker-0.6b.yaml"))  # modelCache.mode PerPod
    scale_out(cluster, QWEN, 3)
    cr = status_when(
        cluster, QWEN, lambda cr: cr.get("status", {}).get("readyReplicas") == 3, "3 ready replicas"
    )
    assert condition(cr, "Ready")["status"] == "True"
    pods = ready_pods(cluster, QWEN)
    assert sorted(pods.values()) == ["node-a", "node-b", "node-c"]
    claims = cluster.list("v1/persistentvolumeclaims", NS)
    assert sorted(c["metadata"]["name"] for c in claims) == sorted(f"{p}-model-cache" for p in pods)
    assert {tuple(c["spec"]["accessModes"]) for c in claims} == {("ReadWriteOnce",)}
    assert condition(cr, "ModelCache") is None  # no existing claim to judge


def test_read_write_many_cache_runs_every_replica(
    cluster: DevCluster, operator: Controller
) -> None:
    three_gpu_nodes(cluster, gpus=2)
    manifest = example("qwen3-reranker-8b-vllm.yaml")  # the example's commented alternative
    manifest["spec"]["modelCache"] = {
        "enabled": True,
        "accessModes": ["ReadWriteMany"],
        "size": "50Gi",
        "retainOnDelete": True,
    }
    cluster.create(manifest)  # one ReadWriteMany claim
    scale_out(cluster, VLLM, 3)
    status_when(
        cluster, VLLM, lambda cr: cr.get("status", {}).get("readyReplicas") == 3, "3 ready replicas"
    )
    assert sorted(ready_pods(cluster, VLLM).values()) == ["node-a", "node-b", "node-c"]
    (claim,) = cluster.list("v1/persistentvolumeclaims", NS)
    assert claim["metadata"]["name"] == f"{VLLM}-model-cache"
    assert claim["status"]["accessModes"] == ["ReadWriteMany"]
    assert not [e for e in cluster.list("v1/events", NS) if e["reason"] == "FailedAttachVolume"]


def test_read_write_once_existing_claim_is_named_and_multi_attach_reported(
    cluster: DevCluster, operator: Controller
) -> None:
    three_gpu_nodes(cluster, gpus=1)
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "team-models", "namespace": NS},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "10Gi"}},
            },
        }
    )
    manifest = example("qwen3-reranker-0.6b.yaml")
    manifest["spec"]["modelCache"] = {"enabled": True, "existingClaim": "team-models"}
    cluster.create(manifest)
    cr = status_when(cluster, QWEN, lambda cr: condition(cr, "ModelCache"), "ModelCache")
    cache = condition(cr, "ModelCache")
    assert (cache["status"], cache["reason"]) == ("False", "ClaimAttachableOnOneNode")
    assert cache["message"].startswith(
        "spec.modelCache.existingClaim: PersistentVolumeClaim 'team-models' has accessModes "
        "[ReadWriteOnce], attachable on one node at a time, but spec.autoscaling.maxReplicas "
        "allows 4 replicas"
    )

    scale_out(cluster, QWEN, 3)
    volume = wait_for(
        lambda: cluster.get("v1/persistentvolumeclaims", NS, "team-models")["spec"].get(
            "volumeName"
        ),
        "the claim bound",
    )
    holder = "".join(ready_pods(cluster, QWEN))
    cr = status_when(
        cluster,
        QWEN,
        lambda cr: all(
            w in condition(cr, "Ready")["message"]
            for w in ("1/3 replicas available", "Multi-Attach")
        ),
        "Multi-Attach",
    )
    ready = condition(cr, "Ready")
    assert ready["status"] == "False"
    for waiting in sorted({f"{QWEN}-sim-{i}" for i in range(3)} - {holder}):
        assert (
            f'pod {waiting}: Multi-Attach error for volume "{volume}" Volume is already '
            f"used by pod(s) {holder}"
        ) in ready["message"]
    assert cr["status"]["readyReplicas"] == 1
    calls = operator_calls(cluster)  # reading the pods' Events and the claim is in the RBAC
    assert ("list", "", "events") in {(c.verb, c.group, c.resource) for c in calls}
    assert [c for c in calls if not permitted(c.verb, c.group, c.resource)] == []


def test_too_few_gpus_leave_a_replica_pending_with_the_schedulers_message(
    cluster: DevCluster, operator: Controller
) -> None:
    three_gpu_nodes(cluster, gpus=1)
    cluster.create(example("qwen3-reranker-0.6b.yaml"))
    scale_out(cluster, QWEN, 4)
    why = (
        "3/4 replicas available; 1 of 4 pods Pending: 0/3 nodes are available: "
        "3 Insufficient nvidia.com/gpu."
    )
    cr = status_when(
        cluster,
        QWEN,
        lambda cr: all(
            (condition(cr, t) or {}).get("message", "").endswith(why)
            for t in ("Ready", "Progressing")
        ),
        "Ready and Progressing to say why",
    )
    assert condition(cr, "Ready")["status"] == "False"
    assert condition(cr, "Progressing")["reason"] == "DeploymentProgressing"
