"""A stand-in Deployment controller: the status and pods of a rollout phase."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from reranker_devtools.devcluster import nodes
from reranker_devtools.devcluster.common import DEPLOYMENTS, PODS, pod_ready
from reranker_operator.controller.status import now_rfc3339

ROLLOUT_PHASES = ("init", "starting", "ready", "failed")
CONTROLLER_MANAGER = "kube-controller-manager"  # the field manager of the stand-in controller


def deployment_status(
    deployment: Mapping[str, Any], phase: str, ready: int | None = None
) -> dict[str, Any]:
    """What the Deployment controller would report in a rollout phase; `ready` counts the
    pods that are ready when some of a 'ready' rollout are not (devcluster.nodes)."""
    replicas = int((deployment.get("spec") or {}).get("replicas", 1))
    generation = deployment["metadata"].get("generation", 1)
    ts = now_rfc3339()
    if phase == "ready" and ready is not None and ready < replicas:
        phase = "starting"  # still progressing: some pods cannot start
    else:
        ready = replicas if phase == "ready" else 0
    available = {"type": "Available", "lastUpdateTime": ts, "lastTransitionTime": ts}
    progressing = {"type": "Progressing", "lastUpdateTime": ts, "lastTransitionTime": ts}
    if phase == "ready":
        available.update(
            status="True",
            reason="MinimumReplicasAvailable",
            message="Deployment has minimum availability.",
        )
        progressing.update(
            status="True",
            reason="NewReplicaSetAvailable",
            message="ReplicaSet has successfully progressed.",
        )
    elif phase == "failed":
        available.update(
            status="False",
            reason="MinimumReplicasUnavailable",
            message="Deployment does not have minimum availability.",
        )
        progressing.update(
            status="False",
            reason="ProgressDeadlineExceeded",
            message="ReplicaSet has timed out progressing.",
        )
    else:
        available.update(
            status="False",
            reason="MinimumReplicasUnavailable",
            message="Deployment does not have minimum availability.",
        )
        progressing.update(
            status="True", reason="ReplicaSetUpdated", message="ReplicaSet is progressing."
        )
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "conditions": [available, progressing],
    }
    if replicas - ready:
        status["unavailableReplicas"] = replicas - ready
    return status


def pod_status(pod_spec: Mapping[str, Any], phase: str) -> dict[str, Any]:
    """A pod's status in a rollout phase (init containers running during 'init')."""
    init_names = [c.get("name", "init") for c in pod_spec.get("initContainers") or []]
    names = [c.get("name", "main") for c in pod_spec.get("containers") or []] or ["main"]
    ts = now_rfc3339()
    in_init = phase == "init"
    ready = phase == "ready"
    init_statuses = [
        {
            "name": n,
            "ready": not in_init,
            "restartCount": 0,
            "image": "",
            "imageID": "",
            "state": {"running": {"startedAt": ts}}
            if in_init
            else {"terminated": {"exitCode": 0, "reason": "Completed"}},
        }
        for n in init_names
    ]
    if in_init and not init_names:  # no declared init container: still report one running
        init_statuses = [
            {
                "name": "init",
                "ready": False,
                "restartCount": 0,
                "image": "",
                "imageID": "",
                "state": {"running": {"startedAt": ts}},
            }
        ]
    waiting = {"waiting": {"reason": "PodInitializing"}} if in_init else None
    failed = {"waiting": {"reason": "CrashLoopBackOff"}} if phase == "failed" else None
    container_statuses = [
        {
            "name": n,
            "ready": ready,
            "restartCount": 0,
            "image": "",
            "imageID": "",
            "started": not in_init,
            "state": waiting or failed or {"running": {"startedAt": ts}},
        }
        for n in names
    ]
    return {
        "phase": "Pending" if in_init else "Running",
        "conditions": [
            {"type": "Initialized", "status": "False" if in_init else "True"},
            {"type": "Ready", "status": "True" if ready else "False"},
            {"type": "ContainersReady", "status": "True" if ready else "False"},
        ],
        "initContainerStatuses": init_statuses,
        "containerStatuses": container_statuses,
    }


async def sync_pods(emu: Any, deployment: Mapping[str, Any], phase: str) -> int:
    """Create, update or remove the simulated pods of a Deployment (status of `phase`, or
    what the declared nodes allow: devcluster.nodes); returns how many are ready."""
    meta = deployment["metadata"]
    replicas = int((deployment.get("spec") or {}).get("replicas", 1))
    template = (deployment.get("spec") or {}).get("template") or {}
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    owner = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
    }
    wanted = {f"{meta['name']}-sim-{i}" for i in range(replicas)}
    selector = ",".join(f"{k}={v}" for k, v in labels.items()) or None
    for pod in emu._items(PODS, meta["namespace"], selector):
        refs = pod["metadata"].get("ownerReferences") or []
        mine = any(r.get("uid") == meta["uid"] for r in refs)
        if mine and pod["metadata"]["name"] not in wanted:
            await emu.remove(PODS, pod)
    ready = 0
    existing = {p["metadata"]["name"] for p in emu._items(PODS, meta["namespace"], selector)}
    # pods already there first: one waiting for a volume gets it before a new pod (nodes.py)
    for pod_name in sorted(wanted, key=lambda n: (n not in existing, n)):
        status = pod_status(template.get("spec") or {}, phase)
        live = emu.live(PODS, meta["namespace"], pod_name)
        if live is None:
            await emu.create_object(
                PODS,
                meta["namespace"],
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": pod_name, "labels": labels, "ownerReferences": [owner]},
                    "spec": copy.deepcopy(template.get("spec") or {}),
                },
                manager=CONTROLLER_MANAGER,
            )
            live = emu.live(PODS, meta["namespace"], pod_name)
        status = await nodes.settle(emu, live, status)
        ready += pod_ready({"status": status})
        live = emu.live(PODS, meta["namespace"], pod_name)
        await emu.update_object(PODS, live, dict(live, status=status), "status", manager="kubelet")
    return ready


async def roll_out(emu: Any, namespace: str, name: str, phase: str) -> dict[str, Any]:
    """Bring one Deployment's pods and status to a rollout phase (under the emulator's lock)."""
    live = emu.live(DEPLOYMENTS, namespace, name)
    if live is None:
        raise KeyError(f"deployment {namespace}/{name} not found")
    ready = await sync_pods(emu, live, phase)
    new = copy.deepcopy(live)
    new["status"] = deployment_status(live, phase, ready)
    return await emu.update_object(DEPLOYMENTS, live, new, "status", manager=CONTROLLER_MANAGER)


def needs_rollout(deployment: Mapping[str, Any]) -> bool:
    """Whether the Deployment controller has not yet seen this generation."""
    observed = (deployment.get("status") or {}).get("observedGeneration")
    return observed != deployment["metadata"].get("generation")
