"""The emulated API's semantics, driven over HTTP by the operator's own client (KubeClient)."""

from __future__ import annotations

import asyncio
import time
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
from reranker_devtools.devcluster.schema import Schemas
from reranker_operator.controller.kube import (
    RERANKER_SERVICES,
    KubeApiError,
    KubeClient,
    ResourceRef,
    load_credentials,
)

DEPLOYMENTS = ResourceRef("apps/v1", "deployments")
SERVICES = ResourceRef("v1", "services")
NAMESPACES = ResourceRef("v1", "namespaces", namespaced=False)
LOOP = asyncio.new_event_loop()  # the client's session lives in one loop for the module


def call(coro: Any) -> Any:
    return LOOP.run_until_complete(coro)


async def _open(kubeconfig: Path) -> KubeClient:
    return KubeClient.open(load_credentials(str(kubeconfig)))


async def get(
    client: KubeClient, ref: ResourceRef, namespace: str | None, name: str
) -> dict | None:
    """The object, or None on 404."""
    try:
        return await client.request("GET", ref.path(namespace, name))
    except KubeApiError as exc:
        if exc.status == 404:
            return None
        raise


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevCluster, KubeClient]]:
    with DevCluster(unserved=("ServiceMonitor", "PrometheusRule")) as cluster:
        path = cluster.write_kubeconfig(Path(tmp_path_factory.mktemp("kc")) / "kubeconfig")
        client = call(_open(path))
        yield cluster, client
        call(client.close())


def deployment(name: str, **labels: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]
                }
            },
        },
    }


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
    dev: tuple[DevCluster, KubeClient],
) -> None:
    cluster, client = dev
    call(client.apply(deployment("ssa", a="1")))
    cluster.patch(
        "apps/v1/deployments", "default", "ssa", {"metadata": {"labels": {"other": "kept"}}}
    )
    slim = deployment("ssa")
    del slim["spec"]["replicas"]
    live = call(client.apply(slim))
    assert "replicas" not in live["spec"]
    assert live["metadata"]["labels"] == {"other": "kept"}


def test_status_subresource_separates_spec_and_status(dev: tuple[DevCluster, KubeClient]) -> None:
    cluster, client = dev
    cluster.create(
        {
            "apiVersion": "rerankers.io/v1alpha1",
            "kind": "RerankerService",
            "metadata": {"name": "sub", "namespace": "default"},
            "spec": {"model": {"name": "m"}},
            "status": {"ignored": True},
        }
    )
    cr = call(get(client, RERANKER_SERVICES, "default", "sub"))
    assert "status" not in cr  # status is not set through the main resource
    patched = call(client.patch_status(RERANKER_SERVICES, "default", "sub", {"replicas": 1}))
    assert patched["status"] == {"replicas": 1}
    assert patched["metadata"]["generation"] == 1
    cluster.patch(
        "rerankers.io/v1alpha1/rerankerservices",
        "default",
        "sub",
        {"spec": {"replicas": 4}, "status": {"replicas": 9}},
    )
    cr = call(get(client, RERANKER_SERVICES, "default", "sub"))
    assert cr["spec"]["replicas"] == 4 and cr["status"] == {"replicas": 1}
    assert cr["metadata"]["generation"] == 2


def test_lists_honour_label_selectors(dev: tuple[DevCluster, KubeClient]) -> None:
    _cluster, client = dev
    call(client.apply(deployment("sel-a", tier="web", app="x")))
    call(client.apply(deployment("sel-b", tier="db", app="x")))
    names = lambda sel: sorted(
        o["metadata"]["name"]
        for o in call(client.list(DEPLOYMENTS, "default", sel))
        if o["metadata"]["name"].startswith("sel-")
    )
    assert names("app=x") == ["sel-a", "sel-b"]
    assert names("app=x,tier=web") == ["sel-a"]
    assert names("tier in (db, cache)") == ["sel-b"]
    assert names("tier!=web,app") == ["sel-b"]
    assert names("!app") == []


def test_garbage_collection_by_owner_references(dev: tuple[DevCluster, KubeClient]) -> None:
    _cluster, client = dev
    owner = call(client.apply(deployment("owner")))
    child = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "owned",
            "namespace": "default",
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
        "spec": {"ports": [{"port": 80}]},
    }
    call(client.apply(child))
    assert call(get(client, SERVICES, "default", "owned")) is not None
    assert call(client.delete(DEPLOYMENTS, "default", "owner")) is True
    assert call(get(client, SERVICES, "default", "owned")) is None
    assert call(client.delete(DEPLOYMENTS, "default", "owner")) is False
    # A dependent whose owners are all gone is collected as soon as it appears.
    call(client.apply(child))
    assert call(get(client, SERVICES, "default", "owned")) is None


