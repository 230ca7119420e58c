"""The kopf peering object of `--peering NAME`, created by the operator itself at start-up.

kopf only reads and patches its peering object; on a fresh cluster a `kubectl apply -k deploy/`
cannot create it in the same apply as its CRD (the kind is not established yet). So each replica
creates it when missing (an AlreadyExists answer from a racing replica is fine).
"""

from __future__ import annotations

from collections.abc import Iterable
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


async def ensure_peering(
    client: KubeClient, name: str, *, clusterwide: bool, namespaces: Iterable[str] = ()
) -> list[str]:
    """Create the peering object(s) unless they exist; returns what was created ("kind/name")."""
    targets: list[str | None] = [None] if clusterwide else list(namespaces)
    created = []
    for namespace in targets:
        ref = CLUSTER_PEERINGS if namespace is None else NAMESPACED_PEERINGS
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
