"""The real operator (kopf + our handlers) against the emulated API: create, rollout status,
updates, pruning, drift, invalid specs, steady state and ServiceMonitor / PrometheusRule
discovery."""

from __future__ import annotations

import copy
import json

import pytest

from operator_helpers import (
    OPERATOR_AGENTS,
    children,
    condition,
    example,
    operator_calls,
    wait_for,
    with_all_monitoring,
    writes,
)
from reranker_devtools.devcluster import DEPLOYMENTS, RERANKERS, DevCluster
from reranker_operator.controller.handlers import Controller

NS = "default"
BGE = "bge-reranker-base"
QWEN = "qwen3-reranker-0-6b"


def cr_of(cluster: DevCluster, name: str) -> dict:
    return cluster.get(RERANKERS, NS, name) or {}


def reason_of(cluster: DevCluster, name: str, type_: str) -> tuple[str, str] | None:
    cond = condition(cluster.get(RERANKERS, NS, name), type_)
    return (cond["status"], cond["reason"]) if cond else None


def env_of(deployment: dict) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_create_applies_every_child_with_owner_references(
    cluster: DevCluster, operator: Controller
) -> None:
    manifest = with_all_monitoring(example("qwen3-reranker-0.6b.yaml"))
    manifest["spec"]["ingress"] = {"enabled": True, "host": "rerank.example.com"}
    manifest["spec"]["networkPolicy"] = {
        "ingressControllerNamespaceLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
    }
    cr = cluster.create(manifest)
    expected = {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Ingress",
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
        "NetworkPolicy",
    }
    got = wait_for(
        lambda: (c := children(cluster, QWEN)) and {k.split("/")[0] for k in c} == expected and c,
        "all nine children",
    )
    for key, child in got.items():
        refs = child["metadata"].get("ownerReferences") or []
        assert [(r["kind"], r["name"], r["uid"], r.get("controller")) for r in refs] == [
            ("RerankerService", QWEN, cr["metadata"]["uid"], True)
        ], key
        assert child["metadata"]["labels"]["app.kubernetes.io/instance"] == QWEN
    deployment = got[f"Deployment/{QWEN}"]
    assert env_of(deployment)["MODEL_NAME"] == "Qwen/Qwen3-Reranker-0.6B"
    assert "replicas" not in deployment["spec"]  # the HPA owns the replica count
    hpa = got[f"HorizontalPodAutoscaler/{QWEN}"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    assert hpa["spec"]["scaleTargetRef"]["name"] == QWEN
    assert got[f"Ingress/{QWEN}"]["spec"]["rules"][0]["host"] == "rerank.example.com"
    status = wait_for(
        lambda: (
            cr_of(cluster, QWEN).get("status", {}).get("endpoint")
            and cr_of(cluster, QWEN)["status"]
        ),
        "status",
    )
    assert status["endpoint"] == f"http://{QWEN}.{NS}.svc.cluster.local:8080"
    assert (
        status["selector"] == f"app.kubernetes.io/name=reranker,app.kubernetes.io/instance={QWEN}"
    )
    assert status["model"] == "Qwen/Qwen3-Reranker-0.6B"
    assert reason_of(cluster, QWEN, "ServiceMonitor") == ("True", "Available")
    assert wait_for(
        lambda: reason_of(cluster, QWEN, "PrometheusRule"), "the PrometheusRule condition"
    ) == ("True", "Available")


def test_status_follows_the_rollout(cluster: DevCluster, operator: Controller) -> None:
    cluster.create(example("bge-reranker-cpu.yaml"))
    wait_for(lambda: cluster.get(DEPLOYMENTS, NS, BGE), "the Deployment")

    cluster.simulate_rollout(NS, BGE, "init")
    wait_for(
        lambda: reason_of(cluster, BGE, "Progressing") == ("True", "ModelDownloading"),
        "Progressing=True/ModelDownloading",
    )
    assert reason_of(cluster, BGE, "Ready") == ("False", "ModelDownloading")
    assert reason_of(cluster, BGE, "Degraded") == ("False", "ModelDownloading")
    ready_since = condition(cr_of(cluster, BGE), "Ready")["lastTransitionTime"]

    cluster.simulate_rollout(NS, BGE, "starting")
    wait_for(
        lambda: reason_of(cluster, BGE, "Progressing") == ("True", "DeploymentProgressing"),
        "Progressing=True/DeploymentProgressing",
    )
    assert reason_of(cluster, BGE, "Ready") == ("False", "DeploymentProgressing")
    # Ready stayed False: its lastTransitionTime did not move.
    assert condition(cr_of(cluster, BGE), "Ready")["lastTransitionTime"] == ready_since

    cluster.simulate_rollout(NS, BGE, "ready")
    wait_for(lambda: reason_of(cluster, BGE, "Ready") == ("True", "Available"), "Ready=True")
    status = cr_of(cluster, BGE)["status"]
    assert (status["replicas"], status["readyReplicas"], status["replicaSummary"]) == (2, 2, "2/2")
    assert reason_of(cluster, BGE, "Progressing") == ("False", "Available")
    assert reason_of(cluster, BGE, "Degraded") == ("False", "Available")
    assert status["observedGeneration"] == cr_of(cluster, BGE)["metadata"]["generation"]
    assert condition(cr_of(cluster, BGE), "ServiceMonitor") is None  # not asked for
    assert condition(cr_of(cluster, BGE), "PrometheusRule") is None

    events = wait_for(
        lambda: [
            e
            for e in cluster.list("v1/events", NS)
            if e.get("involvedObject", {}).get("name") == BGE and e.get("reason") == "Available"
        ],
        "a Normal event",
    )
    assert events[0]["type"] == "Normal" and "Ready=True" in events[0]["message"]

    cluster.simulate_rollout(NS, BGE, "failed")
    wait_for(
        lambda: reason_of(cluster, BGE, "Degraded") == ("True", "DeploymentUnavailable"),
        "Degraded=True",
    )
    assert reason_of(cluster, BGE, "Ready") == ("False", "DeploymentUnavailable")


def test_model_update_rolls_the_deployment(cluster: DevCluster, operator: Controller) -> None:
    cluster.create(example("bge-reranker-cpu.yaml"))
    first = wait_for(lambda: cluster.get(DEPLOYMENTS, NS, BGE), "the Deployment")
    assert env_of(first)["MODEL_NAME"] == "BAAI/bge-reranker-base"

    cluster.patch(
        RERANKERS, NS, BGE, {"spec": {"model": {"name": "BAAI/bge-reranker-v2-m3"}, "replicas": 3}}
    )
    updated = wait_for(
        lambda: (
            (d := cluster.get(DEPLOYMENTS, NS, BGE))
            and env_of(d)["MODEL_NAME"] == "BAAI/bge-reranker-v2-m3"
            and d
        ),
        "the new model in the Deployment",
    )
    assert updated["spec"]["replicas"] == 3
    assert updated["metadata"]["uid"] == first["metadata"]["uid"]  # updated in place
    wait_for(
        lambda: cr_of(cluster, BGE).get("status", {}).get("observedGeneration") == 2,
        "observedGeneration 2",
    )
    assert cr_of(cluster, BGE)["status"]["model"] == "BAAI/bge-reranker-v2-m3"
    assert operator.echoes >= 1  # the events of our own applies started no pass


def test_children_no_longer_wanted_are_deleted(cluster: DevCluster, operator: Controller) -> None:
    cluster.create(example("qwen3-reranker-0.6b.yaml"))
    wait_for(lambda: f"HorizontalPodAutoscaler/{QWEN}" in children(cluster, QWEN), "the HPA")
    assert f"PodDisruptionBudget/{QWEN}" in children(cluster, QWEN)

    cluster.patch(
        RERANKERS,
        NS,
        QWEN,
        {
            "spec": {
                "autoscaling": {"enabled": False},
                "podDisruptionBudget": {"enabled": False},
                "replicas": 2,
            }
        },
    )
    left = wait_for(
        lambda: (
            (c := children(cluster, QWEN))
            and f"HorizontalPodAutoscaler/{QWEN}" not in c
            and f"PodDisruptionBudget/{QWEN}" not in c
            and c
        ),
        "HPA and PDB deleted",
    )
    assert left[f"Deployment/{QWEN}"]["spec"]["replicas"] == 2
    assert set(left) == {f"Deployment/{QWEN}", f"Service/{QWEN}", f"NetworkPolicy/{QWEN}"}


def test_alerts_and_dashboard_follow_their_switches(
    cluster: DevCluster, operator: Controller
) -> None:
    manifest = example("bge-reranker-cpu.yaml")
    manifest["spec"]["metrics"] = {
        "prometheusRule": {"enabled": True, "for": "2m"},
        "dashboard": {"enabled": True, "folder": "ML"},
    }
    cr = cluster.create(manifest)
    rule_key, board_key = f"PrometheusRule/{BGE}", f"ConfigMap/{BGE}-dashboard"
    got = wait_for(
        lambda: (c := children(cluster, BGE)) and rule_key in c and board_key in c and c,
        "the PrometheusRule and the dashboard ConfigMap",
    )
    for key in (rule_key, board_key):
        refs = got[key]["metadata"].get("ownerReferences") or []
        assert [(r["kind"], r["uid"], r.get("controller")) for r in refs] == [
            ("RerankerService", cr["metadata"]["uid"], True)
        ], key
    (group,) = got[rule_key]["spec"]["groups"]
    assert len(group["rules"]) == 8 and {r["for"] for r in group["rules"]} == {
        "2m"
    }  # no prefix alert: a cross-encoder
    board = got[board_key]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert board["metadata"]["annotations"]["grafana_folder"] == "ML"
    (text,) = board["data"].values()
    assert json.loads(text)["panels"]
    wait_for(
        lambda: reason_of(cluster, BGE, "PrometheusRule") == ("True", "Available"),
        "PrometheusRule=True",
    )

    cluster.patch(
        RERANKERS,
        NS,
        BGE,
        {
            "spec": {
                "metrics": {"prometheusRule": {"enabled": False}, "dashboard": {"enabled": False}}
            }
        },
    )
    left = wait_for(
        lambda: (c := children(cluster, BGE)) and rule_key not in c and board_key not in c and c,
        "both deleted",
    )
    assert set(left) == {f"Deployment/{BGE}", f"Service/{BGE}", f"NetworkPolicy/{BGE}"}
    wait_for(
        lambda: condition(cr_of(cluster, BGE), "PrometheusRule") is None,
        "the PrometheusRule condition dropped",
    )


def test_retained_cache_and_existing_claims_are_never_deleted(
    cluster: DevCluster, operator: Controller
) -> None:
    user_claim = cluster.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "my-models", "namespace": NS},
            "spec": {"accessModes": ["ReadWriteOnce"]},
        }
    )
    manifest = example("bge-reranker-cpu.yaml")
    manifest["spec"]["modelCache"] = {
        "enabled": True,
        "size": "5Gi",
        "retainOnDelete": True,
        "accessModes": ["ReadWriteMany"],
    }  # two replicas
    cluster.create(manifest)
    pvc = wait_for(
        lambda: children(cluster, BGE).get(f"PersistentVolumeClaim/{BGE}-model-cache"),
        "the retained PVC",
    )
    assert not pvc["metadata"].get("ownerReferences")

    cluster.patch(
        RERANKERS,
        NS,
        BGE,
        {
            "spec": {
                "modelCache": {
                    "enabled": True,
                    "existingClaim": "my-models",
                    "size": None,
                    "retainOnDelete": None,
                }
            }
        },
    )
    wait_for(
        lambda: (
            (d := cluster.get(DEPLOYMENTS, NS, BGE))
            and "my-models" in str(d["spec"]["template"]["spec"]["volumes"])
        ),
        "the Deployment on the existing claim",
    )
    cluster.patch(
        RERANKERS, NS, BGE, {"spec": {"modelCache": {"enabled": False, "existingClaim": None}}}
    )
    wait_for(
        lambda: "my-models" not in str(cluster.get(DEPLOYMENTS, NS, BGE)["spec"]),
        "the Deployment off the claim",
    )
    cluster.delete(RERANKERS, NS, BGE)
    wait_for(lambda: cluster.get(RERANKERS, NS, BGE) is None, "the RerankerService gone")
    wait_for(lambda: cluster.get(DEPLOYMENTS, NS, BGE) is None, "its Deployment gone")
    assert cluster.get("v1/persistentvolumeclaims", NS, f"{BGE}-model-cache") is not None
    kept = cluster.get("v1/persistentvolumeclaims", NS, "my-models")
    assert kept is not None and kept["metadata"]["uid"] == user_claim["metadata"]["uid"]


