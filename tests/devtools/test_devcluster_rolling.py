"""The emulator's rolling-update mode on its own: ReplicaSets per template, pods at loopback
addresses running real (tiny) HTTP servers, readiness from really probing them."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from operator_helpers import condition, wait_for
from reranker_devtools.devcluster import DEPLOYMENTS, PODS, DevCluster
from reranker_devtools.devcluster.kubelet import PodLaunch, Stop
from reranker_devtools.devcluster.rolling import HASH_LABEL, REPLICASETS, REVISION

NAME = "web"
CRD = Path(__file__).resolve().parents[2] / "crds" / "rerankerservices.yaml"  # not needed here
DEADLINE_S = 1.5


def tiny_server(launch: PodLaunch) -> Stop:
    """A server at the pod's address that answers every GET with the code in env ANSWER."""
    code = int(launch.env["ANSWER"])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(code)
            self.end_headers()
            self.wfile.write(launch.name.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((launch.ip, launch.port("http")), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop


def deployment(answer: int, image: str = "web:1", replicas: int = 2) -> dict[str, Any]:
    labels = {"app": NAME}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "env": [{"name": "ANSWER", "value": str(answer)}],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/ready", "port": "http"},
                                "periodSeconds": 10,
                                "failureThreshold": 1,
                            },
                        }
                    ]
                },
            },
        },
    }


def answer(ip: str) -> int | None:
    """The code the server at a pod's address answers, None when nothing listens."""
    try:
        with urllib.request.urlopen(f"http://{ip}:8080/ready", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def set_answer(cluster: DevCluster, code: int, image: str) -> None:
    container = deployment(code, image)["spec"]["template"]["spec"]["containers"][0]
    cluster.patch(
        DEPLOYMENTS,
        "default",
        NAME,
        {"spec": {"template": {"spec": {"containers": [container]}}}},
        strategic=True,
    )


def pods(cluster: DevCluster) -> list[dict[str, Any]]:
    return cluster.list(PODS, "default")


def ready_pods(cluster: DevCluster) -> list[dict[str, Any]]:
    return [p for p in pods(cluster) if condition(p, "Ready")["status"] == "True"]


def progressing(cluster: DevCluster) -> dict[str, Any] | None:
    return condition(cluster.get(DEPLOYMENTS, "default", NAME), "Progressing")


@pytest.fixture
def cluster() -> Iterator[DevCluster]:
    with DevCluster(crd_path=CRD) as dev:
        dev.rolling_updates(tiny_server, probe_period_s=0.1, progress_deadline_s=DEADLINE_S)
        yield dev


def rolled_out(cluster: DevCluster) -> bool:
    dep = cluster.get(DEPLOYMENTS, "default", NAME)
    status = dep.get("status") or {}
    return (
        (progressing(cluster) or {}).get("reason") == "NewReplicaSetAvailable"
        and status.get("observedGeneration") == dep["metadata"]["generation"]
        and status.get("availableReplicas") == 2
        and status.get("replicas") == 2
    )


class Sampler:
    """Reads the Deployment's availableReplicas every 20 ms in a thread (the lowest seen)."""

    def __init__(self, cluster: DevCluster) -> None:
        self.cluster, self.lowest, self._stop = cluster, 99, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            status = self.cluster.get(DEPLOYMENTS, "default", NAME).get("status") or {}
            self.lowest = min(self.lowest, int(status.get("availableReplicas", 0)))
            time.sleep(0.02)

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()


def test_first_revision_pods_get_addresses_and_turn_ready_by_probe(cluster: DevCluster) -> None:
    cluster.create(deployment(200))
    wait_for(lambda: rolled_out(cluster), "the first revision rolled out", timeout=20)
    (rs,) = cluster.list(REPLICASETS, "default")
    assert rs["metadata"]["annotations"][REVISION] == "1"
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    ips = sorted(p["status"]["podIP"] for p in pods(cluster))
    assert len(set(ips)) == 2 and all(ip.startswith("127.77.") for ip in ips)
    assert all(
        p["metadata"]["labels"][HASH_LABEL] == rs["metadata"]["labels"][HASH_LABEL]
        for p in pods(cluster)
    )
    assert [answer(ip) for ip in ips] == [200, 200]  # real servers at the pods' addresses


def test_never_ready_template_holds_the_rollout_and_a_good_one_replaces_pods(
    cluster: DevCluster,
) -> None:
    cluster.create(deployment(200))
    wait_for(lambda: rolled_out(cluster), "the first revision rolled out", timeout=20)
    first = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods(cluster)}

    with Sampler(cluster) as sampler:
        set_answer(cluster, 503, "web:2")
        held = wait_for(
            lambda: (c := progressing(cluster)) and c["reason"] == "ProgressDeadlineExceeded" and c,
            "the progress deadline",
            timeout=20,
        )
        assert held["status"] == "False"
        status = cluster.get(DEPLOYMENTS, "default", NAME)["status"]
        assert (status["updatedReplicas"], status["availableReplicas"], status["replicas"]) == (
            1,
            2,
            3,
        )
        # the old ReplicaSet's pods still run and serve; the surge pod runs but is not ready
        assert {p["metadata"]["name"] for p in ready_pods(cluster)} == set(first)
        assert [answer(ip) for ip in first.values()] == [200, 200]
        (stuck,) = [p for p in pods(cluster) if p["metadata"]["name"] not in first]
        assert answer(stuck["status"]["podIP"]) == 503

        set_answer(cluster, 200, "web:3")  # a third template, that turns ready
        wait_for(lambda: rolled_out(cluster), "the good revision rolled out", timeout=30)
    assert sampler.lowest == 2, "maxUnavailable 0: never fewer than 2 available"
    now = {p["metadata"]["name"] for p in pods(cluster)}
    assert not now & (set(first) | {stuck["metadata"]["name"]})
    assert [answer(ip) for ip in first.values()] == [None, None]  # old processes stopped
    assert answer(stuck["status"]["podIP"]) is None
    sets = {
        rs["metadata"]["annotations"][REVISION]: rs["spec"]["replicas"]
        for rs in cluster.list(REPLICASETS, "default")
    }
    assert sets == {"1": 0, "2": 0, "3": 2}
