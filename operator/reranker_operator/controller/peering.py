"""The kopf peering object of `--peering NAME`, created by the operator itself at start-up.

kopf only reads and patches its peering object; on a fresh cluster a `kubectl apply -k deploy/`
cannot create it in the same apply as its CRD (the kind is not established yet). So each replica
creates it when missing (an AlreadyExists answer from a racing replica is fine).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from reranker_operator.controller.kube import KubeApiError, KubeClient, ResourceRef

PEERING_API_VERSION = "kopf.dev/v1"
CLUSTER_PEERINGS = ResourceRef(PEERING_API_VERSION, "clusterkopfpeerings", namespaced=False)
NAMESPACED_PEERINGS = ResourceRef(PEERING_API_VERSION, "kopfpeerings")
PEERING_LABELS = {
    "app.kubernetes.io/name": "reranker-operator",
    "app.kubernetes.io/part-of": "reranker-operator",
}


def peering_manifest(name: str, namespace: str | None = None) -> dict[str, Any]:
    """A ClusterKopfPeering (namespace None) or a KopfPeering in `namespace`."""
    if not name:
        raise ValueError("peering: the peering name must not be empty")
    meta: dict[str, Any] = {"name": name, "labels": dict(PEERING_LABELS)}
    if namespace is not None:
        meta["namespace"] = namespace
    kind = "ClusterKopfPeering" if namespace is None else "KopfPeering"
    return {"apiVersion": PEERING_API_VERSION, "kind": kind, "metadata": meta}


def peering_objects(
    clusterwide: bool, namespaces: Iterable[str] = ()
) -> list[tuple[ResourceRef, str | None]]:
    """Where the peering object(s) live: the ClusterKopfPeering (namespace None), or a
    KopfPeering in each watched namespace."""
    if clusterwide:
        return [(CLUSTER_PEERINGS, None)]
    return [(NAMESPACED_PEERINGS, namespace) for namespace in namespaces]


async def ensure_peering(
    client: KubeClient, name: str, *, clusterwide: bool, namespaces: Iterable[str] = ()
) -> list[str]:
    """Create the peering object(s) unless they exist; returns what was created ("kind/name")."""
    created = []
    for ref, namespace in peering_objects(clusterwide, namespaces):
        body = peering_manifest(name, namespace)
        try:
            await client.request(
                "POST", ref.path(namespace), body=body, content_type="application/json"
            )
        except KubeApiError as exc:
            if exc.status == 409:  # another replica (or the admin) was first
                continue
            raise
        created.append(f"{body['kind']}/{name}" + (f" in {namespace}" if namespace else ""))
    return created


def _alive(peer: Mapping[str, Any], now: datetime.datetime) -> bool:
    """A peer entry whose keep-alive (lastseen + lifetime) has not expired."""
    try:
        seen = datetime.datetime.fromisoformat(str(peer["lastseen"]))
        lifetime = datetime.timedelta(seconds=int(peer.get("lifetime", 60)))
    except (KeyError, TypeError, ValueError):
        return False
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=datetime.UTC)
    return seen + lifetime > now


def leads(
    status: Mapping[str, Any], priority: int, now: datetime.datetime | None = None
) -> bool | None:
    """Whether the peer running with `priority` works rather than stands by, by kopf's rule
    (kopf._core.engines.peering.process_peering_event): it pauses while another live peer has
    a higher priority or the same one. From a peering object's `status` (peer id -> priority,
    lifetime, lastseen): the live entries with a priority >= `priority` must be exactly one
    (its own). None while no live entry has its priority (it has not announced itself yet)."""
    now = now or datetime.datetime.now(datetime.UTC)
    live = [p for p in status.values() if isinstance(p, Mapping) and _alive(p, now)]
    ranks = [int(p.get("priority", 0)) for p in live]
    if priority not in ranks:
        return None
    return sum(1 for rank in ranks if rank >= priority) == 1


async def leadership(
    client: KubeClient,
    name: str,
    priority: int,
    *,
    clusterwide: bool,
    namespaces: Iterable[str] = (),
) -> bool | None:
    """`leads` over the peering object(s) of `name`: every one must say so (None if any is
    undecided or missing)."""
    verdicts = []
    for ref, namespace in peering_objects(clusterwide, namespaces):
        try:
            body = await client.request("GET", ref.path(namespace, name))
        except KubeApiError:
            return None
        verdicts.append(leads((body or {}).get("status") or {}, priority))
    if not verdicts or None in verdicts:
        return None
    return all(verdicts)
