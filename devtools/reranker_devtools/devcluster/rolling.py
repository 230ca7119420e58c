"""A real rolling update (opt-in, `DevCluster.rolling_updates`): stand-ins for the Deployment
and ReplicaSet controllers on top of the stand-in kubelet (devcluster.kubelet).

Every tick, for every Deployment:
- the Deployment controller keeps one ReplicaSet per pod template, `<deployment>-<hash>`, with
  the `pod-template-hash` label, the `deployment.kubernetes.io/revision` annotation (the
  newest template gets the highest revision) and an ownerReference to the Deployment; it
  scales them as `strategy.rollingUpdate` allows (maxSurge / maxUnavailable, numbers or
  percentages; 25%/25% when absent): the new ReplicaSet up while the pods stay within
  replicas + maxSurge, the old ones down only while at least replicas - maxUnavailable pods
  stay available (unhealthy old pods first), as kube-controller-manager does;
- the ReplicaSet controller creates or deletes pods to match each ReplicaSet (not-ready pods
  are deleted first); the kubelet starts a new pod's process and probes it, and stops the
  process of a deleted pod;
- the Deployment's status is computed from the pods: replicas, updatedReplicas, readyReplicas,
  availableReplicas, unavailableReplicas, and the conditions Available
  (MinimumReplicasAvailable / MinimumReplicasUnavailable) and Progressing (NewReplicaSetCreated,
  ReplicaSetUpdated, NewReplicaSetAvailable, or False/ProgressDeadlineExceeded when no progress
  was made for progressDeadlineSeconds, 600 by default).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reranker_devtools.devcluster.common import DEPLOYMENTS, PODS, Ref, pod_ready
from reranker_devtools.devcluster.kubelet import Kubelet
from reranker_operator.controller.status import now_rfc3339

log = logging.getLogger(__name__)
REPLICASETS = Ref("apps", "v1", "replicasets")
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DEPLOYMENT_CONTROLLER = "deployment-controller"
REPLICASET_CONTROLLER = "replicaset-controller"
DEFAULT_DEADLINE_S = 600.0


def template_hash(template: Mapping[str, Any]) -> str:
    """A stable hash of a pod template (the pod-template-hash label's value)."""
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def resolve(value: int | str | None, replicas: int, default: str, round_up: bool) -> int:
    """maxSurge (rounded up) or maxUnavailable (rounded down) as a pod count."""
    value = default if value is None else value
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * replicas / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def _owned(obj: Mapping[str, Any], uid: str) -> bool:
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


def _owner(obj: Mapping[str, Any], kind: str, api_version: str) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _revision(rs: Mapping[str, Any]) -> int:
    return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))


def _replicas(obj: Mapping[str, Any]) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1))


@dataclass
class _Progress:
    signature: tuple[Any, ...] = ()
    since: float = 0.0  # monotonic time of the last progress
    at: str = ""  # the same, as a timestamp (the condition's lastUpdateTime)


