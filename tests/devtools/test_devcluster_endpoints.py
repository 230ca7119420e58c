"""The emulator's EndpointSlice controller: slices follow pod readiness and deletion after the
configured lag (devtools/reranker_devtools/devcluster/endpoints.py)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reranker_devtools.devcluster import PODS, DevCluster
from reranker_devtools.devcluster.endpoints import ENDPOINT_SLICES, SERVICE_NAME_LABEL

NS = "ml"
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {
        "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
    },
}


@pytest.fixture
def dev() -> Iterator[DevCluster]:
    with DevCluster() as cluster:
        yield cluster


def add_pod(
    cluster: DevCluster,
    name: str,
    ip: str | None,
    ready: bool,
    labels: dict[str, str] | None = None,
    port: int = 8080,
) -> None:
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {"app": "web"}},
            "spec": {
                "containers": [
                    {"name": "c", "image": "i", "ports": [{"name": "http", "containerPort": port}]}
                ]
            },
        },
        NS,
    )
    status: dict[str, Any] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
    cluster.patch(PODS, NS, name, {"status": status}, "status", manager="kubelet")


def endpoints(cluster: DevCluster) -> dict[str, dict[str, Any]]:
    """Pod name -> its endpoint, over the Service's slices."""
    out = {}
    for s in cluster.list(ENDPOINT_SLICES, NS, f"{SERVICE_NAME_LABEL}=web"):
        for e in s["endpoints"]:
            out[e["targetRef"]["name"]] = {**e, "port": s["ports"][0]["port"]}
    return out


def wait_until(check: Callable[[], bool], what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < 30, f"never: {what}"
        time.sleep(0.02)
    return time.monotonic() - started


def test_ready_pod_appears_after_the_lag(dev: DevCluster) -> None:
    dev.endpoint_slices(1.0)
    dev.create(SERVICE, NS)
    started = time.monotonic()
    add_pod(dev, "a", "10.0.0.1", ready=True)
    assert "a" not in endpoints(dev)  # not yet: the lag
    wait_until(lambda: "a" in endpoints(dev), "the pod is listed")
    assert time.monotonic() - started >= 1.0
    a = endpoints(dev)["a"]
    assert a["addresses"] == ["10.0.0.1"] and a["port"] == 8080  # targetPort "http" resolved
    assert a["conditions"] == {"ready": True, "serving": True, "terminating": False}


def test_deleted_pod_turns_terminating_then_leaves_after_the_lag(dev: DevCluster) -> None:
    dev.endpoint_slices(0.5)
    dev.create(SERVICE, NS)
    add_pod(dev, "a", "10.0.0.1", ready=True)
    add_pod(dev, "b", "10.0.0.2", ready=True)
    wait_until(lambda: len(endpoints(dev)) == 2, "both pods are listed")
    started = time.monotonic()
    pod = dev.begin_pod_deletion(NS, "a")
    assert pod["metadata"]["deletionTimestamp"] and dev.get(PODS, NS, "a") is not None
    assert endpoints(dev)["a"]["conditions"]["ready"] is True  # the lag
    wait_until(lambda: endpoints(dev)["a"]["conditions"]["terminating"], "a is terminating")
    assert time.monotonic() - started >= 0.5
    assert endpoints(dev)["a"]["conditions"] == {
        "ready": False,
        "serving": True,
        "terminating": True,
    }
    dev.delete(PODS, NS, "a")  # the kubelet is done
    assert dev.get(PODS, NS, "a") is None and "a" in endpoints(dev)
    wait_until(lambda: "a" not in endpoints(dev), "a leaves the slice")
    assert endpoints(dev)["b"]["conditions"]["ready"] is True


def test_what_a_slice_lists(dev: DevCluster) -> None:
    dev.endpoint_slices()  # no lag
    dev.create(SERVICE, NS)
    add_pod(dev, "ready", "10.0.0.1", ready=True)
    add_pod(dev, "starting", "10.0.0.2", ready=False)
    add_pod(dev, "no-ip", None, ready=False)
    add_pod(dev, "other-app", "10.0.0.3", ready=True, labels={"app": "other"})
    add_pod(dev, "other-port", "10.0.0.4", ready=True, port=9090)
    wait_until(lambda: len(endpoints(dev)) == 3, "three pods are listed")
    listed = endpoints(dev)
    assert sorted(listed) == ["other-port", "ready", "starting"]
    assert listed["starting"]["conditions"]["ready"] is False
    assert listed["other-port"]["port"] == 9090  # a slice of its own: other ports
    assert len(dev.list(ENDPOINT_SLICES, NS)) == 2
    # served over HTTP, as kube-proxy would list them
    url = f"{dev.url}/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert len(json.load(answer)["items"]) == 2
    dev.delete("v1/services", NS, "web")  # the slices belong to the Service
    wait_until(lambda: not dev.list(ENDPOINT_SLICES, NS), "the slices are gone")


def test_no_slices_unless_enabled(dev: DevCluster) -> None:
    dev.create(SERVICE, NS)
    add_pod(dev, "a", "10.0.0.1", ready=True)
    time.sleep(0.2)
    assert dev.list(ENDPOINT_SLICES, NS) == []
