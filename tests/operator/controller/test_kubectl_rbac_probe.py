"""kubectl against the emulator, the operator's API calls versus API_PERMISSIONS, and the
liveness probe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request

import pytest

from operator_helpers import (
    EXAMPLES,
    condition,
    example,
    operator_calls,
    wait_for,
    with_all_monitoring,
)
from reranker_devtools.devcluster import DEPLOYMENTS, RERANKERS, DevCluster
from reranker_devtools.ports import free_port
from reranker_operator.controller.handlers import Controller
from reranker_operator.controller.kube import API_PERMISSIONS, permitted
from reranker_operator.render.kinds import CHILD_KINDS

NS = "default"
QWEN = "qwen3-reranker-0-6b"

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")


def kubectl(cluster: DevCluster, *args: str) -> str:
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
    done = subprocess.run(
        ["kubectl", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)} failed: {done.stderr}"
    return done.stdout


@needs_kubectl
def test_kubectl_apply_and_get(cluster: DevCluster, operator: Controller) -> None:
    out = kubectl(
        cluster, "apply", "--validate=false", "-f", str(EXAMPLES / "qwen3-reranker-0.6b.yaml")
    )
    assert f"rerankerservice.rerankers.io/{QWEN} created" in out
    assert QWEN in kubectl(cluster, "get", "rerankers")
    wait_for(lambda: cluster.get(DEPLOYMENTS, NS, QWEN), "the Deployment")
    assert f"deployment.apps/{QWEN}" in kubectl(cluster, "get", "deployments", "-o", "name")
    # Core kinds resolve too (the emulator fixes kmock's "/v1" core discovery).
    assert f"service/{QWEN}" in kubectl(cluster, "get", "services", "-o", "name")
    cluster.simulate_rollout(NS, QWEN, "ready")
    wait_for(
        lambda: (
            kubectl(
                cluster,
                "get",
                "rerankers",
                QWEN,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            )
            == "True"
        ),
        "kubectl to show Ready=True",
    )
    assert (
        kubectl(cluster, "get", "rerankers", QWEN, "-o", "jsonpath={.status.replicaSummary}")
        == "1/1"
    )

    # An edit through kubectl (merge patch) is reconciled like any other.
    kubectl(
        cluster,
        "patch",
        "rerankerservice",
        QWEN,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"autoscaling": {"enabled": False}, "replicas": 2}}),
    )
    wait_for(
        lambda: cluster.get(DEPLOYMENTS, NS, QWEN)["spec"].get("replicas") == 2,
        "replicas 2 after kubectl patch",
    )
    # The scale subresource: kubectl scale sets spec.replicas.
    kubectl(cluster, "scale", "rerankerservice", QWEN, "--replicas=3")
    assert cluster.get(RERANKERS, NS, QWEN)["spec"]["replicas"] == 3
    wait_for(
        lambda: cluster.get(DEPLOYMENTS, NS, QWEN)["spec"].get("replicas") == 3,
        "replicas 3 after kubectl scale",
    )
    kubectl(cluster, "delete", "rerankerservice", QWEN, "--wait=false")
    wait_for(lambda: cluster.get(DEPLOYMENTS, NS, QWEN) is None, "children garbage-collected")


def test_every_operator_call_is_in_api_permissions(
    cluster: DevCluster, operator: Controller
) -> None:
    manifest = with_all_monitoring(example("qwen3-reranker-0.6b.yaml"))
    manifest["spec"]["ingress"] = {"enabled": True, "host": "rerank.example.com"}
    manifest["spec"]["networkPolicy"] = {
        "ingressControllerNamespaceLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
    }
    cluster.create(manifest)
    wait_for(lambda: cluster.get(DEPLOYMENTS, NS, QWEN), "the Deployment")
    wait_for(lambda: cluster.get("v1/configmaps", NS, f"{QWEN}-dashboard"), "the dashboard")
    cluster.simulate_rollout(NS, QWEN, "init")
    cluster.simulate_rollout(NS, QWEN, "ready")
    wait_for(
        lambda: (
            (condition(cluster.get(RERANKERS, NS, QWEN), "Ready") or {}).get("status") == "True"
        ),
        "Ready=True",
    )
    cluster.patch(
        RERANKERS,
        NS,
        QWEN,
        {
            "spec": {
                "ingress": {"enabled": False},
                "metrics": {"prometheusRule": {"enabled": False}, "dashboard": {"enabled": False}},
            }
        },
    )
    wait_for(
        lambda: cluster.get("networking.k8s.io/v1/ingresses", NS, QWEN) is None,
        "the Ingress pruned",
    )
    wait_for(
        lambda: (
            cluster.get("monitoring.coreos.com/v1/prometheusrules", NS, QWEN) is None
            and cluster.get("v1/configmaps", NS, f"{QWEN}-dashboard") is None
        ),
        "the PrometheusRule and the dashboard pruned",
    )
    cluster.delete("v1/services", NS, QWEN)
    wait_for(lambda: cluster.get("v1/services", NS, QWEN), "the Service recreated")
    cluster.delete(RERANKERS, NS, QWEN)
    wait_for(lambda: cluster.get(RERANKERS, NS, QWEN) is None, "the RerankerService gone")

    calls = operator_calls(cluster)
    seen = {(c.verb, c.group, c.resource) for c in calls}
    # The scenario exercised every kind of call the reconciler makes...
    for expected in [
        ("patch", "apps", "deployments"),
        ("list", "apps", "deployments"),
        ("delete", "networking.k8s.io", "ingresses"),
        ("patch", "rerankers.io", "rerankerservices/status"),
        ("list", "", "pods"),
        ("watch", "apps", "deployments"),
        ("create", "", "events"),
        ("patch", "monitoring.coreos.com", "prometheusrules"),
        ("delete", "monitoring.coreos.com", "prometheusrules"),
        ("patch", "", "configmaps"),
        ("delete", "", "configmaps"),
        ("list", "", "configmaps"),
        ("watch", "", "configmaps"),
    ]:
        assert expected in seen, expected
    # Every child kind of the table is watched (an edit of any child starts a pass).
    assert [k.kind for k in CHILD_KINDS if ("watch", k.group, k.plural) not in seen] == []
    # A pass works on the body kopf's watch delivered: no second fetch of the RerankerService.
    assert ("get", "rerankers.io", "rerankerservices") not in seen
    # kopf and our passes share one session: no call came from another client.
    assert [
        c for c in cluster.calls if c.user_agent.startswith(("kopf/", "OpenAPI-Generator/"))
    ] == []
    # ...and every call made (kopf's included) is granted by API_PERMISSIONS.
    assert sorted(call for call in seen if not permitted(*call)) == []


def test_api_permissions_are_least_privilege_shaped() -> None:
    rules = {(p.group, p.resource): set(p.verbs) for p in API_PERMISSIONS}
    assert rules[("rerankers.io", "rerankerservices")] == {"list", "watch", "patch"}
    assert rules[("rerankers.io", "rerankerservices/status")] == {"get", "patch"}
    assert rules[("", "pods")] == {"get", "list", "watch"}
    assert ("", "secrets") not in rules
    # ConfigMaps only as a child (the Grafana dashboard): the child verbs, never update
    assert rules[("", "configmaps")] == {"get", "list", "watch", "create", "patch", "delete"}
    assert rules[("monitoring.coreos.com", "prometheusrules")] == rules[("", "configmaps")]
    assert all("*" not in verbs and "update" not in verbs for verbs in rules.values())
    assert not permitted("create", "rerankers.io", "rerankerservices")
    assert not permitted("delete", "", "pods")


PROBE_PORT = free_port()


@pytest.mark.parametrize(
    "operator_args", [[f"--liveness=http://127.0.0.1:{PROBE_PORT}/healthz"]], indirect=True
)
def test_liveness_probe_reports_reconcile_passes(cluster: DevCluster, operator: Controller) -> None:
    cluster.create(example("bge-reranker-cpu.yaml"))
    wait_for(lambda: operator.passes >= 1, "a pass")

    def probe() -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PROBE_PORT}/healthz", timeout=5) as r:
                return json.loads(r.read()) if r.status == 200 else {}
        except OSError:
            return {}

    report = wait_for(
        lambda: (p := probe()) and p.get("reconciler", {}).get("passes") and p,
        "the liveness endpoint",
    )
    assert report["reconciler"]["failures"] == 0
    assert report["reconciler"]["passes"] >= 1