def test_hand_edits_and_deletions_are_reverted(cluster: DevCluster, operator: Controller) -> None:
    cluster.create(example("bge-reranker-cpu.yaml"))
    service = wait_for(lambda: cluster.get("v1/services", NS, BGE), "the Service")
    wait_for(lambda: cluster.get(DEPLOYMENTS, NS, BGE), "the Deployment")

    cluster.patch(
        DEPLOYMENTS, NS, BGE, {"spec": {"replicas": 7}, "metadata": {"labels": {"team": "search"}}}
    )
    wait_for(
        lambda: cluster.get(DEPLOYMENTS, NS, BGE)["spec"]["replicas"] == 2, "replicas put back to 2"
    )
    # A field the operator does not own stays (server-side apply semantics).
    assert cluster.get(DEPLOYMENTS, NS, BGE)["metadata"]["labels"]["team"] == "search"

    cluster.delete("v1/services", NS, BGE)
    again = wait_for(lambda: cluster.get("v1/services", NS, BGE), "the Service recreated")
    assert again["metadata"]["uid"] != service["metadata"]["uid"]
    assert again["spec"]["ports"] == service["spec"]["ports"]


def test_invalid_spec_sets_the_condition_and_touches_nothing(
    cluster: DevCluster, operator: Controller
) -> None:
    manifest = example("bge-reranker-cpu.yaml")
    manifest["spec"]["autoscaling"] = {"enabled": True, "minReplicas": 5, "maxReplicas": 2}
    cluster.create(manifest)
    wait_for(lambda: reason_of(cluster, BGE, "Ready") == ("False", "InvalidSpec"), "InvalidSpec")
    message = condition(cr_of(cluster, BGE), "Ready")["message"]
    assert "autoscaling.maxReplicas" in message
    assert reason_of(cluster, BGE, "Degraded") == ("True", "InvalidSpec")
    assert children(cluster, BGE) == {}

    # No retry loop: once kopf has recorded the failed handler (its annotation and a Warning
    # event), several resync passes write nothing more.
    wait_for(
        lambda: (
            "rerankers.io/last-handled-configuration"
            in (cr_of(cluster, BGE)["metadata"].get("annotations") or {})
        ),
        "kopf to record the failure",
    )
    passes = operator.passes
    wait_for(lambda: operator.passes >= passes + 2, "the operator to settle")
    passes, before = operator.passes, len(writes(operator_calls(cluster)))
    wait_for(lambda: operator.passes >= passes + 3, "three more passes")
    assert len(writes(operator_calls(cluster))) == before
    assert children(cluster, BGE) == {}

    cluster.patch(RERANKERS, NS, BGE, {"spec": {"autoscaling": None}})
    wait_for(lambda: cluster.get(DEPLOYMENTS, NS, BGE), "the Deployment once the spec is fixed")
    wait_for(
        lambda: reason_of(cluster, BGE, "Degraded") == ("False", "DeploymentProgressing"),
        "Degraded=False",
    )


