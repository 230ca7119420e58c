"""Nodes, the scheduler's fit and volume attachment: what a multi-node cluster does to a pod
before its containers start (a stand-in for kube-scheduler, the PV controller, the ephemeral
volume controller and the attach/detach controller).

Off until a test declares a node (`DevCluster.add_node`): then every pod the stand-in Deployment
controller syncs (rollout.sync_pods) goes through `settle`, in name order:
- the ephemeral volume controller creates one claim per generic ephemeral volume, named
  `<pod>-<volume>` and owned by the pod (deleted with it);
- kube-scheduler places a pod that has no node on a node whose free allocatable (capacity minus
  the requests of the pods placed there) covers the pod's requests (nvidia.com/gpu, cpu,
  memory, ...), whose labels match its nodeSelector and whose NoSchedule/NoExecute taints it
  tolerates, preferring the node with the fewest pods of the same owner (the default spreading);
  a pod that fits nowhere stays Pending, PodScheduled=False/Unschedulable with the scheduler's
  message ("0/3 nodes are available: 3 Insufficient nvidia.com/gpu."), and a FailedScheduling
  Event;
- each claim the pod mounts is bound to a PersistentVolume (created, with the claim's access
  modes) when first used;
- the attach/detach controller attaches each volume on the pod's node. A volume whose access
  modes hold neither ReadWriteMany nor ReadOnlyMany (block storage: ReadWriteOnce,
  ReadWriteOncePod) attaches on one node at a time: while pods on that node use it, a pod on
  another node stays in its init/creating state (Pending, containers waiting) with a
  FailedAttachVolume Event "Multi-Attach error for volume "pv" Volume is already used by pod(s)
  ...", as the kubelet and the controller report it.
A pod that passes all of this gets the status of the rollout phase.
"""

from __future__ import annotations

import copy
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from reranker_devtools.devcluster.common import PODS, Ref
from reranker_operator.api.quantity import parse_quantity
from reranker_operator.controller.status import now_rfc3339

NODES = Ref("", "v1", "nodes")
PVCS = Ref("", "v1", "persistentvolumeclaims")
PVS = Ref("", "v1", "persistentvolumes")
EVENTS = Ref("", "v1", "events")
GPU = "nvidia.com/gpu"
MULTI_NODE_MODES = frozenset({"ReadWriteMany", "ReadOnlyMany"})
SCHEDULER = "default-scheduler"
ATTACH_DETACH = "attachdetach-controller"
EPHEMERAL = "ephemeral-volume-controller"
PV_CONTROLLER = "persistentvolume-controller"


@dataclass(frozen=True)
class Node:
    """A node as the scheduler sees it: allocatable resources, labels, taints."""

    name: str
    allocatable: dict[str, Decimal]
    labels: dict[str, str]
    taints: tuple[dict[str, str], ...] = ()

    def manifest(self) -> dict[str, Any]:
        """The Node object (kubectl get nodes)."""
        resources = {k: str(v) for k, v in self.allocatable.items()}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": dict(self.labels)},
            "spec": {"taints": [dict(t) for t in self.taints]} if self.taints else {},
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }


@dataclass
class Cluster:
    """The declared nodes and the volume attachments (persistent volume -> node)."""

    nodes: dict[str, Node] = field(default_factory=dict)
    attachments: dict[str, str] = field(default_factory=dict)
    posted: set[tuple[str, str, str]] = field(default_factory=set)  # (pod uid, reason, message)


def make_node(
    name: str,
    *,
    cpu: str = "16",
    memory: str = "64Gi",
    gpus: int = 0,
    labels: Mapping[str, str] | None = None,
    taints: Iterable[Mapping[str, str]] = (),
) -> Node:
    """A node with `gpus` nvidia.com/gpu (none: the resource is absent, as on a CPU node)."""
    allocatable = {
        "cpu": parse_quantity(cpu),
        "memory": parse_quantity(memory),
        "pods": Decimal(110),
    }
    if gpus:
        allocatable[GPU] = Decimal(gpus)
    all_labels = {"kubernetes.io/hostname": name, **(labels or {})}
    return Node(name, allocatable, all_labels, tuple(dict(t) for t in taints))


# --- the scheduler's fit


def pod_requests(pod_spec: Mapping[str, Any]) -> dict[str, Decimal]:
    """The pod's effective requests: the sum over its containers, at least each init
    container's; a resource with a limit and no request requests its limit."""

    def of(container: Mapping[str, Any]) -> dict[str, Decimal]:
        res = container.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        return {k: parse_quantity(v) for k, v in merged.items()}

    total: Counter[str] = Counter()
    for c in pod_spec.get("containers") or []:
        total.update(of(c))
    out = dict(total)
    for c in pod_spec.get("initContainers") or []:
        for k, v in of(c).items():
            out[k] = max(out.get(k, Decimal(0)), v)
    return out


