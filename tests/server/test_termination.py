"""Zero failed requests while a pod goes away: real server processes behind emulated
EndpointSlices (with a big cluster's propagation lag), one pod terminated exactly as the
rendered Deployment says (deletion, preStop sleep, SIGTERM, drain, exit, SIGKILL at the grace
deadline). Without the preStop the same sequence fails requests, so the test can fail.

Times are scaled down together (lag 2 s, preStop 3 s, drain 1 s); nothing asserts a speed.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reranker_contract import PORT_NAME, Env
from reranker_contract.score_check import ScoreCheckEnv
from reranker_devtools.devcluster import PODS, DevCluster
from reranker_devtools.devcluster.endpoints import ENDPOINT_SLICES, SERVICE_NAME_LABEL
from reranker_devtools.tiny_models import UNTRAINED_BUILTINS
from reranker_operator.render.manifests import render_children

LAG_S = 2.0  # EndpointSlice controller + kube-proxy propagation, scaled down
NAMESPACE = "ml"
ADDRESSES = [f"127.0.0.{i}" for i in range(11, 14)]  # one loopback address per pod
EXITED = (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down


def rendered(pre_stop_seconds: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Deployment and Service the operator renders, with the times scaled down."""
    cr = {
        "apiVersion": "rerankers.io/v1alpha1",
        "kind": "RerankerService",
        "metadata": {"name": "demo", "namespace": NAMESPACE},
        "spec": {
            "model": {"name": "tiny", "dtype": "float32"},
            "replicas": 4,
            "server": {"requestTimeoutSeconds": 5},
            "termination": {"preStopSeconds": pre_stop_seconds, "drainSeconds": 1},
        },
    }
    children = {c["kind"]: c for c in render_children(cr)}
    return children["Deployment"], children["Service"]


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def pre_stop_seconds(deployment: dict[str, Any]) -> int:
    """The preStop sleep the kubelet runs (0 without a hook)."""
    hook = (pod_spec(deployment)["containers"][0].get("lifecycle") or {}).get("preStop") or {}
    return int((hook.get("sleep") or {}).get("seconds", 0))


def container_env(deployment: dict[str, Any]) -> dict[str, str]:
    return {
        e["name"]: e["value"] for e in pod_spec(deployment)["containers"][0]["env"] if "value" in e
    }


