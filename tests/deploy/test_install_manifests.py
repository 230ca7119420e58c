"""The install manifests (deploy/): they build with kustomize, validate strictly, and grant
exactly the permissions the operator uses."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from deploy_helpers import REPO

import reranker_contract
from reranker_operator.api import constants
from reranker_operator.controller.kube import API_PERMISSIONS

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
BUILDS = ("deploy", "deploy/overlays/kind", "deploy/crds")
K8S_VERSIONS = ("1.30", "1.37")
NAMESPACE = "reranker-system"

# kopf's peering (`--peering NAME` on a cluster-wide operator): it lists and watches the
# ClusterKopfPeering objects and patches its keep-alive into the status of the one it names;
# the operator creates that object at start-up when it is missing.
KOPF_PEERING = {
    ("list", "kopf.dev", "clusterkopfpeerings"),
    ("watch", "kopf.dev", "clusterkopfpeerings"),
    ("patch", "kopf.dev", "clusterkopfpeerings"),
    ("create", "kopf.dev", "clusterkopfpeerings"),
}


def kustomize(path: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [KUBECTL, "kustomize", str(REPO / path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"kubectl kustomize {path} failed: {done.stderr}"
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture(scope="module")
def built() -> dict[str, list[dict[str, Any]]]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    return {path: kustomize(path) for path in BUILDS}


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def rule_triples(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (verb, group, resource)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def operator_args(objs: list[dict[str, Any]]) -> str:
    container = one(objs, "Deployment", "reranker-operator")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return " ".join(container.get("command", []) + container.get("args", []))


@needs_kubectl
def test_install_contents(built) -> None:
    objs = built["deploy"]
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objs)
    assert kinds == sorted(
        [
            ("Namespace", NAMESPACE),
            ("CustomResourceDefinition", f"{constants.CRD_PLURAL}.{constants.CRD_GROUP}"),
            ("CustomResourceDefinition", "clusterkopfpeerings.kopf.dev"),
            ("CustomResourceDefinition", "kopfpeerings.kopf.dev"),
            ("ServiceAccount", "reranker-operator"),
            ("ClusterRole", "reranker-operator"),
            ("ClusterRoleBinding", "reranker-operator"),
            ("Deployment", "reranker-operator"),
            ("NetworkPolicy", "reranker-operator"),
        ]
    )
    for o in objs:
        if o["kind"] in ("ServiceAccount", "Deployment", "NetworkPolicy"):
            assert o["metadata"]["namespace"] == NAMESPACE


@needs_kubectl
@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", BUILDS)
def test_every_object_validates_strictly(built, path: str, version: str) -> None:
    objs = built[path]
    crds = {
        (c["spec"]["group"], c["spec"]["names"]["kind"]): c
        for c in objs
        if c["kind"] == "CustomResourceDefinition"
    }
    for obj in objs:
        group = obj["apiVersion"].rpartition("/")[0]
        if (group, obj["kind"]) in crds:  # a custom object: check it against its CRD's schema
            crd = crds[(group, obj["kind"])]
            version_name = obj["apiVersion"].rpartition("/")[2]
            served = [
                v for v in crd["spec"]["versions"] if v["name"] == version_name and v["served"]
            ]
            assert served, f"{obj['kind']} {obj['apiVersion']} is not served by its CRD"
            schema = served[0]["schema"]["openAPIV3Schema"]
            body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
            jsonschema.validate(body, _plain_schema(schema))
            continue
        kubernetes_validate.validate(obj, version, strict=True)


def _plain_schema(schema: Any) -> Any:
    """An openAPIV3Schema as JSON Schema: drop the x-kubernetes-* extensions."""
    if isinstance(schema, dict):
        return {k: _plain_schema(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if isinstance(schema, list):
        return [_plain_schema(v) for v in schema]
    return schema


def test_strict_validation_rejects_a_typo() -> None:
    """The validator really is strict (so the test above can fail)."""
    bad = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "x"},
        "automountToken": True,
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.30", strict=True)


def test_crd_copy_is_identical() -> None:
    original = (REPO / "crds" / "rerankerservices.yaml").read_bytes()
    copy = (REPO / "deploy" / "crds" / "rerankerservices.yaml").read_bytes()
    assert copy == original, "deploy/crds/rerankerservices.yaml differs: run `make generate`"


def _walk_rules(objs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objs:
        if o["kind"] in ("ClusterRole", "Role"):
            for rule in o.get("rules", []):
                yield o["metadata"]["name"], rule


@needs_kubectl
def test_no_wildcards_in_rbac(built) -> None:
    rules = list(_walk_rules(built["deploy"]))
    assert rules
    for name, rule in rules:
        for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            for value in rule.get(key, []):
                assert "*" not in value, f"{name}: wildcard {value!r} in {key}"
        assert "nonResourceURLs" not in rule, f"{name}: non-resource URLs are never needed"


@needs_kubectl
def test_rbac_is_exactly_what_the_operator_calls(built) -> None:
    objs = built["deploy"]
    granted = rule_triples(one(objs, "ClusterRole", "reranker-operator")["rules"])
    needed = {(verb, p.group, p.resource) for p in API_PERMISSIONS for verb in p.verbs}
    if "--peering" in operator_args(objs):  # API_PERMISSIONS covers the Deployment's mode
        assert KOPF_PEERING <= needed, f"API_PERMISSIONS lacks {sorted(KOPF_PEERING - needed)}"
    missing, extra = needed - granted, granted - needed
    assert not missing, f"the ClusterRole lacks {sorted(missing)}"
    assert not extra, f"the ClusterRole grants more than the operator uses: {sorted(extra)}"
    assert not [o for o in objs if o["kind"] in ("Role", "RoleBinding")]


@needs_kubectl
def test_binding_ties_the_deployment_account_to_the_role(built) -> None:
    objs = built["deploy"]
    binding = one(objs, "ClusterRoleBinding", "reranker-operator")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "reranker-operator",
    }
    pod = one(objs, "Deployment", "reranker-operator")["spec"]["template"]["spec"]
    account = one(objs, "ServiceAccount", pod["serviceAccountName"])
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]


@needs_kubectl
def test_operator_deployment_is_hardened_and_peered(built) -> None:
    objs = built["deploy"]
    deployment = one(objs, "Deployment", "reranker-operator")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    uid = reranker_contract.RUN_AS_UID  # the operator image's USER (test_dockerfiles.py)
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, uid)
    [container] = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    image = container["image"]
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
    # Read-only root: everything that must write gets an emptyDir.
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts
    # Peered cluster-wide; the operator creates its ClusterKopfPeering (no object of a kind the
    # install defines itself, so one `kubectl apply -k` works on a fresh cluster).
    args = operator_args(objs)
    assert "--peering=reranker-operator" in args and "--all-namespaces" in args
    assert not [o for o in objs if o["kind"] in ("ClusterKopfPeering", "KopfPeering")]
    # The liveness probe polls the port and path kopf serves.
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    port = ports.get(probe["port"], probe["port"])
    assert f"--liveness=http://0.0.0.0:{port}{probe['path']}" in args
    # Ready = /readyz on the metrics port (test_operator_readiness.py shows when it answers).
    ready = container["readinessProbe"]["httpGet"]
    assert ready["path"] == "/readyz"
    assert f"--metrics-bind-address=0.0.0.0:{ports[ready['port']]}" in args
    # Its NetworkPolicy admits the probes' ports and nothing else (egress stays open).
    policy = one(objs, "NetworkPolicy", "reranker-operator")["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == [
        {"ports": [{"port": p, "protocol": "TCP"} for p in (probe["port"], ready["port"])]}
    ]


@needs_kubectl
def test_kind_overlay_uses_the_local_image(built) -> None:
    container = one(built["deploy/overlays/kind"], "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["image"] == "reranker-operator:dev"
    assert container["imagePullPolicy"] == "Never"


@needs_kubectl
def test_crds_build_holds_only_crds(built) -> None:
    assert {o["kind"] for o in built["deploy/crds"]} == {"CustomResourceDefinition"}
    assert len(built["deploy/crds"]) == 3


def _adapter_rules() -> list[dict[str, Any]]:
    return yaml.safe_load((REPO / "deploy" / "prometheus-adapter" / "values.yaml").read_text())[
        "rules"
    ]["custom"]


def test_adapter_rules_serve_the_metrics_the_hpa_reads() -> None:
    from reranker_contract import HpaMetric
    from reranker_operator.engines import registered

    served = {rule["name"]["as"] for rule in _adapter_rules()}
    assert served == set(HpaMetric) | {e.queued_pairs_metric for e in registered()}


def test_adapter_rules_read_series_the_server_exports() -> None:
    import prometheus_client

    import reranker_server.engine.metrics  # noqa: F401  (registers the engine's metrics)
    import reranker_server.metrics  # noqa: F401  (registers the server's metrics)

    exported = set()
    for metric in prometheus_client.REGISTRY.collect():
        exported.add(metric.name + ("_total" if metric.type == "counter" else ""))
        if metric.type == "histogram":
            exported.add(metric.name + "_bucket")
    for rule in _adapter_rules():
        series = rule["seriesQuery"].split("{", 1)[0]
        if series.startswith("vllm:"):
            continue  # vLLM's: tests/vllm scrape them from a running vLLM
        assert series in exported, f"the adapter reads {series}, which the server does not export"
        assert rule["name"]["matches"] == f"^{series}$"


def test_install_doc_shows_the_same_adapter_rules() -> None:
    text = (REPO / "docs" / "install.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    documented = [yaml.safe_load(b) for b in blocks if b.lstrip().startswith("rules:")]
    assert documented and documented[0]["rules"]["custom"] == _adapter_rules()


def test_troubleshooting_covers_every_failure_reason() -> None:
    from reranker_operator.controller import status
    from reranker_operator.render.kinds import OPTIONAL_KINDS

    text = (REPO / "docs" / "troubleshooting.md").read_text()
    reasons = [
        status.INVALID_SPEC,
        status.MODEL_DOWNLOADING,
        status.DEPLOYMENT_UNAVAILABLE,
        *(kind.optional.missing_reason for kind in OPTIONAL_KINDS if kind.optional),
        status.RECONCILE_ERROR,
    ]
    assert "ServiceMonitorCRDMissing" in reasons and "PrometheusRuleCRDMissing" in reasons
    assert [r for r in reasons if r not in text] == []


@needs_kubectl
def test_operator_image_tag_is_the_package_version(built) -> None:
    """The release install runs the operator build of this version (the server image it
    launches defaults to the same tag)."""
    import tomllib

    from reranker_operator import __version__

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    container = one(built["deploy"], "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"ghcr.io/reranker-operator/reranker-operator:{version}"
    assert __version__ == version


def test_the_server_pods_policy_names_the_operator_as_deployed(built) -> None:
    """The server pods' NetworkPolicy admits the operator by constants.OPERATOR_NAMESPACE and
    OPERATOR_POD_LABELS (it reads each pod's score check): they are what deploy/ installs."""
    deployment = one(built["deploy"], "Deployment", "reranker-operator")
    assert deployment["metadata"]["namespace"] == constants.OPERATOR_NAMESPACE
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert constants.OPERATOR_POD_LABELS.items() <= labels.items()