def test_unserved_apis_answer_404_and_discovery_says_so(dev: tuple[DevCluster, KubeClient]) -> None:
    _cluster, client = dev
    assert call(client.served("apps/v1", "deployments")) is True
    for plural in ("servicemonitors", "prometheusrules"):
        assert call(client.served("monitoring.coreos.com/v1", plural)) is False
        with pytest.raises(KubeApiError) as err:
            call(client.list(ResourceRef("monitoring.coreos.com/v1", plural), "default"))
        assert err.value.status == 404


async def _served(kubeconfig: Path, api_version: str, plural: str) -> bool:
    async with KubeClient.connect(str(kubeconfig)) as client:
        return await client.served(api_version, plural)


def test_prometheus_rules_can_be_left_out_alone(tmp_path: Path) -> None:
    with DevCluster(unserved=("PrometheusRule",)) as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        assert call(_served(kubeconfig, "monitoring.coreos.com/v1", "servicemonitors")) is True
        assert call(_served(kubeconfig, "monitoring.coreos.com/v1", "prometheusrules")) is False
        assert call(_served(kubeconfig, "v1", "configmaps")) is True
    with DevCluster() as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kc2")
        assert call(_served(kubeconfig, "monitoring.coreos.com/v1", "prometheusrules")) is True
    with pytest.raises(ValueError, match="optional kinds"):
        DevCluster(unserved=("Deployment",))


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
        "a": {"b": 1},
        "l": [3],
    }
    live = {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}
    assert strategic_merge_patch(live, {"containers": [{"name": "b", "image": "2"}]}) == {
        "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]
    }
    schema = Schemas().of("v1", "NoSchema")
    owned = server_side_apply(None, {"s": {"x": 1, "y": 2}}, "m", schema)
    owned["s"]["z"] = 3  # another manager's field (not tracked here)
    applied = server_side_apply(owned, {"s": {"x": 5}}, "m", schema)
    del applied["metadata"]  # its managedFields
    assert applied == {"s": {"x": 5, "z": 3}}
    assert selector_matches({"a": "1"}, "a=1,b notin (2)") and not selector_matches({}, "a")


def test_failed_json_patch_test_is_a_422(dev: tuple[DevCluster, KubeClient]) -> None:
    _cluster, client = dev
    live = call(client.apply(deployment("jp")))
    stale = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
        {"op": "remove", "path": "/spec/replicas"},
    ]
    with pytest.raises(KubeApiError) as err:
        call(
            client.request(
                "PATCH",
                DEPLOYMENTS.path("default", "jp"),
                body=stale,
                content_type="application/json-patch+json",
            )
        )
    assert err.value.status == 422
    fresh = [
        {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": live["metadata"]["resourceVersion"],
        },
        {"op": "remove", "path": "/spec/replicas"},
    ]
    patched = call(
        client.request(
            "PATCH",
            DEPLOYMENTS.path("default", "jp"),
            body=fresh,
            content_type="application/json-patch+json",
        )
    )
    assert "replicas" not in patched["spec"]


def _managed(obj: dict, manager: str, operation: str = "Apply") -> dict | None:
    for entry in obj["metadata"].get("managedFields") or []:
        if (entry["manager"], entry["operation"]) == (manager, operation):
            return entry
    return None


def test_apply_records_managed_fields_as_the_api_server_does(
    dev: tuple[DevCluster, KubeClient],
) -> None:
    _cluster, client = dev
    manifest = deployment("mf", app="x")
    manifest["spec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"containerPort": 8080, "protocol": "TCP"}
    ]
    manifest["spec"]["template"]["spec"]["containers"][0]["args"] = ["--a"]
    live = call(client.apply(manifest))
    entry = _managed(live, "reranker-operator")
    assert entry is not None and entry["fieldsType"] == "FieldsV1" and entry["time"]
    assert entry["apiVersion"] == "apps/v1" and "subresource" not in entry
    # name, namespace, apiVersion and kind are never tracked; list items by their keys, with
    # "." for an item that has fields too; atomic lists (args) as one leaf.
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:template": {
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"a"}': {
                            ".": {},
                            "f:args": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {
                                'k:{"containerPort":8080,"protocol":"TCP"}': {
                                    ".": {},
                                    "f:containerPort": {},
                                    "f:protocol": {},
                                }
                            },
                        },
                        'k:{"name":"b"}': {".": {}, "f:image": {}, "f:name": {}},
                    }
                }
            },
        },
    }