def common_free_port() -> int:
    """A port free on every pod address."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((ADDRESSES[0], 0))
            port = s.getsockname()[1]
        try:
            for address in ADDRESSES[1:]:
                with socket.socket() as s:
                    s.bind((address, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on every pod address")


@dataclass
class Server:
    address: str
    proc: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def servers(tiny_cross_encoder_path: Path, tmp_path_factory) -> Iterator[tuple[int, list[Server]]]:
    """One real reranker-server process per pod address, started with the rendered drain and
    request timeout (the same in both renders)."""
    env_good, env_bad = (container_env(rendered(s)[0]) for s in (3, 0))
    keys = (Env.DRAIN_SECONDS, Env.REQUEST_TIMEOUT_SECONDS)
    assert {k: env_good[k] for k in keys} == {k: env_bad[k] for k in keys}
    port = common_free_port()
    logs = tmp_path_factory.mktemp("termination-logs")
    started = []
    for address in ADDRESSES:
        env = {
            "PATH": os.environ["PATH"],
            "HF_HUB_OFFLINE": "1",
            **{k: env_good[k] for k in keys},
            Env.MODEL_NAME: str(tiny_cross_encoder_path),
            Env.DTYPE: "float32",
            Env.DEVICE: "cpu",
            Env.HOST: address,
            Env.PORT: str(port),
            Env.LOG_LEVEL: "warning",
            Env.WARMUP: "false",
            Env.TORCH_THREADS: "1",
            Env.MODEL_WORKERS: "1",
            ScoreCheckEnv.SCORE_CHECK_BUILTINS: UNTRAINED_BUILTINS,  # random weights
        }
        log = (logs / f"{address}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "reranker_server.cli"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(Server(address, proc))
    try:
        deadline = time.monotonic() + 180
        for server in started:
            while not _ready(server, port):
                assert server.proc.poll() is None, (logs / f"{server.address}.log").read_text()
                assert time.monotonic() < deadline, "the servers did not get ready"
                time.sleep(0.2)
        yield port, started
    finally:
        for server in started:
            if server.proc.poll() is None:
                server.proc.kill()
            server.proc.wait(30)


def _ready(server: Server, port: int) -> bool:
    try:
        conn = http.client.HTTPConnection(server.address, port, timeout=2)
        conn.request("GET", "/ready")
        return conn.getresponse().status == 200
    except OSError:
        return False


@dataclass
class Router:
    """kube-proxy's stand-in: each request opens a connection to one endpoint the Service's
    EndpointSlices list as ready at that moment (serving terminating ones only when none is
    ready, as kube-proxy does), round robin."""

    cluster: DevCluster
    service: str
    turn: itertools.count = field(default_factory=itertools.count)

    def endpoints(self) -> list[tuple[str, int]]:
        slices = self.cluster.list(
            ENDPOINT_SLICES, NAMESPACE, f"{SERVICE_NAME_LABEL}={self.service}"
        )
        ready, serving = [], []
        for s in slices:
            port = next(p["port"] for p in s["ports"] if p["name"] == PORT_NAME)
            for e in s["endpoints"]:
                conditions = e["conditions"]
                if conditions["ready"]:
                    ready.append((e["addresses"][0], port))
                elif conditions.get("serving"):
                    serving.append((e["addresses"][0], port))
        return sorted(ready or serving)

    def post(self, body: dict[str, Any]) -> tuple[str, str | None]:
        """(the address routed to, None or what failed)."""
        endpoints = self.endpoints()
        if not endpoints:
            return "", "no endpoint"
        address, port = endpoints[next(self.turn) % len(endpoints)]
        try:
            conn = http.client.HTTPConnection(address, port, timeout=30)
            conn.request(
                "POST",
                "/v2/rerank",
                body=json.dumps(body),
                headers={"Content-Type": "application/json"},
            )
            answer = conn.getresponse()
            text = answer.read()
            conn.close()
        except OSError as exc:  # refused, reset, closed without an answer
            return address, f"{type(exc).__name__}: {exc}"
        if answer.status != 200:
            return address, f"HTTP {answer.status}: {text[:200]!r}"
        return address, None


@dataclass
class Load:
    """A bounded load through the router from a few client threads."""

    router: Router
    limit: int = 3000  # a bound only: the pacing below keeps it to a few hundred
    # (when it was routed, the address routed to, None or what failed)
    results: list[tuple[float, str, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, threads: int = 4) -> list[threading.Thread]:
        body = {
            "query": "what is a pod",
            "documents": ["a pod is a group of containers", "a node runs pods"],
        }

        def worker() -> None:
            while not self.stop.is_set() and len(self.results) < self.limit:
                routed_at = time.monotonic()
                address, error = self.router.post(body)
                self.results.append((routed_at, address, error))
                time.sleep(0.04)

        workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
        for w in workers:
            w.start()
        return workers


@dataclass
class Termination:
    """What happened to the terminated pod."""

    exit_code: int | None
    killed: bool  # SIGKILL at the grace deadline
    deleted_at: float
    sigterm_at: float
    exited_at: float


def terminate(
    cluster: DevCluster, deployment: dict[str, Any], pod: str, server: Server
) -> Termination:
    """The kubelet's sequence for a deleted pod, with the rendered hook and grace period."""
    grace = int(pod_spec(deployment)["terminationGracePeriodSeconds"])
    deleted_at = time.monotonic()
    cluster.begin_pod_deletion(NAMESPACE, pod)  # the endpoint update starts its lag now
    time.sleep(pre_stop_seconds(deployment))  # the preStop hook
    sigterm_at = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    killed = False
    try:
        server.proc.wait(timeout=max(0.0, deleted_at + grace - time.monotonic()))
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(30)
        killed = True
    exited_at = time.monotonic()
    cluster.delete(PODS, NAMESPACE, pod)  # the kubelet removes the pod
    return Termination(server.proc.returncode, killed, deleted_at, sigterm_at, exited_at)


