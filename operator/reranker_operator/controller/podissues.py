"""Why replicas are not running, in the words of the cluster: the scheduler's message of
Pending pods, the attach/detach controller's Event of pods that cannot mount their volumes, and
whether an existing model-cache claim can be shared by the replicas at all.

Pure functions of the pods, Events and claim the reconciler read; their sentences go into the
status (the rollout conditions' message, the ModelCache condition).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reranker_operator.api.spec import MULTI_NODE_MODES, RerankerServiceSpec

VOLUME_EVENT_REASONS = ("FailedAttachVolume", "FailedMount")
NOT_STARTED = ("ContainerCreating", "PodInitializing")
CLAIM_NOT_FOUND, CLAIM_ONE_NODE = "ClaimNotFound", "ClaimAttachableOnOneNode"
MAX_PODS_NAMED = 3  # pods named one by one in a message; the rest are counted


def _condition(pod: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), None)


def _live(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]


def unschedulable(pod: Mapping[str, Any]) -> str | None:
    """The scheduler's message when the pod fits no node, else None."""
    cond = _condition(pod, "PodScheduled")
    if cond is not None and cond.get("status") == "False":
        return str(cond.get("message") or cond.get("reason") or "Unschedulable")
    return None


def not_started(pod: Mapping[str, Any]) -> bool:
    """Scheduled, yet no container (init or not) has started: the kubelet still sets the pod
    up (its volumes attached and mounted, its sandbox created)."""
    status = pod.get("status") or {}
    if unschedulable(pod) is not None or not (pod.get("spec") or {}).get("nodeName"):
        return False
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    return bool(statuses) and all(
        ((s.get("state") or {}).get("waiting") or {}).get("reason") in NOT_STARTED for s in statuses
    )


def volume_events(events: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Pod name -> the message of its latest volume Event (FailedAttachVolume, FailedMount)."""
    latest: dict[str, tuple[str, str]] = {}
    for event in events:
        involved = event.get("involvedObject") or {}
        if involved.get("kind") != "Pod" or event.get("reason") not in VOLUME_EVENT_REASONS:
            continue
        when = str(event.get("lastTimestamp") or event.get("eventTime") or "")
        name = str(involved.get("name"))
        if name not in latest or when >= latest[name][0]:
            latest[name] = (when, str(event.get("message") or event.get("reason")))
    return {name: message for name, (_when, message) in latest.items()}


def needs_events(pods: Iterable[Mapping[str, Any]]) -> bool:
    """Whether a pod waits for its volumes (only Events say why)."""
    return any(not_started(p) for p in _live(pods))


def pod_issues(
    pods: Sequence[Mapping[str, Any]], events: Iterable[Mapping[str, Any]] = ()
) -> list[str]:
    """Sentences on why pods are not running: "1 of 3 pods Pending: 0/3 nodes are available:
    3 Insufficient nvidia.com/gpu." and "pod X: Multi-Attach error for volume ...". Empty when
    nothing the cluster reported stands in the way."""
    live = _live(pods)
    pending = Counter(m for p in live if (m := unschedulable(p)) is not None)
    out = [
        f"{n} of {len(live)} pods Pending: {message}"
        for message, n in sorted(pending.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    why = volume_events(events)
    stuck = sorted(
        str(p["metadata"]["name"]) for p in live if not_started(p) and p["metadata"]["name"] in why
    )
    out += [f"pod {name}: {why[name]}" for name in stuck[:MAX_PODS_NAMED]]
    if len(stuck) > MAX_PODS_NAMED:
        out.append(f"{len(stuck) - MAX_PODS_NAMED} more pods wait for their volumes")
    return out


def claim_problem(
    spec: RerankerServiceSpec, claim: Mapping[str, Any] | None
) -> tuple[str, str] | None:
    """(reason, message) of why the existing claim of spec.modelCache cannot serve the replicas, or None: missing,
    or attachable on one node only (ReadWriteOnce, ReadWriteOncePod) while more than one
    replica may run. Its access modes are the bound volume's (status), else the requested."""
    cache = spec.model_cache
    name = cache.existing_claim
    if name is None or not cache.is_shared():
        return None
    if claim is None:
        return CLAIM_NOT_FOUND, (
            f"spec.modelCache.existingClaim: PersistentVolumeClaim "
            f"{name!r} not found; pods stay Pending until it exists"
        )
    modes = list(
        (claim.get("status") or {}).get("accessModes")
        or (claim.get("spec") or {}).get("accessModes")
        or []
    )
    if set(modes) & set(MULTI_NODE_MODES) or spec.max_pods() <= 1:
        return None
    bound = "spec.autoscaling.maxReplicas" if spec.autoscaling.enabled else "spec.replicas"
    return CLAIM_ONE_NODE, (
        f"spec.modelCache.existingClaim: PersistentVolumeClaim {name!r} has accessModes "
        f"[{', '.join(modes)}], attachable on one node at a time, but {bound} allows "
        f"{spec.max_pods()} replicas: those on other nodes never start (Multi-Attach error). "
        "Use a ReadWriteMany claim, or modelCache.mode PerPod"
    )
