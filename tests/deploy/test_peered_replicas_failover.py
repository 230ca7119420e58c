"""Two operator replicas started exactly as deploy/'s Deployment starts them (the console script,
its args, POD_ID) against the emulated API: one works, the other stands by, both stay live,
and the standby takes over when the worker stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import REPO, kustomize_build, wait_for

from reranker_devtools.devcluster import DEPLOYMENTS, RERANKERS, DevCluster
from reranker_devtools.ports import free_port

PEERINGS = "kopf.dev/v1/clusterkopfpeerings"


def _live(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as rsp:
            return rsp.status == 200
    except OSError:
        return False


def _leads(replica: Replica) -> bool | None:
    """`leader` of the replica's /readyz (None when it does not answer)."""
    try:
        url = f"http://127.0.0.1:{replica.metrics_port}/readyz"
        with urllib.request.urlopen(url, timeout=5) as rsp:
            return json.loads(rsp.read())["leader"]
    except urllib.error.HTTPError as err:  # 503 before it watches: still a JSON answer
        return json.loads(err.read())["leader"]
    except OSError:
        return None


@pytest.fixture(scope="module")
def install() -> list[dict[str, Any]]:
    return kustomize_build()


@pytest.fixture
def cluster(install: list[dict[str, Any]]) -> Iterator[DevCluster]:
    """The emulator serving kopf's peering kind; no peering object (the replicas create it)."""
    import kmock

    with DevCluster() as dev:
        dev.emulator.resources[PEERINGS] = kmock.ResourceInfo(
            kind="ClusterKopfPeering",
            namespaced=False,
            singular="clusterkopfpeering",
            verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
        )
        assert not [o for o in install if o["kind"] == "ClusterKopfPeering"]
        yield dev


class Replica:
    """One operator process run like a pod of the Deployment (liveness and metrics on ports of
    its own)."""

    def __init__(self, argv: list[str], name: str, kubeconfig: Path, logs: Path) -> None:
        self.name = name
        self.port, self.metrics_port = free_port(), free_port()
        argv = [
            a.replace("0.0.0.0:8080", f"127.0.0.1:{self.port}").replace(
                "0.0.0.0:8081", f"127.0.0.1:{self.metrics_port}"
            )
            for a in argv
        ]
        script = Path(sys.executable).with_name(argv[0])
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_ID": name}
        self.log = logs / f"{name}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [str(script), *argv[1:]], env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


@pytest.mark.slow
def test_one_replica_works_and_the_other_takes_over(
    cluster: DevCluster, install: list[dict[str, Any]], tmp_path: Path
) -> None:
    [deployment] = [o for o in install if o["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    argv = container["command"] + container.get("args", [])
    assert {
        "name": "POD_ID",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    } in container["env"]
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    replicas = [Replica(argv, name, kubeconfig, tmp_path) for name in ("replica-a", "replica-b")]
    cr = yaml.safe_load((REPO / "examples" / "bge-reranker-cpu.yaml").read_text())
    ns, name = cr["metadata"].get("namespace", "default"), cr["metadata"]["name"]
    try:

        def live_peers() -> dict[str, Any]:
            peering = cluster.get(PEERINGS, None, "reranker-operator") or {}
            return {k: v for k, v in (peering.get("status") or {}).items() if v}

        peers = wait_for(
            lambda: live_peers() if live_peers().keys() >= {"replica-a", "replica-b"} else None,
            "both replicas' keep-alives in the ClusterKopfPeering",
        )
        priorities = {r: peers[r]["priority"] for r in ("replica-a", "replica-b")}
        assert priorities["replica-a"] != priorities["replica-b"], (
            f"both replicas run with priority {priorities['replica-a']}: kopf pauses both"
        )
        cluster.create(cr, ns)
        wait_for(lambda: cluster.get(DEPLOYMENTS, ns, name), "the child Deployment", timeout=30)
        for replica in replicas:  # the standby must pass its liveness probe too
            assert wait_for(lambda r=replica: _live(r.port), f"{replica.name}'s /healthz")

        leader, standby = sorted(replicas, key=lambda r: priorities[r.name], reverse=True)
        # each replica says which it is (/readyz, reranker_operator_leader), as kopf decides it
        assert wait_for(lambda: _leads(leader) is True, f"{leader.name} to say it leads")
        assert wait_for(lambda: _leads(standby) is False, f"{standby.name} to say it stands by")
        handled = "reconcile' succeeded"
        wait_for(lambda: handled in leader.log.read_text(), f"{leader.name} to handle the service")
        assert handled not in standby.log.read_text(), (
            "the standby handled it too (double processing)"
        )
        leader.stop()
        cluster.patch(RERANKERS, ns, name, {"spec": {"replicas": 3}})
        wait_for(
            lambda: (cluster.get(DEPLOYMENTS, ns, name) or {}).get("spec", {}).get("replicas") == 3,
            f"{standby.name} to take over and scale the Deployment",
            timeout=60,
        )
        assert handled in standby.log.read_text()
        assert wait_for(lambda: _leads(standby) is True, f"{standby.name} to say it leads now")
    finally:
        for replica in replicas:
            replica.stop()
