"""A stand-in EndpointSlice controller (discovery.k8s.io/v1), with the propagation lag of a big
cluster, and graceful pod deletion (the pod stays, terminating, until its kubelet is done).

On a real cluster a pod's readiness reaches the clients that route to it (kube-proxy on every
node, ingress controllers) through the EndpointSlice controller and their watches: seconds
after the change, more on a big or busy cluster. `EndpointSlices(lag_s)` keeps one slice per
Service (and resolved port set) listing the pods its selector matches, as they were `lag_s`
seconds ago: a pod that turns ready is listed ready after the lag; a pod being deleted
(deletionTimestamp set) is listed terminating and not ready after the lag, and leaves the slice
the lag after it is removed. Enabled with `DevCluster.endpoint_slices(lag_s)`; the store calls
`observe` on every write of a pod or a Service (StoreMixin.store and remove).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from reranker_devtools.devcluster.common import PODS, Ref, pod_ready
from reranker_devtools.devcluster.selectors import selector_matches
from reranker_operator.controller.status import now_rfc3339

SERVICES = Ref("", "v1", "services")
ENDPOINT_SLICES = Ref("discovery.k8s.io", "v1", "endpointslices")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"  # the label value and the field manager


def _container_port(pod: Mapping[str, Any], target: int | str) -> int | None:
    """A Service targetPort resolved against the pod's containers (a name or a number)."""
    if isinstance(target, int):
        return target
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


def _endpoint(pod: Mapping[str, Any]) -> dict[str, Any]:
    meta = pod["metadata"]
    terminating = bool(meta.get("deletionTimestamp"))
    endpoint: dict[str, Any] = {
        "addresses": [pod["status"]["podIP"]],
        "conditions": {
            "ready": pod_ready(pod) and not terminating,
            "serving": pod_ready(pod),
            "terminating": terminating,
        },
        "targetRef": {
            "kind": "Pod",
            "namespace": meta.get("namespace"),
            "name": meta["name"],
            "uid": meta.get("uid"),
        },
    }
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        endpoint["nodeName"] = node
    return endpoint


def desired_slices(
    service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The EndpointSlices of one Service: its selector's pods that have an IP, grouped by the
    ports their containers resolve the Service's targetPorts to (one slice per group)."""
    meta, spec = service["metadata"], service.get("spec") or {}
    selector = spec.get("selector") or {}
    if not selector:
        return []  # a Service without a selector: its slices are the user's
    groups: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        labels = pod["metadata"].get("labels") or {}
        if not selector_matches(labels, ",".join(f"{k}={v}" for k, v in selector.items())):
            continue
        if not (pod.get("status") or {}).get("podIP"):
            continue
        ports = []
        for port in spec.get("ports") or []:
            number = _container_port(pod, port.get("targetPort", port.get("port")))
            if number is not None:
                ports.append(
                    {
                        "name": port.get("name", ""),
                        "port": number,
                        "protocol": port.get("protocol", "TCP"),
                    }
                )
        key = json.dumps(ports, sort_keys=True)
        groups.setdefault(key, (ports, []))[1].append(_endpoint(pod))
    slices = []
    for key, (ports, endpoints) in sorted(groups.items()):
        suffix = hashlib.sha256(key.encode()).hexdigest()[:5]
        slices.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{meta['name']}-{suffix}",
                    "namespace": meta.get("namespace"),
                    "labels": {SERVICE_NAME_LABEL: meta["name"], MANAGED_BY_LABEL: CONTROLLER},
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "Service",
                            "name": meta["name"],
                            "uid": meta.get("uid"),
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": ports,
            }
        )
    return slices


class EndpointSlices:
    """The controller: each pod or Service write takes a snapshot of its namespace's slices,
    written `lag_s` later, in order (so the slices always show the pods of `lag_s` ago)."""

    def __init__(self, lag_s: float) -> None:
        if lag_s < 0:
            raise ValueError(f"lag_s must be >= 0, not {lag_s}")
        self.lag_s = lag_s
        self._queue: asyncio.Queue[tuple[float, str, list[dict[str, Any]]]] | None = None
        self._worker: asyncio.Task[None] | None = None

    def observe(self, emu: Any, res: Any, obj: Mapping[str, Any]) -> None:
        """Called by the store after every write or removal (under the emulator's lock)."""
        if (res.group, res.plural) not in (("", "pods"), ("", "services")):
            return
        namespace = obj["metadata"].get("namespace")
        pods = emu._items(PODS, namespace, copies=False)
        slices = [
            s
            for svc in emu._items(SERVICES, namespace, copies=False)
            for s in desired_slices(svc, pods)
        ]
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._apply_in_order(emu))
        self._queue.put_nowait((time.monotonic() + self.lag_s, namespace, copy.deepcopy(slices)))

    async def _apply_in_order(self, emu: Any) -> None:
        assert self._queue is not None
        while True:
            due, namespace, slices = await self._queue.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            async with emu._lock:
                await write_slices(emu, namespace, slices)

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()


async def write_slices(emu: Any, namespace: str, slices: list[dict[str, Any]]) -> None:
    """Make the controller's slices of a namespace exactly `slices` (others are left alone)."""
    wanted = {s["metadata"]["name"]: s for s in slices}
    for live in emu._items(ENDPOINT_SLICES, namespace, f"{MANAGED_BY_LABEL}={CONTROLLER}"):
        name = live["metadata"]["name"]
        if name not in wanted:
            await emu.remove(ENDPOINT_SLICES, live)
        elif {k: live.get(k) for k in ("endpoints", "ports")} != {
            k: wanted[name][k] for k in ("endpoints", "ports")
        }:
            new = dict(live, endpoints=wanted[name]["endpoints"], ports=wanted[name]["ports"])
            await emu.update_object(ENDPOINT_SLICES, live, new, None, manager=CONTROLLER)
        wanted.pop(name, None)
    for body in wanted.values():
        owner = body["metadata"]["ownerReferences"][0]["uid"]
        if owner in emu._uids:  # the Service is still there
            await emu.create_object(ENDPOINT_SLICES, namespace, body, manager=CONTROLLER)


async def begin_pod_deletion(
    emu: Any, namespace: str, name: str, grace_s: int | None = None
) -> dict[str, Any]:
    """What the API server does on a graceful DELETE of a pod: deletionTimestamp and
    deletionGracePeriodSeconds (default: the pod's terminationGracePeriodSeconds, else 30) are
    set and the pod stays until its kubelet removes it (`DevCluster.delete`)."""
    live = emu.live(PODS, namespace, name)
    if live is None:
        raise KeyError(f"pod {namespace}/{name} not found")
    if live["metadata"].get("deletionTimestamp"):
        return live
    grace = (
        grace_s
        if grace_s is not None
        else int((live.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
    )
    new = copy.deepcopy(live)
    new["metadata"].update(
        deletionTimestamp=now_rfc3339(),
        deletionGracePeriodSeconds=grace,
        resourceVersion=str(next(emu.rv)),
    )
    return await emu.store(PODS, new, "MODIFIED")