def test_apply_merges_keyed_lists_and_keeps_what_others_own(
    dev: tuple[DevCluster, KubeClient],
) -> None:
    cluster, client = dev
    call(client.apply(deployment("merge")))
    cluster.patch(
        "apps/v1/deployments",
        "default",
        "merge",
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "sidecar", "image": "s:1"},
                            {"name": "a", "env": [{"name": "X", "value": "1"}]},
                        ]
                    }
                }
            }
        },
        manager="webhook",
        strategic=True,
    )
    live = cluster.get("apps/v1/deployments", "default", "merge")
    assert _managed(live, "webhook", "Update")["fieldsV1"]["f:spec"]["f:template"]["f:spec"][
        "f:containers"
    ]['k:{"name":"sidecar"}'] == {".": {}, "f:image": {}, "f:name": {}}
    changed = deployment("merge")
    changed["spec"]["template"]["spec"]["containers"] = [{"name": "a", "image": "a:2"}]
    after = call(client.apply(changed))["spec"]["template"]["spec"]["containers"]
    # b (ours, no longer applied) is removed; a is updated in place keeping the webhook's env;
    # the sidecar (the webhook's) stays.
    assert [(c["name"], c["image"]) for c in after] == [("a", "a:2"), ("sidecar", "s:1")]
    assert after[0]["env"] == [{"name": "X", "value": "1"}]


def test_an_update_takes_over_the_fields_it_changes(dev: tuple[DevCluster, KubeClient]) -> None:
    cluster, client = dev
    call(client.apply(deployment("own", team="a")))
    cluster.patch(
        "apps/v1/deployments", "default", "own", {"spec": {"replicas": 5}}, manager="kubectl-scale"
    )
    live = cluster.get("apps/v1/deployments", "default", "own")
    assert "f:replicas" not in _managed(live, "reranker-operator")["fieldsV1"]["f:spec"]
    assert _managed(live, "kubectl-scale", "Update")["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    # Applying without replicas no longer removes it: another manager owns it now.
    slim = deployment("own", team="a")
    del slim["spec"]["replicas"]
    assert call(client.apply(slim))["spec"]["replicas"] == 5
    # A rewrite by the server itself (manager None) moves no field.
    before = cluster.get("apps/v1/deployments", "default", "own")["metadata"]["managedFields"]
    cluster.patch(
        "apps/v1/deployments",
        "default",
        "own",
        {"metadata": {"labels": {"team": "a"}}},
        manager=None,
    )
    after = cluster.get("apps/v1/deployments", "default", "own")["metadata"]["managedFields"]
    assert after == before


def test_merge_schema_comes_from_the_kubernetes_openapi() -> None:
    schemas = Schemas()
    pod = schemas.of("apps/v1", "Deployment").child("spec").child("template").child("spec")
    assert (pod.child("containers").list_type.kind, pod.child("containers").list_type.keys) == (
        "map",
        ("name",),
    )
    ports = schemas.of("v1", "Service").child("spec").child("ports").list_type
    assert (ports.kind, ports.keys) == ("map", ("port", "protocol"))
    assert pod.child("tolerations").list_type.kind == "atomic"
    assert pod.child("nodeSelector").atomic_map
    assert schemas.of("v1", "Pod").child("metadata").child("finalizers").list_type.kind == "set"
    assert (
        schemas.of("monitoring.coreos.com/v1", "ServiceMonitor")
        .child("spec")
        .child("endpoints")
        .list_type.kind
        == "atomic"
    )  # no schema: lists are atomic


def test_an_outage_refuses_every_request_and_ends_open_watches(
    dev: tuple[DevCluster, KubeClient],
) -> None:
    cluster, client = dev
    call(client.apply(deployment("outage")))

    async def scenario() -> None:
        url = client.server + DEPLOYMENTS.path("default") + "?watch=true"
        async with client.session.get(url) as watch:
            first = await asyncio.wait_for(watch.content.readline(), 5)
            assert b'"ADDED"' in first  # the stream is open and delivering
            with cluster.outage():
                rest = await asyncio.wait_for(watch.content.read(), 5)  # ends: EOF
                assert b"MODIFIED" not in rest
                with pytest.raises(KubeApiError) as err:
                    await client.list(DEPLOYMENTS, "default")
                assert err.value.status == 503
        assert [
            o
            for o in await client.list(DEPLOYMENTS, "default")
            if o["metadata"]["name"] == "outage"
        ]

    call(scenario())


def _until(probe: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not probe() and time.monotonic() < deadline:
        time.sleep(0.02)
    return probe()


def test_auto_rollout_acts_as_the_deployment_controller(dev: tuple[DevCluster, KubeClient]) -> None:
    cluster, client = dev

    def rolled(generation: int, ready: int) -> bool:
        live = cluster.get("apps/v1/deployments", "default", "auto") or {}
        status = live.get("status") or {}
        return (status.get("observedGeneration"), status.get("readyReplicas")) == (
            generation,
            ready,
        )

    cluster.auto_rollout("ready")
    try:
        call(client.apply(deployment("auto")))
        assert _until(lambda: rolled(1, 2))
        changed = deployment("auto")
        changed["spec"]["replicas"] = 3
        call(client.apply(changed))
        assert _until(lambda: rolled(2, 3))
    finally:
        cluster.auto_rollout(None)
    call(client.apply(deployment("auto")))  # back to 2 replicas: nobody rolls it out now
    time.sleep(0.2)
    assert rolled(2, 3)
    with pytest.raises(ValueError, match="phase"):
        cluster.auto_rollout("sideways")