def _tolerated(taint: Mapping[str, str], tolerations: Iterable[Mapping[str, Any]]) -> bool:
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t.get("key") == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def misfit(node: Node, pod_spec: Mapping[str, Any], used: Mapping[str, Decimal]) -> list[str]:
    """Why the pod does not fit `node` (the first failing filter's reasons, the scheduler's
    words), or [] when it fits."""
    for taint in node.taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(
            taint, pod_spec.get("tolerations") or []
        ):
            return [f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"]
    selector = pod_spec.get("nodeSelector") or {}
    if any(node.labels.get(k) != v for k, v in selector.items()):
        return ["node(s) didn't match Pod's node affinity/selector"]
    return [
        f"Insufficient {name}"
        for name, want in sorted(pod_requests(pod_spec).items())
        if want > 0 and want > node.allocatable.get(name, Decimal(0)) - used.get(name, 0)
    ]


def unschedulable_message(total: int, reasons: Iterable[str]) -> str:
    """The scheduler's FitError message: each reason counted over the nodes, sorted."""
    counts = Counter(reasons)
    listed = sorted(f"{n} {reason}" for reason, n in counts.items())
    return f"0/{total} nodes are available: {', '.join(listed)}."


def _owner_uid(pod: Mapping[str, Any]) -> str | None:
    refs = pod["metadata"].get("ownerReferences") or []
    return next((r.get("uid") for r in refs if r.get("controller")), None)


def schedule(
    cluster: Cluster, pod: Mapping[str, Any], placed: list[Mapping[str, Any]]
) -> tuple[str | None, str]:
    """(node, "") for the pod, or (None, the scheduler's message). `placed`: the pods already
    on nodes (their requests use the nodes' allocatable)."""
    used: dict[str, Counter[str]] = {n: Counter() for n in cluster.nodes}
    same_owner: Counter[str] = Counter()
    owner = _owner_uid(pod)
    for other in placed:
        node = (other.get("spec") or {}).get("nodeName")
        if node in used:
            used[node].update(pod_requests(other.get("spec") or {}))
            if owner is not None and _owner_uid(other) == owner:
                same_owner[node] += 1
    reasons: list[str] = []
    feasible = []
    for node in cluster.nodes.values():
        why = misfit(node, pod.get("spec") or {}, used[node.name])
        if why:
            reasons += why
        else:
            feasible.append(node.name)
    if not feasible:
        return None, unschedulable_message(len(cluster.nodes), reasons)
    return min(
        feasible,
        key=lambda n: (
            same_owner[n],
            sum(1 for o in placed if (o.get("spec") or {}).get("nodeName") == n),
            n,
        ),
    ), ""


# --- claims and attachment


def claim_names(pod: Mapping[str, Any]) -> list[str]:
    """The claims the pod mounts: persistentVolumeClaim volumes and, as the ephemeral volume
    controller names them, `<pod>-<volume>` for generic ephemeral volumes."""
    out = []
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        if "persistentVolumeClaim" in vol:
            out.append(vol["persistentVolumeClaim"]["claimName"])
        elif "ephemeral" in vol:
            out.append(f"{pod['metadata']['name']}-{vol['name']}")
    return out


async def _create_ephemeral_claims(emu: Any, pod: Mapping[str, Any]) -> None:
    meta = pod["metadata"]
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        if "ephemeral" not in vol:
            continue
        name = f"{meta['name']}-{vol['name']}"
        if emu.live(PVCS, meta["namespace"], name) is not None:
            continue
        template = vol["ephemeral"]["volumeClaimTemplate"]
        owner = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        await emu.create_object(
            PVCS,
            meta["namespace"],
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {
                    **copy.deepcopy(template.get("metadata") or {}),
                    "name": name,
                    "ownerReferences": [owner],
                },
                "spec": copy.deepcopy(template["spec"]),
            },
            manager=EPHEMERAL,
        )


async def _bound_volume(emu: Any, namespace: str, claim: Mapping[str, Any]) -> dict[str, Any]:
    """The claim's PersistentVolume, provisioned and bound on first use."""
    volume_name = (claim.get("spec") or {}).get("volumeName")
    if volume_name:
        pv = emu.live(PVS, None, volume_name)
        if pv is not None:
            return pv
    spec = claim.get("spec") or {}
    volume_name = f"pvc-{claim['metadata']['uid']}"
    size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    modes = list(spec.get("accessModes") or ["ReadWriteOnce"])
    pv = await emu.create_object(
        PVS,
        None,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume_name},
            "spec": {
                "accessModes": modes,
                "capacity": {"storage": size},
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": spec.get("storageClassName", "standard"),
                "claimRef": {
                    "kind": "PersistentVolumeClaim",
                    "namespace": namespace,
                    "name": claim["metadata"]["name"],
                    "uid": claim["metadata"]["uid"],
                },
            },
        },
        manager=PV_CONTROLLER,
    )
    live = emu.live(PVCS, namespace, claim["metadata"]["name"])
    bound = copy.deepcopy(live)
    bound["spec"]["volumeName"] = volume_name
    live = await emu.update_object(PVCS, live, bound, None, manager=PV_CONTROLLER)
    await emu.update_object(
        PVCS,
        live,
        dict(live, status={"phase": "Bound", "accessModes": modes, "capacity": {"storage": size}}),
        "status",
        manager=PV_CONTROLLER,
    )
    return pv