def test_steady_state_makes_no_writes(cluster: DevCluster, operator: Controller) -> None:
    manifest = with_all_monitoring(example("qwen3-reranker-0.6b.yaml"))
    cluster.create(manifest)
    wait_for(lambda: cluster.get(DEPLOYMENTS, NS, QWEN), "the Deployment")
    cluster.simulate_rollout(NS, QWEN, "ready")
    wait_for(lambda: reason_of(cluster, QWEN, "Ready") == ("True", "Available"), "Ready=True")
    passes = operator.passes
    wait_for(lambda: operator.passes >= passes + 2, "the operator to settle")

    start, passes = len(cluster.calls), operator.passes
    wait_for(lambda: operator.passes >= passes + 4, "four resync passes")
    window = [c for c in cluster.calls[start:] if c.user_agent.startswith(OPERATOR_AGENTS)]
    assert [c for c in window if c.verb == "list" and c.resource == "deployments"], (
        "the window saw no reconcile pass"
    )
    assert writes(window) == []


@pytest.mark.parametrize("cluster_options", [{"unserved": ["ServiceMonitor"]}], indirect=True)
def test_missing_service_monitor_api_sets_a_condition(
    cluster: DevCluster, operator: Controller
) -> None:
    manifest = example("bge-reranker-cpu.yaml")
    manifest["spec"]["metrics"] = {"serviceMonitor": {"enabled": True}}
    cluster.create(manifest)
    wait_for(
        lambda: reason_of(cluster, BGE, "ServiceMonitor") == ("False", "ServiceMonitorCRDMissing"),
        "ServiceMonitorCRDMissing",
    )
    message = condition(cr_of(cluster, BGE), "ServiceMonitor")["message"]
    assert "Ready is not affected" in message
    cluster.simulate_rollout(NS, BGE, "ready")
    wait_for(lambda: reason_of(cluster, BGE, "Ready") == ("True", "Available"), "Ready=True")
    assert not [c for c in cluster.calls if c.resource.startswith("servicemonitors")]
    assert set(children(cluster, BGE)) == {
        f"Deployment/{BGE}",
        f"Service/{BGE}",
        f"NetworkPolicy/{BGE}",
        f"NetworkPolicy/{BGE}",
    }


