"""The operator's readiness probe means "watching": one replica started exactly as deploy/'s
Deployment starts it, against the emulated API, answers its readinessProbe only once kopf's
startup has finished and it lists/watches RerankerServices; before that (here: the peering kind
is not served yet, so the start-up handler that creates the peering object keeps retrying) the
probe fails though the process runs."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from deploy_helpers import REPO, kustomize_build, wait_for
from test_peered_replicas_failover import PEERINGS, Replica

from reranker_devtools.devcluster import DEPLOYMENTS, DevCluster

PEERING_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}


def _ready(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as rsp:
            return rsp.status == 200
    except OSError:
        return False


def _watching(cluster: DevCluster) -> set[str]:
    """The verbs the operator has used on RerankerServices (list, watch)."""
    return {
        c.verb
        for c in cluster.calls
        if c.resource == "rerankerservices" and c.verb in ("list", "watch")
    }


@pytest.mark.slow
def test_ready_only_once_watching(tmp_path: Path) -> None:
    install: list[dict[str, Any]] = kustomize_build()
    [deployment] = [o for o in install if o["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    probe = container["readinessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert f"0.0.0.0:{ports.get(probe['port'], probe['port'])}" in " ".join(container["args"])
    cr = yaml.safe_load((REPO / "examples" / "bge-reranker-cpu.yaml").read_text())
    ns, name = cr["metadata"]["namespace"], cr["metadata"]["name"]
    with DevCluster() as cluster:  # without kopf's peering kind: start-up cannot finish
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        argv = container["command"] + container["args"]
        replica = Replica(argv, "replica-a", kubeconfig, tmp_path)
        try:
            wait_for(
                lambda: "cannot create the peering object" in replica.log.read_text(),
                "the start-up handler's failure (no peering kind)",
                timeout=60,
            )
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:  # a few probe periods while it retries
                assert replica.process.poll() is None, replica.log.read_text()
                assert not _ready(replica.metrics_port, probe["path"]), (
                    "ready before start-up finished"
                )
                assert not _watching(cluster), "watching before start-up finished"
                time.sleep(0.2)

            cluster.emulator.resources[PEERINGS] = kmock.ResourceInfo(
                kind="ClusterKopfPeering",
                namespaced=False,
                singular="clusterkopfpeering",
                verbs=PEERING_VERBS,
            )
            wait_for(lambda: _ready(replica.metrics_port, probe["path"]), "the readiness probe", 60)
            wait_for(
                lambda: _watching(cluster) >= {"list", "watch"},
                "the RerankerService list and watch",
                timeout=10,
            )
            cluster.create(cr, ns)
            wait_for(lambda: cluster.get(DEPLOYMENTS, ns, name), "the child Deployment", 30)
        finally:
            replica.stop()
