"""The operator's own peering object: created when missing, left alone when present."""

from __future__ import annotations

import asyncio
from pathlib import Path

import kmock
import pytest

from reranker_devtools.devcluster import DevCluster
from reranker_operator.controller.kube import KubeApiError, KubeClient
from reranker_operator.controller.peering import ensure_peering, peering_manifest

VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}


def test_ensure_peering_creates_once_cluster_wide_and_per_namespace(tmp_path: Path) -> None:
    with DevCluster() as dev:
        for plural, kind, namespaced in (
            ("clusterkopfpeerings", "ClusterKopfPeering", False),
            ("kopfpeerings", "KopfPeering", True),
        ):
            dev.emulator.resources[f"kopf.dev/v1/{plural}"] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, singular=kind.lower(), verbs=VERBS
            )
        asyncio.run(_scenario(dev, str(dev.write_kubeconfig(tmp_path / "kubeconfig"))))


async def _scenario(dev: DevCluster, kubeconfig: str) -> None:
    async with KubeClient.connect(kubeconfig) as client:
        first = await ensure_peering(client, "op", clusterwide=True)
        again = await ensure_peering(client, "op", clusterwide=True)
        assert first == ["ClusterKopfPeering/op"] and again == []
        assert dev.get("kopf.dev/v1/clusterkopfpeerings", None, "op")["metadata"]["labels"]
        spaced = await ensure_peering(client, "op", clusterwide=False, namespaces=["a", "b"])
        assert spaced == ["KopfPeering/op in a", "KopfPeering/op in b"]
        assert dev.get("kopf.dev/v1/kopfpeerings", "b", "op") is not None
        creates = [c for c in dev.calls if c.verb == "create"]
        assert [(c.resource, c.namespace) for c in creates] == [
            ("clusterkopfpeerings", None),
            ("clusterkopfpeerings", None),
            ("kopfpeerings", "a"),
            ("kopfpeerings", "b"),
        ]
        del dev.emulator.resources["kopf.dev/v1/clusterkopfpeerings"]
        with pytest.raises(KubeApiError) as err:  # CRD not served (yet): not swallowed
            await ensure_peering(client, "other", clusterwide=True)
        assert err.value.status == 404


def test_peering_manifest_needs_a_name() -> None:
    assert peering_manifest("p")["kind"] == "ClusterKopfPeering"
    assert peering_manifest("p", "ns")["metadata"]["namespace"] == "ns"
    with pytest.raises(ValueError, match="peering"):
        peering_manifest("")