@pytest.mark.parametrize("cluster_options", [{"unserved": ["PrometheusRule"]}], indirect=True)
def test_missing_prometheus_rule_api_sets_a_condition(
    cluster: DevCluster, operator: Controller
) -> None:
    manifest = with_all_monitoring(example("bge-reranker-cpu.yaml"))
    cluster.create(manifest)
    wait_for(
        lambda: reason_of(cluster, BGE, "PrometheusRule") == ("False", "PrometheusRuleCRDMissing"),
        "PrometheusRuleCRDMissing",
    )
    assert "Ready is not affected" in condition(cr_of(cluster, BGE), "PrometheusRule")["message"]
    assert reason_of(cluster, BGE, "ServiceMonitor") == ("True", "Available")
    warnings = wait_for(
        lambda: [
            e
            for e in cluster.list("v1/events", NS)
            if e.get("reason") == "PrometheusRuleCRDMissing"
        ],
        "a Warning",
    )
    assert warnings[0]["type"] == "Warning"
    cluster.simulate_rollout(NS, BGE, "ready")
    wait_for(lambda: reason_of(cluster, BGE, "Ready") == ("True", "Available"), "Ready=True")
    assert not [c for c in cluster.calls if c.resource.startswith("prometheusrules")]
    assert set(children(cluster, BGE)) == {
        f"Deployment/{BGE}",
        f"Service/{BGE}",
        f"NetworkPolicy/{BGE}",
        f"ServiceMonitor/{BGE}",
        f"ConfigMap/{BGE}-dashboard",
    }


