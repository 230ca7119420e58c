"""Run the real operator the way deploy/ runs it (cluster-wide, peered) against the emulated API,
and check that every call it makes is granted by the ClusterRole that deploy/ installs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import REPO, kustomize_build, wait_for
from kopf.testing import KopfRunner

from reranker_devtools.devcluster import DEPLOYMENTS, DevCluster
from reranker_operator import cli
from reranker_operator.controller.handlers import OperatorConfig
from reranker_operator.controller.kube import USER_AGENT
from reranker_operator.controller.runner import build

OPERATOR_AGENTS = (USER_AGENT,)  # kopf and our passes share one session


@pytest.fixture(scope="module")
def install() -> list[dict[str, Any]]:
    return kustomize_build()


def _granted(install: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    [role] = [o for o in install if o["kind"] == "ClusterRole"]
    return {
        (verb, group, resource)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _kopf_args(install: list[dict[str, Any]]) -> list[str]:
    """The Deployment's `reranker-operator run ...` as the equivalent `kopf run` arguments."""
    [deployment] = [o for o in install if o["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = cli._parser().parse_args((container["command"] + container.get("args", []))[1:])
    out = ["run"]
    out += (
        ["--all-namespaces"]
        if args.all_namespaces
        else [f"--namespace={n}" for n in args.namespaces]
    )
    out += [f"--peering={args.peering}"] if args.peering else ["--standalone"]
    return out


@pytest.fixture
def cluster(
    install: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DevCluster]:
    """The emulator serving kopf's peering kind too (from the install's CRD); no peering object:
    the operator must create it."""
    import kmock

    with DevCluster() as dev:
        [crd] = [
            o
            for o in install
            if o["kind"] == "CustomResourceDefinition"
            and o["metadata"]["name"] == "clusterkopfpeerings.kopf.dev"
        ]
        dev.emulator.resources["kopf.dev/v1/clusterkopfpeerings"] = kmock.ResourceInfo(
            kind=crd["spec"]["names"]["kind"],
            namespaced=False,
            singular=crd["spec"]["names"]["singular"],
            verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
        )
        assert not [o for o in install if o["kind"] == "ClusterKopfPeering"]
        kubeconfig = dev.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        dev.kubeconfig = kubeconfig  # type: ignore[attr-defined]
        yield dev


def test_peered_operator_calls_only_what_the_cluster_role_grants(
    cluster: DevCluster, install
) -> None:
    config = OperatorConfig(
        resync_seconds=0.3,
        discovery_ttl_seconds=0.2,
        retry_seconds=0.5,
        kubeconfig=str(cluster.kubeconfig),
    )
    registry, settings, _controller = build(config)
    settings.watching.reconnect_backoff = 0.2
    cr = yaml.safe_load((REPO / "examples" / "bge-reranker-cpu.yaml").read_text())
    # the optional children too, so their calls are checked against the ClusterRole
    cr["spec"]["metrics"] = {"prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}}
    ns, name = cr["metadata"].get("namespace", "default"), cr["metadata"]["name"]
    with KopfRunner(_kopf_args(install), registry=registry, settings=settings, timeout=30):
        cluster.create(cr, cr["metadata"].get("namespace", "default"))
        # The operator works (peering did not pause it): the server Deployment appears.
        wait_for(
            lambda: cluster.get(
                DEPLOYMENTS, cr["metadata"].get("namespace", "default"), cr["metadata"]["name"]
            ),
            "the child Deployment",
        )
        wait_for(
            lambda: (
                cluster.get("monitoring.coreos.com/v1/prometheusrules", ns, name)
                and cluster.get("v1/configmaps", ns, f"{name}-dashboard")
            ),
            "the PrometheusRule and the dashboard ConfigMap",
        )
        # kopf's keep-alive reached the peering object.
        wait_for(
            lambda: (
                cluster.get("kopf.dev/v1/clusterkopfpeerings", None, "reranker-operator") or {}
            ).get("status"),
            "a keep-alive in the ClusterKopfPeering",
        )
    calls = [c for c in cluster.calls if c.user_agent.startswith(OPERATOR_AGENTS)]
    made = {(c.verb, c.group, c.resource) for c in calls}
    assert ("patch", "kopf.dev", "clusterkopfpeerings") in made
    assert ("create", "kopf.dev", "clusterkopfpeerings") in made  # absent at start: created
    assert ("watch", "kopf.dev", "clusterkopfpeerings") in made
    assert ("patch", "monitoring.coreos.com", "prometheusrules") in made
    assert ("patch", "", "configmaps") in made and ("watch", "", "configmaps") in made
    denied = made - _granted(install)
    assert not denied, f"the operator made calls its ClusterRole forbids: {sorted(denied)}"