def _users_on(emu: Any, namespace: str, claim: str, node: str, me: str) -> list[str]:
    """The other pods on `node` that mount `claim`."""
    return sorted(
        p["metadata"]["name"]
        for p in emu._items(PODS, namespace)
        if p["metadata"]["name"] != me
        and (p.get("spec") or {}).get("nodeName") == node
        and claim in claim_names(p)
    )


async def _attach(emu: Any, cluster: Cluster, pod: Mapping[str, Any], node: str) -> list[str]:
    """Attach the pod's volumes on `node`: the Multi-Attach messages of those that cannot be."""
    namespace, me = pod["metadata"]["namespace"], pod["metadata"]["name"]
    errors = []
    for claim_name in claim_names(pod):
        claim = emu.live(PVCS, namespace, claim_name)
        if claim is None:
            continue
        pv = await _bound_volume(emu, namespace, claim)
        volume = pv["metadata"]["name"]
        if set(pv["spec"].get("accessModes") or []) & MULTI_NODE_MODES:
            continue
        holder = cluster.attachments.get(volume)
        users = _users_on(emu, namespace, claim_name, holder, me) if holder else []
        if holder and holder != node and users:
            errors.append(
                f'Multi-Attach error for volume "{volume}" Volume is already used '
                f"by pod(s) {', '.join(users)}"
            )
        else:
            cluster.attachments[volume] = node
    return errors


async def _event(
    emu: Any, cluster: Cluster, pod: Mapping[str, Any], reason: str, message: str, component: str
) -> None:
    """A Warning Event about the pod (once per pod, reason and message)."""
    meta = pod["metadata"]
    key = (meta["uid"], reason, message)
    if key in cluster.posted:
        return
    cluster.posted.add(key)
    ts = now_rfc3339()
    await emu.create_object(
        EVENTS,
        meta["namespace"],
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}"},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "type": "Warning",
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "source": {"component": component},
            "reportingComponent": component,
        },
        manager=component,
    )


def pending_status(message: str) -> dict[str, Any]:
    """An unschedulable pod's status."""
    return {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastTransitionTime": now_rfc3339(),
            }
        ],
    }


def creating_status(pod_spec: Mapping[str, Any]) -> dict[str, Any]:
    """A scheduled pod whose volumes are not mounted yet: no container started (the kubelet
    reports every container waiting: PodInitializing when the pod has init containers, else
    ContainerCreating)."""
    inits = [c.get("name", "init") for c in pod_spec.get("initContainers") or []]
    reason = "PodInitializing" if inits else "ContainerCreating"

    def waiting(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "ready": False,
            "restartCount": 0,
            "image": "",
            "imageID": "",
            "started": False,
            "state": {"waiting": {"reason": reason}},
        }

    status: dict[str, Any] = {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
            {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"},
        ],
        "containerStatuses": [
            waiting(c.get("name", "main")) for c in pod_spec.get("containers") or []
        ],
    }
    if inits:
        status["initContainerStatuses"] = [waiting(n) for n in inits]
    return status


async def settle(emu: Any, pod: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The status a pod gets on the declared nodes: `status` (the rollout phase's) once it is
    scheduled and its volumes attached, else Pending / creating, with the Events."""
    cluster: Cluster | None = getattr(emu, "nodes", None)
    if cluster is None or not cluster.nodes:
        return status
    meta, spec = pod["metadata"], pod.get("spec") or {}
    namespace = meta["namespace"]
    await _create_ephemeral_claims(emu, pod)
    missing = [c for c in claim_names(pod) if emu.live(PVCS, namespace, c) is None]
    node = spec.get("nodeName")
    if node is None:
        if missing:
            message = (
                f"0/{len(cluster.nodes)} nodes are available: persistentvolumeclaim "
                f'"{missing[0]}" not found.'
            )
        else:
            placed = [p for p in emu._items(PODS, None) if (p.get("spec") or {}).get("nodeName")]
            node, message = schedule(cluster, pod, placed)
        if node is None:
            await _event(emu, cluster, pod, "FailedScheduling", message, SCHEDULER)
            return pending_status(message)
        live = emu.live(PODS, namespace, meta["name"])
        await emu.update_object(
            PODS,
            live,
            {**live, "spec": {**live["spec"], "nodeName": node}},
            None,
            manager=SCHEDULER,
        )
    errors = await _attach(emu, cluster, pod, node)
    for message in errors:
        await _event(emu, cluster, pod, "FailedAttachVolume", message, ATTACH_DETACH)
    if errors:
        return creating_status(spec)
    conditions = [
        {"type": "PodScheduled", "status": "True"},
        *[c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"],
    ]
    return {**status, "conditions": conditions}


async def add_node(emu: Any, node: Node) -> None:
    """Declare a node (and store its Node object)."""
    if getattr(emu, "nodes", None) is None:
        emu.nodes = Cluster()
    emu.nodes.nodes[node.name] = node
    if emu.live(NODES, None, node.name) is None:
        await emu.create_object(NODES, None, node.manifest(), manager="kubelet")