def test_deleting_the_service_removes_its_children(
    cluster: DevCluster, operator: Controller
) -> None:
    cluster.create(example("qwen3-reranker-0.6b.yaml"))
    wait_for(lambda: len(children(cluster, QWEN)) == 5, "five children")  # no claim: per pod
    cluster.delete(RERANKERS, NS, QWEN)
    wait_for(lambda: cluster.get(RERANKERS, NS, QWEN) is None, "kopf to release its finalizer")
    assert children(cluster, QWEN) == {}
    # A pass after deletion must not resurrect anything.
    passes = operator.passes
    other = copy.deepcopy(example("bge-reranker-cpu.yaml"))
    cluster.create(other)
    wait_for(lambda: operator.passes > passes and cluster.get(DEPLOYMENTS, NS, BGE), "other CR")
    assert children(cluster, QWEN) == {}


def test_api_failures_become_reconcile_error_and_are_retried(
    cluster: DevCluster, operator: Controller
) -> None:
    cluster.fail("patch", "v1/services", status=500, times=2)
    cluster.create(example("bge-reranker-cpu.yaml"))
    wait_for(
        lambda: reason_of(cluster, BGE, "Ready") == ("False", "ReconcileError"),
        "Ready=False/ReconcileError",
    )
    assert "services" in condition(cr_of(cluster, BGE), "Degraded")["message"]
    # The error clears by itself once the API answers again.
    wait_for(lambda: cluster.get("v1/services", NS, BGE), "the Service after retries")
    wait_for(
        lambda: reason_of(cluster, BGE, "Degraded") == ("False", "DeploymentProgressing"),
        "Degraded=False again",
    )
    assert operator.failures >= 1 and operator.last_error