def scale_down_under_load(
    servers: tuple[int, list[Server]], pre_stop: int
) -> tuple[Load, Termination, Server, dict[str, Any]]:
    """Register every live server as a pod of the rendered Deployment behind the rendered
    Service, run the load, terminate the first pod, let the load run on, and stop."""
    port, procs = servers
    live = [s for s in procs if s.proc.poll() is None]
    assert len(live) >= 2, "needs a terminating pod and one that stays"
    deployment, service = rendered(pre_stop)
    with DevCluster() as cluster:
        cluster.endpoint_slices(LAG_S)
        cluster.create(service, NAMESPACE)
        template = deployment["spec"]["template"]
        for i, server in enumerate(live):
            spec = json.loads(json.dumps(template["spec"]))
            for p in spec["containers"][0]["ports"]:
                if p["name"] == PORT_NAME:
                    p["containerPort"] = port
            cluster.create(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"demo-{i}", "labels": template["metadata"]["labels"]},
                    "spec": spec,
                },
                NAMESPACE,
            )
            cluster.patch(
                PODS,
                NAMESPACE,
                f"demo-{i}",
                {
                    "status": {
                        "phase": "Running",
                        "podIP": server.address,
                        "conditions": [{"type": "Ready", "status": "True"}],
                    }
                },
                "status",
                manager="kubelet",
            )
        router = Router(cluster, service["metadata"]["name"])
        deadline = time.monotonic() + 30
        while len(router.endpoints()) < len(live):
            assert time.monotonic() < deadline, "the pods never reached the EndpointSlice"
            time.sleep(0.1)
        load = Load(router)
        workers = load.run()
        time.sleep(1.0)  # every pod serves before the deletion
        ended = terminate(cluster, deployment, "demo-0", live[0])
        time.sleep(LAG_S + 0.5)  # the removal of the deleted pod propagates; load goes on
        load.stop.set()
        for w in workers:
            w.join(60)
    assert max(t for t, _, _ in load.results) > ended.exited_at  # load over the whole sequence
    failed = sum(1 for r in load.results if r[2] is not None)
    print(
        f"preStop {pre_stop} s: {len(load.results)} requests, {failed} failed; "
        f"pod exit {ended.exit_code}, SIGKILL {ended.killed}"
    )
    return load, ended, live[0], deployment


def test_scale_down_fails_no_request(servers) -> None:
    load, ended, gone, deployment = scale_down_under_load(servers, pre_stop=3)
    failures = [r for r in load.results if r[2] is not None]
    assert not failures, f"{len(failures)} of {len(load.results)} failed: {failures[:5]}"
    assert pre_stop_seconds(deployment) == 3
    assert pre_stop_seconds(deployment) > LAG_S  # the hook outlasts the endpoint propagation
    assert not ended.killed and ended.exit_code in EXITED, ended
    # it drained (kept its listener for DRAIN_SECONDS) rather than dying at SIGTERM
    assert ended.exited_at - ended.sigterm_at >= int(container_env(deployment)[Env.DRAIN_SECONDS])
    served_by_gone = [t for t, address, _ in load.results if address == gone.address]
    assert served_by_gone and min(served_by_gone) < ended.deleted_at
    # the pod served (in its preStop) after its deletion, until the endpoint removal arrived
    assert max(served_by_gone) > ended.deleted_at
    after = [a for t, a, _ in load.results if t > ended.sigterm_at]
    assert after and gone.address not in after  # the others served on


def test_without_pre_stop_requests_fail(servers) -> None:
    """The same sequence with preStopSeconds 0: SIGTERM at once, the listener closes after the
    1 s drain while the endpoint is still listed (2 s lag): requests routed there fail."""
    load, ended, gone, deployment = scale_down_under_load(servers, pre_stop=0)
    assert "lifecycle" not in pod_spec(deployment)["containers"][0]
    assert not ended.killed and ended.exit_code in EXITED, ended
    failures = [r for r in load.results if r[2] is not None]
    assert failures, "no request failed without the preStop hook"
    assert {address for _, address, _ in failures} == {gone.address}
    assert all(t > ended.sigterm_at for t, _, _ in failures)