@dataclass
class RollingUpdates:
    """The stand-in controllers; `run` ticks until cancelled, `close` stops every pod."""

    kubelet: Kubelet
    tick_s: float = 0.05
    progress_deadline_s: float | None = None  # overrides progressDeadlineSeconds
    progress: dict[str, _Progress] = field(default_factory=dict)  # deployment uid -> progress
    task: asyncio.Task[None] | None = None
    errors: list[str] = field(default_factory=list)  # what a tick failed on (tests show them)

    def start(self, emu: Any) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(emu))

    async def run(self, emu: Any) -> None:
        while True:
            async with emu._lock:
                for deployment in emu._items(DEPLOYMENTS, None):
                    try:
                        await self.sync(emu, deployment)
                    except Exception as exc:  # noqa: BLE001  # kept, and the next tick retries
                        log.exception("rolling update of %s failed", deployment["metadata"]["name"])
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                await self._stop_orphans(emu)
            await asyncio.sleep(self.tick_s)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.kubelet.close()

    async def _stop_orphans(self, emu: Any) -> None:
        """Stop the processes of pods removed by anyone (garbage collection, a user)."""
        live = {p["metadata"]["uid"] for p in emu._items(PODS, None, copies=False)}
        for uid in [u for u in self.kubelet.runs if u not in live]:
            asyncio.get_running_loop().create_task(self.kubelet.stop(uid))

    # --- the Deployment controller

    async def sync(self, emu: Any, deployment: dict[str, Any]) -> None:
        meta, spec = deployment["metadata"], deployment.get("spec") or {}
        namespace, uid = meta["namespace"], meta["uid"]
        template = spec.get("template") or {}
        wanted_hash = template_hash(template)
        sets = [rs for rs in emu._items(REPLICASETS, namespace) if _owned(rs, uid)]
        new = next((rs for rs in sets if rs["metadata"]["labels"][HASH_LABEL] == wanted_hash), None)
        top = max((_revision(rs) for rs in sets), default=0)
        created = False
        if new is None:
            new = await self._create_set(emu, deployment, wanted_hash, top + 1)
            created = True
        elif _revision(new) < top:  # back to an older template: it becomes the newest
            new = await self._annotate(emu, new, top + 1)
        olds = sorted(
            (rs for rs in sets if rs["metadata"]["uid"] != new["metadata"]["uid"]), key=_revision
        )
        pods = {
            rs["metadata"]["uid"]: [
                p for p in emu._items(PODS, namespace) if _owned(p, rs["metadata"]["uid"])
            ]
            for rs in [new, *olds]
        }
        desired = _replicas(deployment)
        strategy = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        surge = resolve(strategy.get("maxSurge"), desired, "25%", round_up=True)
        unavailable = resolve(strategy.get("maxUnavailable"), desired, "25%", round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1  # the API server refuses both 0; kube's own fallback
        counts = {rs["metadata"]["uid"]: _replicas(rs) for rs in [new, *olds]}
        ready = {k: sum(pod_ready(p) for p in v) for k, v in pods.items()}
        new_uid = new["metadata"]["uid"]
        # scale up the new ReplicaSet within replicas + maxSurge
        total = sum(counts.values())
        if counts[new_uid] > desired:
            counts[new_uid] = desired
        elif counts[new_uid] < desired:
            room = desired + surge - total
            counts[new_uid] = min(desired, counts[new_uid] + max(0, room))
        # scale old ones down while replicas - maxUnavailable stay available
        min_available = desired - unavailable
        total = sum(counts.values())
        new_unavailable = counts[new_uid] - ready[new_uid]
        budget = total - min_available - new_unavailable
        for rs in olds:  # unhealthy old pods first
            k = rs["metadata"]["uid"]
            unhealthy = counts[k] - ready[k]
            cut = max(0, min(budget, unhealthy))
            counts[k] -= cut
            budget -= cut
        available = sum(min(ready[k], counts[k]) for k in counts)
        budget = available - min_available
        for rs in olds:
            k = rs["metadata"]["uid"]
            cut = max(0, min(budget, counts[k]))
            counts[k] -= cut
            budget -= cut
        for rs in [new, *olds]:
            k = rs["metadata"]["uid"]
            if counts[k] != _replicas(rs):
                live = emu.live(REPLICASETS, namespace, rs["metadata"]["name"])
                live = await emu.update_object(
                    REPLICASETS,
                    live,
                    dict(live, spec=dict(live["spec"], replicas=counts[k])),
                    None,
                    manager=DEPLOYMENT_CONTROLLER,
                )
            await self._sync_set(emu, rs, counts[k])
        await self._write_status(emu, deployment, new, olds, created)

    async def _create_set(
        self, emu: Any, deployment: Mapping[str, Any], hash_: str, revision: int
    ) -> dict[str, Any]:
        meta = deployment["metadata"]
        template = copy.deepcopy((deployment.get("spec") or {}).get("template") or {})
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: hash_}
        selector = copy.deepcopy((deployment.get("spec") or {}).get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = hash_
        rs = await emu.create_object(
            REPLICASETS,
            meta["namespace"],
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{meta['name']}-{hash_}",
                    "labels": dict(tmeta["labels"]),
                    "annotations": {REVISION: str(revision)},
                    "ownerReferences": [_owner(deployment, "Deployment", "apps/v1")],
                },
                "spec": {"replicas": 0, "selector": selector, "template": template},
            },
            manager=DEPLOYMENT_CONTROLLER,
        )
        live = emu.live(DEPLOYMENTS, meta["namespace"], meta["name"])
        if live is not None:
            annotations = {**(live["metadata"].get("annotations") or {}), REVISION: str(revision)}
            await emu.update_object(
                DEPLOYMENTS,
                live,
                dict(live, metadata=dict(live["metadata"], annotations=annotations)),
                None,
                manager=DEPLOYMENT_CONTROLLER,
            )
        return rs

    async def _annotate(self, emu: Any, rs: Mapping[str, Any], revision: int) -> dict[str, Any]:
        live = emu.live(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
        annotations = {**(live["metadata"].get("annotations") or {}), REVISION: str(revision)}
        return await emu.update_object(
            REPLICASETS,
            live,
            dict(live, metadata=dict(live["metadata"], annotations=annotations)),
            None,
            manager=DEPLOYMENT_CONTROLLER,
        )

    # --- the ReplicaSet controller

    async def _sync_set(self, emu: Any, rs: Mapping[str, Any], replicas: int) -> None:
        meta = rs["metadata"]
        namespace = meta["namespace"]
        pods = [p for p in emu._items(PODS, namespace) if _owned(p, meta["uid"])]
        if len(pods) > replicas:  # not-ready first, then the newest
            doomed = sorted(
                pods,
                key=lambda p: (pod_ready(p), p["metadata"].get("creationTimestamp", "")),
            )
            doomed = sorted(doomed[: len(pods) - replicas], key=lambda p: p["metadata"]["name"])
            for pod in doomed:
                await emu.remove(PODS, pod)
                asyncio.get_running_loop().create_task(self.kubelet.stop(pod["metadata"]["uid"]))
        template = (rs.get("spec") or {}).get("template") or {}
        for _ in range(replicas - len(pods)):
            pod = await emu.create_object(
                PODS,
                namespace,
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"{meta['name']}-{uuid.uuid4().hex[:5]}",
                        "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                        "annotations": dict(
                            (template.get("metadata") or {}).get("annotations") or {}
                        ),
                        "ownerReferences": [_owner(rs, "ReplicaSet", "apps/v1")],
                    },
                    "spec": copy.deepcopy(template.get("spec") or {}),
                },
                manager=REPLICASET_CONTROLLER,
            )
            status = await self.kubelet.start(emu, pod)
            live = emu.live(PODS, namespace, pod["metadata"]["name"])
            if live is not None:
                await emu.update_object(
                    PODS, live, dict(live, status=status), "status", manager="kubelet"
                )
        pods = [p for p in emu._items(PODS, namespace) if _owned(p, meta["uid"])]
        ready = sum(pod_ready(p) for p in pods)
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": meta.get("generation", 1),
        }
        await _write_status(
            emu, REPLICASETS, namespace, meta["name"], status, REPLICASET_CONTROLLER
        )

    # --- the Deployment's status

    async def _write_status(
        self,
        emu: Any,
        deployment: Mapping[str, Any],
        new: Mapping[str, Any],
        olds: list[Mapping[str, Any]],
        created: bool,
    ) -> None:
        meta, spec = deployment["metadata"], deployment.get("spec") or {}
        namespace = meta["namespace"]
        pods_of = {
            rs["metadata"]["uid"]: [
                p for p in emu._items(PODS, namespace) if _owned(p, rs["metadata"]["uid"])
            ]
            for rs in [new, *olds]
        }
        every = [p for group in pods_of.values() for p in group]
        updated = pods_of[new["metadata"]["uid"]]
        ready = sum(pod_ready(p) for p in every)
        desired = _replicas(deployment)
        strategy = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        unavailable = resolve(strategy.get("maxUnavailable"), desired, "25%", round_up=False)
        rs_name = new["metadata"]["name"]
        complete = len(updated) == desired and len(every) == desired and ready >= desired
        signature = (rs_name, len(updated), sum(pod_ready(p) for p in updated), len(every))
        progress = self.progress.setdefault(meta["uid"], _Progress())
        if progress.signature != signature:
            progress.signature, progress.since, progress.at = (
                signature,
                time.monotonic(),
                now_rfc3339(),
            )
        deadline = self.progress_deadline_s or float(
            spec.get("progressDeadlineSeconds", DEFAULT_DEADLINE_S)
        )
        if complete:
            prog = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif time.monotonic() - progress.since > deadline:
            prog = (
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        elif created:
            prog = ("True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
        else:
            prog = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        avail = (
            ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
            if ready >= desired - unavailable
            else (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        )
        before = {c["type"]: c for c in (deployment.get("status") or {}).get("conditions") or []}
        conditions = [
            _condition(before.get("Available"), "Available", avail, progress.at),
            _condition(before.get("Progressing"), "Progressing", prog, progress.at),
        ]
        status: dict[str, Any] = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": len(every),
            "updatedReplicas": len(updated),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": conditions,
        }
        if len(every) - ready > 0:
            status["unavailableReplicas"] = len(every) - ready
        await _write_status(
            emu, DEPLOYMENTS, namespace, meta["name"], status, DEPLOYMENT_CONTROLLER
        )


async def _write_status(
    emu: Any, ref: Ref, namespace: str, name: str, status: dict[str, Any], manager: str
) -> None:
    """Write `status` to the live object as its controller would (skipped when unchanged)."""
    live = emu.live(ref, namespace, name)
    if live is not None and live.get("status") != status:
        await emu.update_object(ref, live, dict(live, status=status), "status", manager=manager)


def _condition(
    before: Mapping[str, Any] | None, type_: str, value: tuple[str, str, str], updated: str
) -> dict[str, Any]:
    """A Deployment condition; lastTransitionTime kept while the status does not flip."""
    status, reason, message = value
    same = before is not None and before.get("status") == status
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": updated,
        "lastTransitionTime": before.get("lastTransitionTime")
        if same and before
        else now_rfc3339(),
    }