def test_equivalent_spellings_on_the_server_cause_no_writes(
    cluster: DevCluster, operator: Controller
) -> None:
    """A real API server stores quantities canonically and may read a port back as a string:
    the live Deployment then differs textually from our manifest, which must not be a write on
    every resync."""
    cluster.create(example("qwen3-reranker-0.6b.yaml"))
    wait_for(lambda: cluster.get(DEPLOYMENTS, NS, QWEN), "the Deployment")
    live = cluster.get(DEPLOYMENTS, NS, QWEN)
    containers = copy.deepcopy(live["spec"]["template"]["spec"]["containers"])
    main = containers[-1]
    requests, limits = main["resources"]["requests"], main["resources"]["limits"]
    assert requests["cpu"] == "2" and requests["memory"] == "8Gi" and limits["memory"] == "16Gi"
    requests.update(cpu="2000m", memory="8192Mi")  # the same amounts, spelled differently
    limits.update(memory="16384Mi")
    for port in main.get("ports") or []:
        port["containerPort"] = str(port["containerPort"])
    # The server's own spelling: stored in place, no field changes hands (manager None).
    cluster.patch(
        DEPLOYMENTS,
        NS,
        QWEN,
        {"spec": {"template": {"spec": {"containers": containers}}}},
        manager=None,
    )
    passes = operator.passes
    wait_for(lambda: operator.passes >= passes + 2, "the operator to see the edit")

    start, passes = len(cluster.calls), operator.passes
    wait_for(lambda: operator.passes >= passes + 3, "three resync passes")
    window = [c for c in cluster.calls[start:] if c.user_agent.startswith(OPERATOR_AGENTS)]
    assert [c for c in window if c.verb == "list" and c.resource == "deployments"]
    assert [c for c in writes(window) if c.resource == "deployments"] == []
    after = cluster.get(DEPLOYMENTS, NS, QWEN)["spec"]["template"]["spec"]["containers"][-1]
    assert after["resources"]["requests"]["cpu"] == "2000m"  # left as the server spelled it

    # A real change behind the same fields is still reverted.
    main["resources"]["requests"]["cpu"] = "3"
    cluster.patch(
        DEPLOYMENTS, NS, QWEN, {"spec": {"template": {"spec": {"containers": containers}}}}
    )
    wait_for(
        lambda: (
            cluster.get(DEPLOYMENTS, NS, QWEN)["spec"]["template"]["spec"]["containers"][-1][
                "resources"
            ]["requests"]["cpu"]
            == "2"
        ),
        "the edit to be reverted",
    )


