"""The emulated API's semantics, driven over HTTP by the operator's own client (KubeClient)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reranker_devtools.devcluster import (
    DevCluster,
    merge_patch,
    selector_matches,
    server_side_apply,
    strategic_merge_patch,
)
from reranker_operator.kube import RERANKER_SERVICES, KubeApiError, KubeClient, ResourceRef

DEPLOYMENTS = ResourceRef("apps/v1", "deployments")
SERVICES = ResourceRef("v1", "services")
NAMESPACES = ResourceRef("v1", "namespaces", namespaced=False)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevCluster, KubeClient]]:
    with DevCluster(service_monitors=False, prometheus_rules=False) as cluster:
        path = cluster.write_kubeconfig(Path(tmp_path_factory.mktemp("kc")) / "kubeconfig")
        client = KubeClient.from_config(str(path))
        yield cluster, client
        client.close()


def call(coro: Any) -> Any:
    return asyncio.run(coro)


def deployment(name: str, **labels: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}}


def test_apply_creates_and_stamps_metadata(dev: tuple[DevCluster, KubeClient]) -> None:
    _cluster, client = dev
    obj = call(client.apply(deployment("stamp")))
    meta = obj["metadata"]
    assert meta["namespace"] == "default" and meta["generation"] == 1
    assert meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"].endswith("Z")
    again = call(client.apply(deployment("stamp")))
    assert again["metadata"]["resourceVersion"] == meta["resourceVersion"]  # no-op: no write


def test_generation_moves_on_spec_changes_only(dev: tuple[DevCluster, KubeClient]) -> None:
    _cluster, client = dev
    call(client.apply(deployment("gen")))
    relabelled = call(client.apply(deployment("gen", team="x")))
    assert relabelled["metadata"]["generation"] == 1
    changed = deployment("gen", team="x")
    changed["spec"]["replicas"] = 3
    assert call(client.apply(changed))["metadata"]["generation"] == 2


def test_apply_removes_fields_the_manager_stopped_setting(
        dev: tuple[DevCluster, KubeClient]) -> None:
    cluster, client = dev
    call(client.apply(deployment("ssa", a="1")))
    cluster.patch("apps/v1/deployments", "default", "ssa",
                  {"metadata": {"labels": {"other": "kept"}}})
    slim = deployment("ssa")
    del slim["spec"]["replicas"]
    live = call(client.apply(slim))
    assert "replicas" not in live["spec"]
    assert live["metadata"]["labels"] == {"other": "kept"}


def test_status_subresource_separates_spec_and_status(
        dev: tuple[DevCluster, KubeClient]) -> None:
    cluster, client = dev
    cluster.create({"apiVersion": "rerankers.io/v1alpha1", "kind": "RerankerService",
                    "metadata": {"name": "sub", "namespace": "default"},
                    "spec": {"model": {"name": "m"}}, "status": {"ignored": True}})
    cr = call(client.get(RERANKER_SERVICES, "default", "sub"))
    assert "status" not in cr  # status is not set through the main resource
    patched = call(client.patch_status(RERANKER_SERVICES, "default", "sub", {"replicas": 1}))
    assert patched["status"] == {"replicas": 1}
    assert patched["metadata"]["generation"] == 1
    cluster.patch("rerankers.io/v1alpha1/rerankerservices", "default", "sub",
                  {"spec": {"replicas": 4}, "status": {"replicas": 9}})
    cr = call(client.get(RERANKER_SERVICES, "default", "sub"))
    assert cr["spec"]["replicas"] == 4 and cr["status"] == {"replicas": 1}
    assert cr["metadata"]["generation"] == 2


def test_lists_honour_label_selectors(dev: tuple[DevCluster, KubeClient]) -> None:
    _cluster, client = dev
    call(client.apply(deployment("sel-a", tier="web", app="x")))
    call(client.apply(deployment("sel-b", tier="db", app="x")))
    names = lambda sel: sorted(o["metadata"]["name"] for o in call(
        client.list(DEPLOYMENTS, "default", sel)) if o["metadata"]["name"].startswith("sel-"))
    assert names("app=x") == ["sel-a", "sel-b"]
    assert names("app=x,tier=web") == ["sel-a"]
    assert names("tier in (db, cache)") == ["sel-b"]
    assert names("tier!=web,app") == ["sel-b"]
    assert names("!app") == []


def test_garbage_collection_by_owner_references(dev: tuple[DevCluster, KubeClient]) -> None:
    _cluster, client = dev
    owner = call(client.apply(deployment("owner")))
    child = {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "owned", "namespace": "default", "ownerReferences": [
                 {"apiVersion": "apps/v1", "kind": "Deployment", "name": "owner",
                  "uid": owner["metadata"]["uid"]}]}, "spec": {"ports": [{"port": 80}]}}
    call(client.apply(child))
    assert call(client.get(SERVICES, "default", "owned")) is not None
    assert call(client.delete(DEPLOYMENTS, "default", "owner")) is True
    assert call(client.get(SERVICES, "default", "owned")) is None
    assert call(client.delete(DEPLOYMENTS, "default", "owner")) is False
    # A dependent whose owners are all gone is collected as soon as it appears.
    call(client.apply(child))
    assert call(client.get(SERVICES, "default", "owned")) is None


def test_unserved_apis_answer_404_and_discovery_says_so(
        dev: tuple[DevCluster, KubeClient]) -> None:
    _cluster, client = dev
    assert call(client.served("apps/v1", "deployments")) is True
    for plural in ("servicemonitors", "prometheusrules"):
        assert call(client.served("monitoring.coreos.com/v1", plural)) is False
        with pytest.raises(KubeApiError) as err:
            call(client.list(ResourceRef("monitoring.coreos.com/v1", plural), "default"))
        assert err.value.status == 404


def test_prometheus_rules_can_be_left_out_alone(tmp_path: Path) -> None:
    with DevCluster(prometheus_rules=False) as cluster:
        client = KubeClient.from_config(str(cluster.write_kubeconfig(tmp_path / "kubeconfig")))
        try:
            assert call(client.served("monitoring.coreos.com/v1", "servicemonitors")) is True
            assert call(client.served("monitoring.coreos.com/v1", "prometheusrules")) is False
            assert call(client.served("v1", "configmaps")) is True
        finally:
            client.close()
    with DevCluster() as cluster:
        client = KubeClient.from_config(str(cluster.write_kubeconfig(tmp_path / "kc2")))
        try:
            assert call(client.served("monitoring.coreos.com/v1", "prometheusrules")) is True
        finally:
            client.close()


def test_namespaces_and_core_discovery(dev: tuple[DevCluster, KubeClient]) -> None:
    _cluster, client = dev
    assert "default" in {n["metadata"]["name"] for n in call(client.list(NAMESPACES, None))}
    core = call(client.request("GET", "/api/v1"))
    assert core["groupVersion"] == "v1"
    assert "services" in {r["name"] for r in core["resources"]}


def test_rollout_simulation_creates_pods_in_init(dev: tuple[DevCluster, KubeClient]) -> None:
    cluster, client = dev
    dep = deployment("roll")
    dep["spec"]["template"]["metadata"] = {"labels": {"pod-of": "roll"}}
    dep["spec"]["template"]["spec"]["initContainers"] = [{"name": "fetch", "image": "f"}]
    call(client.apply(dep))
    cluster.simulate_rollout("default", "roll", "init")
    pods = cluster.list("v1/pods", "default", "pod-of=roll")
    assert len(pods) == 2
    assert all(p["status"]["initContainerStatuses"][0]["state"].get("running") for p in pods)
    status = cluster.get("apps/v1/deployments", "default", "roll")["status"]
    assert (status["replicas"], status["readyReplicas"]) == (2, 0)
    cluster.simulate_rollout("default", "roll", "ready")
    status = cluster.get("apps/v1/deployments", "default", "roll")["status"]
    assert (status["readyReplicas"], status["availableReplicas"]) == (2, 2)
    with pytest.raises(ValueError, match="phase"):
        cluster.simulate_rollout("default", "roll", "sideways")


def test_patch_semantics() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1, 2]}, {"a": {"c": None}, "l": [3]}) == {
        "a": {"b": 1}, "l": [3]}
    live = {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}
    assert strategic_merge_patch(live, {"containers": [{"name": "b", "image": "2"}]}) == {
        "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}
    assert server_side_apply({"s": {"x": 1, "y": 2, "z": 3}}, {"s": {"x": 5}},
                             previous={"s": {"x": 1, "y": 2}}) == {"s": {"x": 5, "z": 3}}
    assert selector_matches({"a": "1"}, "a=1,b notin (2)") and not selector_matches({}, "a")


def test_failed_json_patch_test_is_a_422(dev: tuple[DevCluster, KubeClient]) -> None:
    _cluster, client = dev
    live = call(client.apply(deployment("jp")))
    stale = [{"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
             {"op": "remove", "path": "/spec/replicas"}]
    with pytest.raises(KubeApiError) as err:
        call(client.request("PATCH", DEPLOYMENTS.path("default", "jp"), body=stale,
                            content_type="application/json-patch+json"))
    assert err.value.status == 422
    fresh = [{"op": "test", "path": "/metadata/resourceVersion",
              "value": live["metadata"]["resourceVersion"]},
             {"op": "remove", "path": "/spec/replicas"}]
    patched = call(client.request("PATCH", DEPLOYMENTS.path("default", "jp"), body=fresh,
                                  content_type="application/json-patch+json"))
    assert "replicas" not in patched["spec"]