def test_a_child_another_manager_extended_keeps_its_additions_and_stays_quiet(
    cluster: DevCluster, operator: Controller
) -> None:
    """A mesh webhook (another field manager) adds a sidecar container, a volume, an env var
    in our container and an annotation: our passes keep them and write nothing, as on a real
    API server, where server-side apply merges those lists by name."""
    cluster.create(example("bge-reranker-cpu.yaml"))
    wait_for(lambda: cluster.get(DEPLOYMENTS, NS, BGE), "the Deployment")
    passes = operator.passes
    wait_for(lambda: operator.passes >= passes + 2, "the operator to settle")
    cluster.patch(
        DEPLOYMENTS,
        NS,
        BGE,
        {
            "metadata": {"annotations": {"mesh.example.com/injected": "true"}},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "mesh-proxy", "image": "mesh/proxy:1"},
                            {"name": "reranker", "env": [{"name": "MESH", "value": "on"}]},
                        ],
                        "volumes": [{"name": "mesh-certs", "emptyDir": {}}],
                    }
                }
            },
        },
        manager="mesh-webhook",
        strategic=True,
    )

    def pod_spec() -> dict:
        return cluster.get(DEPLOYMENTS, NS, BGE)["spec"]["template"]["spec"]

    assert {c["name"] for c in pod_spec()["containers"]} == {"reranker", "mesh-proxy"}
    passes = operator.passes
    wait_for(lambda: operator.passes >= passes + 2, "the operator to see the sidecar")
    start, passes = len(cluster.calls), operator.passes
    wait_for(lambda: operator.passes >= passes + 3, "three resync passes")
    window = [c for c in cluster.calls[start:] if c.user_agent.startswith(OPERATOR_AGENTS)]
    assert [c for c in window if c.verb == "list" and c.resource == "deployments"]
    assert writes(window) == []
    spec = pod_spec()
    assert [c["name"] for c in spec["containers"]] == ["reranker", "mesh-proxy"]
    assert {"name": "MESH", "value": "on"} in spec["containers"][0]["env"]
    assert "mesh-certs" in {v["name"] for v in spec["volumes"]}
    managers = {
        e["manager"] for e in cluster.get(DEPLOYMENTS, NS, BGE)["metadata"]["managedFields"]
    }
    assert {"reranker-operator", "mesh-webhook"} <= managers

    # Our own fields are still ours: an edit of the image is reverted, the sidecar stays.
    cluster.patch(
        DEPLOYMENTS,
        NS,
        BGE,
        {"spec": {"template": {"spec": {"containers": [{"name": "reranker", "image": "evil:1"}]}}}},
        strategic=True,
    )
    wait_for(lambda: pod_spec()["containers"][0]["image"] != "evil:1", "the image reverted")
    assert [c["name"] for c in pod_spec()["containers"]] == ["reranker", "mesh-proxy"]


def test_a_failed_status_write_is_retried_at_the_next_resync(
    cluster: DevCluster, operator: Controller
) -> None:
    cluster.create(example("bge-reranker-cpu.yaml"))
    wait_for(
        lambda: reason_of(cluster, BGE, "Ready") == ("False", "DeploymentProgressing"),
        "the first status",
    )
    passes = operator.passes
    wait_for(lambda: operator.passes >= passes + 2, "the operator to settle")
    cluster.fail("patch", RERANKERS, status=500, times=6, subresource="status")
    cluster.simulate_rollout(NS, BGE, "ready")
    # No kopf error backoff (a minute): the resync timer's next pass writes it.
    wait_for(
        lambda: reason_of(cluster, BGE, "Ready") == ("True", "Available"), "Ready=True", timeout=15
    )
    assert operator.failures >= 1 and "rerankerservices/status" in (operator.last_error or "")
