"""render_children: schema-valid children with the expected content, labels and owners."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from render_helpers import (
    FULL_SPEC,
    KEDA_SPEC,
    VLLM_SPEC,
    example_crs,
    keda_schema,
    make_cr,
    prometheus_operator_schema,
)
from reranker_contract import RUN_AS_UID
from reranker_operator import __version__
from reranker_operator.api.spec import InvalidSpecError
from reranker_operator.render.manifests import render_children
from reranker_operator.render.service import parse_service

UID = "0b7c4c1e-1111-4222-8333-944445555666"
SELECTOR = {"app.kubernetes.io/name": "reranker", "app.kubernetes.io/instance": "demo"}


def by_kind(children: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [c["kind"] for c in children]
    assert len(kinds) == len(set(kinds)), kinds
    return {c["kind"]: c for c in children}


def all_crs() -> dict[str, dict[str, Any]]:
    crs = {name: copy.deepcopy(cr) for name, cr in example_crs().items()}
    for cr in crs.values():
        cr["metadata"]["uid"] = UID
    crs["full"] = make_cr(FULL_SPEC)
    crs["keda-full"] = make_cr(KEDA_SPEC)
    crs["keda-legacy-add-on"] = make_cr(
        {
            **KEDA_SPEC,
            "autoscaling": {
                **KEDA_SPEC["autoscaling"],
                "keda": {
                    **KEDA_SPEC["autoscaling"]["keda"],
                    "interceptor": {"api": "HTTPScaledObject"},
                },
            },
        }
    )
    crs["vllm-full"] = make_cr(VLLM_SPEC)
    crs["minimal"] = make_cr({"model": {"name": "m"}})
    return crs


@pytest.fixture(scope="module")
def custom_schemas() -> dict[str, dict[str, Any]]:
    """Schemas of the children kubernetes_validate does not know, by kind."""
    return {
        "ServiceMonitor": prometheus_operator_schema("servicemonitors"),
        "PrometheusRule": prometheus_operator_schema("prometheusrules"),
        "ScaledObject": keda_schema("keda.sh_scaledobjects.yaml", "v1alpha1"),
        "InterceptorRoute": keda_schema("http.keda.sh_interceptorroutes.yaml", "v1beta1"),
        "HTTPScaledObject": keda_schema("http.keda.sh_httpscaledobjects.yaml", "v1alpha1"),
    }


@pytest.mark.parametrize("name", sorted(all_crs()))
def test_children_validate_against_kubernetes_schemas(name: str, custom_schemas) -> None:
    children = render_children(all_crs()[name])
    assert children
    for child in children:
        if child["kind"] in custom_schemas:  # Go regexes: no check of the schema itself
            jsonschema.Draft202012Validator(custom_schemas[child["kind"]]).validate(child)
            continue
        for version in api_versions(child):
            kubernetes_validate.validate(child, version, strict=True)


def api_versions(child: dict[str, Any]) -> tuple[str, ...]:
    """The Kubernetes versions a child must be strict-valid on: 1.30 and 1.37, or from 1.34
    (resource.k8s.io/v1) for a DRA claim template and the pods naming one."""
    pod = child.get("spec", {}).get("template", {}).get("spec", {})
    if child["kind"] == "ResourceClaimTemplate" or pod.get("resourceClaims"):
        return ("1.34", "1.37")
    return ("1.30", "1.37")


def test_children_kinds_and_order() -> None:
    kinds = [c["kind"] for c in render_children(make_cr(FULL_SPEC))]
    assert kinds == [
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Ingress",
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
    ]
    minimal = render_children(make_cr({"model": {"name": "m"}}))
    assert [c["kind"] for c in minimal] == ["Deployment", "Service", "NetworkPolicy"]
    keda = [c["kind"] for c in render_children(make_cr(KEDA_SPEC))]
    assert keda == [
        "Deployment",
        "Service",
        "ScaledObject",
        "InterceptorRoute",
        "Service",
        "NetworkPolicy",
        "ServiceMonitor",
    ]
    vllm = [c["kind"] for c in render_children(make_cr(VLLM_SPEC))]
    assert vllm == [
        "PersistentVolumeClaim",
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
    ]


def test_metadata_labels_and_owner_references() -> None:
    for child in render_children(make_cr(FULL_SPEC)):
        meta = child["metadata"]
        assert meta["namespace"] == "ml"
        want_name = {
            "PersistentVolumeClaim": "demo-model-cache",
            "ConfigMap": "demo-dashboard",
        }.get(child["kind"], "demo")
        assert meta["name"] == want_name
        labels = meta["labels"]
        assert labels["app.kubernetes.io/name"] == "reranker"
        assert labels["app.kubernetes.io/instance"] == "demo"
        assert labels["app.kubernetes.io/managed-by"] == "reranker-operator"
        assert labels["app.kubernetes.io/component"]
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "rerankers.io/v1alpha1",
                "kind": "RerankerService",
                "name": "demo",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_retained_pvc_has_no_owner_reference() -> None:
    spec = {
        "model": {"name": "m"},
        "modelCache": {"enabled": True, "size": "5Gi", "retainOnDelete": True},
    }
    kids = by_kind(render_children(make_cr(spec)))
    assert "ownerReferences" not in kids["PersistentVolumeClaim"]["metadata"]
    assert kids["PersistentVolumeClaim"]["metadata"]["annotations"] == {
        "rerankers.io/retain-on-delete": "true"
    }
    assert kids["Deployment"]["metadata"]["ownerReferences"][0]["uid"] == UID


def test_no_uid_means_no_owner_references() -> None:
    for child in render_children(make_cr(FULL_SPEC, uid=None)):
        assert "ownerReferences" not in child["metadata"]


def test_deployment_content() -> None:
    dep = by_kind(render_children(make_cr(FULL_SPEC)))["Deployment"]
    assert "replicas" not in dep["spec"]  # the HPA owns it
    assert dep["spec"]["selector"] == {"matchLabels": SELECTOR}
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = dep["spec"]["template"]
    assert SELECTOR.items() <= pod["metadata"]["labels"].items()
    assert pod["metadata"]["labels"]["team"] == "search"
    assert pod["metadata"]["annotations"]["team"] == "search"
    assert len(pod["metadata"]["annotations"]["rerankers.io/config-hash"]) == 16
    ps = pod["spec"]
    uid = RUN_AS_UID  # the images' USER (tests/deploy/test_dockerfiles.py)
    assert uid >= 10000
    assert ps["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert ps["nodeSelector"] == FULL_SPEC["nodeSelector"]
    assert ps["tolerations"] == FULL_SPEC["tolerations"]
    assert ps["affinity"] == FULL_SPEC["affinity"]
    assert ps["priorityClassName"] == "high" and ps["runtimeClassName"] == "nvidia"
    assert ps["imagePullSecrets"] == [{"name": "regcred"}]
    assert ps["volumes"] == [
        {"name": "model-cache", "persistentVolumeClaim": {"claimName": "demo-model-cache"}},
        {"name": "tmp", "emptyDir": {}},
        {  # the score record for parity, absent until a revision was Ready
            "name": "score-record",
            "configMap": {
                "name": "demo-score-record",
                "items": [{"key": "record.json", "path": "record.json"}],
                "optional": True,
            },
        },
    ]
    (c,) = ps["containers"]
    assert c["image"] == "registry.example.com/rr:1.2.3" and c["imagePullPolicy"] == "Always"
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    startup = c["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 600  # model loading time
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {m["mountPath"] for m in c["volumeMounts"]} == {
        "/models-cache",
        "/tmp",
        "/etc/reranker/score-record",
    }
    assert c["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "2"},
        "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"},
    }
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
    assert len(env) == len(c["env"])  # no duplicate names
    assert env == {
        "MODEL_NAME": "Qwen/Qwen3-Reranker-0.6B",
        "MODEL_REVISION": "v1",
        "SERVED_MODEL_NAME": "qwen3",
        "MODEL_FAMILY": "qwen3-causal",
        "DTYPE": "float16",
        "QUANTIZATION": "8bit",
        "TRUST_REMOTE_CODE": "true",
        "DEVICE": "cuda",
        "MAX_BATCH_TOKENS": "8192",
        "BATCH_SIZE": "8",
        "MAX_CLIENT_BATCH_SIZE": "100",
        "MAX_CONCURRENT_REQUESTS": "10",
        "MAX_REQUEST_BYTES": "4194304",
        "MAX_REQUEST_TOKENS": "262144",
        "MAX_QUEUED_TOKENS": "1048576",
        "HEADER_TIMEOUT_SECONDS": "10",
        "BODY_TIMEOUT_SECONDS": "30",
        "AUTH_FAILURES_PER_MINUTE": "30",
        "LOG_LEVEL": "debug",
        "PORT": "8080",
        "PLAYGROUND": "true",
        "DRAIN_SECONDS": "5",
        "REQUEST_TIMEOUT_SECONDS": "60",
        "HF_HOME": "/models-cache",
        "CACHE_DIR": "/models-cache",
        "HF_HUB_OFFLINE": "1",
        "MAX_SEQUENCE_LENGTH": "4096",
        "DEFAULT_INSTRUCTION": "Find passages",
        "SCORE_CHECK": "on",
        "SCORE_CHECK_BUILTINS": "finite,spread,consistent,relevance",
        "SERVER_IMAGE": "registry.example.com/rr:1.2.3",
        "SCORE_RECORD_FILE": "/etc/reranker/score-record/record.json",
        "API_KEY": {"secretKeyRef": {"name": "api", "key": "api-key"}},
        "EXTRA": "1",
        "FROM_SECRET": {"secretKeyRef": {"name": "s", "key": "k"}},
    }
    assert c["envFrom"] == FULL_SPEC["envFrom"]
    (init,) = ps["initContainers"]
    assert init["name"] == "model-download" and init["image"] == c["image"]
    assert init["command"] + init["args"] == [
        "reranker-server",
        "download",
        "--model=Qwen/Qwen3-Reranker-0.6B",
        "--revision=v1",
        "--cache-dir=/models-cache",
    ]
    assert {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}},
    } in init["env"]
    assert "nvidia.com/gpu" not in init["resources"]["limits"]
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    assert init["volumeMounts"] == c["volumeMounts"][:2]  # the model cache and /tmp


def test_cpu_minimal_deployment() -> None:
    dep = by_kind(render_children(make_cr({"model": {"name": "BAAI/bge-reranker-base"}})))[
        "Deployment"
    ]
    assert dep["spec"]["replicas"] == 1
    ps = dep["spec"]["template"]["spec"]
    (c,) = ps["containers"]
    assert c["image"] == f"ghcr.io/reranker-operator/reranker-server:{__version__}"
    assert c["resources"] == {"requests": {"cpu": "1", "memory": "4Gi"}}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["DEVICE"] == "cpu" and env["SERVED_MODEL_NAME"] == "BAAI/bge-reranker-base"
    assert "API_KEY" not in env and "MAX_SEQUENCE_LENGTH" not in env
    assert {"name": "model-cache", "emptyDir": {}} in ps["volumes"]
    for key in ("nodeSelector", "tolerations", "affinity", "imagePullSecrets", "priorityClassName"):
        assert key not in ps
    assert [e["name"] for e in ps["initContainers"][0]["env"]] == ["HF_HOME"]


def test_existing_claim_and_local_model_path() -> None:
    spec = {
        "model": {"name": "/opt/models/bge"},
        "modelCache": {"enabled": True, "existingClaim": "shared"},
    }
    kids = by_kind(render_children(make_cr(spec)))
    assert "PersistentVolumeClaim" not in kids
    ps = kids["Deployment"]["spec"]["template"]["spec"]
    assert ps["volumes"][0] == {
        "name": "model-cache",
        "persistentVolumeClaim": {"claimName": "shared"},
    }
    assert "initContainers" not in ps  # nothing to download for a path


def test_disabled_cache_uses_empty_dir_even_with_claim_settings() -> None:
    spec = {"model": {"name": "m"}, "modelCache": {"enabled": False, "existingClaim": "shared"}}
    kids = by_kind(render_children(make_cr(spec)))
    assert "PersistentVolumeClaim" not in kids
    volumes = kids["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert volumes[0] == {"name": "model-cache", "emptyDir": {}}


def test_per_pod_cache_is_a_generic_ephemeral_volume_and_no_claim_child() -> None:
    spec = {
        "model": {"name": "m"},
        "replicas": 3,
        "modelCache": {"enabled": True, "mode": "PerPod", "size": "7Gi", "storageClassName": "ssd"},
    }
    kids = by_kind(render_children(make_cr(spec)))
    assert "PersistentVolumeClaim" not in kids  # Kubernetes creates one per pod, owned by it
    ps = kids["Deployment"]["spec"]["template"]["spec"]
    assert ps["volumes"][0] == {
        "name": "model-cache",
        "ephemeral": {
            "volumeClaimTemplate": {
                "metadata": {"labels": {**SELECTOR, "app.kubernetes.io/component": "model-cache"}},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "ssd",
                    "resources": {"requests": {"storage": "7Gi"}},
                },
            }
        },
    }
    for version in ("1.30", "1.37"):
        kubernetes_validate.validate(kids["Deployment"], version, strict=True)


def test_user_env_overrides_operator_env() -> None:
    spec = {"model": {"name": "m"}, "env": [{"name": "LOG_LEVEL", "value": "trace"}]}
    (c,) = by_kind(render_children(make_cr(spec)))["Deployment"]["spec"]["template"]["spec"][
        "containers"
    ]
    names = [e["name"] for e in c["env"]]
    assert names.count("LOG_LEVEL") == 1
    assert {"name": "LOG_LEVEL", "value": "trace"} in c["env"]


def test_image_digest() -> None:
    spec = {"model": {"name": "m"}, "image": {"tag": "sha256:" + "a" * 64}}
    (c,) = by_kind(render_children(make_cr(spec)))["Deployment"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert c["image"] == "ghcr.io/reranker-operator/reranker-server@sha256:" + "a" * 64


def _pod_template(spec: dict[str, Any]) -> dict[str, Any]:
    return by_kind(render_children(make_cr(spec)))["Deployment"]["spec"]["template"]


def test_config_hash_follows_server_settings_only() -> None:
    base = {"model": {"name": "m"}, "autoscaling": {"maxReplicas": 5}}
    h = _pod_template(base)["metadata"]["annotations"]["rerankers.io/config-hash"]
    assert (
        _pod_template(copy.deepcopy(base))["metadata"]["annotations"]["rerankers.io/config-hash"]
        == h
    )
    changed = [
        {**base, "env": [{"name": "X", "value": "1"}]},
        {**base, "model": {"name": "m", "revision": "v2"}},
        {**base, "server": {"maxBatchSize": 4}},
        {**base, "image": {"tag": "9.9.9"}},
        {**base, "hubTokenSecret": {"name": "tok"}},
    ]
    for spec in changed:
        assert _pod_template(spec)["metadata"]["annotations"]["rerankers.io/config-hash"] != h, spec
    same = {**base, "autoscaling": {"maxReplicas": 7}, "service": {"port": 9000}}
    assert _pod_template(same)["metadata"]["annotations"]["rerankers.io/config-hash"] == h


def test_selector_is_stable_across_spec_changes() -> None:
    a = by_kind(render_children(make_cr({"model": {"name": "m"}})))
    b = by_kind(render_children(make_cr(FULL_SPEC)))
    assert a["Deployment"]["spec"]["selector"] == b["Deployment"]["spec"]["selector"]
    assert a["Service"]["spec"]["selector"] == SELECTOR == b["Service"]["spec"]["selector"]
    spec = {"model": {"name": "m"}, "podLabels": {"app.kubernetes.io/instance": "other"}}
    labels = _pod_template(spec)["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "demo"  # operator labels win


def test_service_hpa_pdb_ingress_servicemonitor_content() -> None:
    kids = by_kind(render_children(make_cr(FULL_SPEC)))
    svc = kids["Service"]
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert svc["metadata"]["annotations"] == {"a.example.com/x": "y"}
    hpa = kids["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        },
        {
            "type": "Resource",
            "resource": {
                "name": "memory",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        },
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "reranker_requests_per_second"},
                "target": {"type": "AverageValue", "averageValue": "20"},
            },
        },
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "reranker_request_latency_p95_seconds"},
                "target": {"type": "AverageValue", "averageValue": "500m"},
            },
        },
    ]
    assert hpa["behavior"] == FULL_SPEC["autoscaling"]["behavior"]
    pdb = kids["PodDisruptionBudget"]["spec"]
    assert pdb == {"selector": {"matchLabels": SELECTOR}, "minAvailable": "50%"}
    ing = kids["Ingress"]["spec"]
    assert ing["ingressClassName"] == "nginx"
    assert ing["tls"] == [{"hosts": ["rerank.example.com"], "secretName": "tls"}]
    assert ing["rules"] == [
        {
            "host": "rerank.example.com",
            "http": {
                "paths": [
                    {
                        "path": "/api",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": "demo", "port": {"name": "http"}}},
                    }
                ]
            },
        }
    ]
    assert kids["Ingress"]["metadata"]["annotations"] == {"k": "v"}
    sm = kids["ServiceMonitor"]
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    # the server Service only (never the <name>-proxy name of a KEDA HTTP add-on route)
    assert sm["spec"]["selector"] == {
        "matchLabels": {**SELECTOR, "app.kubernetes.io/component": "server"}
    }
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["ml"]}
    assert sm["spec"]["endpoints"] == [
        {
            "port": "http",
            "path": "/metrics",
            "scheme": "http",
            "interval": "15s",
            "scrapeTimeout": "5s",
        }
    ]
    pvc = kids["PersistentVolumeClaim"]["spec"]
    assert pvc == {
        "accessModes": ["ReadWriteMany"],
        "storageClassName": "fast",
        "resources": {"requests": {"storage": "20Gi"}},
    }


def test_pdb_defaults_to_max_unavailable_one() -> None:
    spec = {"model": {"name": "m"}, "podDisruptionBudget": {"enabled": True}}
    assert (
        by_kind(render_children(make_cr(spec)))["PodDisruptionBudget"]["spec"]["maxUnavailable"]
        == 1
    )


def test_render_is_deterministic() -> None:
    assert render_children(make_cr(FULL_SPEC)) == render_children(make_cr(FULL_SPEC))


def test_service_endpoint() -> None:
    assert (
        parse_service(make_cr({"model": {"name": "m"}})).endpoint
        == "http://demo.ml.svc.cluster.local:8080"
    )
    spec = {"model": {"name": "m"}, "service": {"port": 80}}
    assert (
        parse_service(make_cr(spec, name="rr", namespace="search")).endpoint
        == "http://rr.search.svc.cluster.local:80"
    )


@pytest.mark.parametrize(
    ("cr", "field"),
    [
        (make_cr({"model": {"name": "m"}}, name="Bad_Name"), "metadata.name"),
        (make_cr({"model": {"name": "m"}}, name="9lives"), "metadata.name"),
        (make_cr({"model": {"name": "m"}}, name="a" * 64), "metadata.name"),
        (make_cr({"model": {"name": "m"}}, namespace="No Such"), "metadata.namespace"),
        ({"metadata": {"name": "x"}}, ""),
        ({"spec": {"model": {"name": "m"}}}, "metadata"),
        (make_cr({"model": {"name": "m"}, "replicas": "two"}), "replicas"),
    ],
)
def test_render_rejects_bad_objects(cr: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        render_children(cr)
    assert err.value.field == field


def test_operator_modules_do_not_import_torch() -> None:
    code = (
        "import sys, reranker_operator.render.manifests, reranker_operator.cli, reranker_operator.api.crd;"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_mapping_views_render_like_dicts() -> None:
    from types import MappingProxyType

    def freeze(v: Any) -> Any:
        if isinstance(v, dict):
            return MappingProxyType({k: freeze(x) for k, x in v.items()})
        if isinstance(v, list):
            return tuple(freeze(x) for x in v)
        return v

    cr = make_cr(FULL_SPEC)
    assert render_children(freeze(cr)) == render_children(cr)


def test_kopf_body_renders() -> None:
    kopf = pytest.importorskip("kopf")
    cr = make_cr(FULL_SPEC)
    assert render_children(kopf.Body(copy.deepcopy(cr))) == render_children(cr)


@pytest.mark.parametrize(
    ("cache", "strategy"),
    [
        ({"enabled": True, "size": "1Gi"}, "Recreate"),  # one node at a time: no surge pod
        ({"enabled": True, "size": "1Gi", "accessModes": ["ReadWriteOncePod"]}, "Recreate"),
        ({"enabled": True, "size": "1Gi", "accessModes": ["ReadWriteMany"]}, "RollingUpdate"),
        ({"enabled": True, "mode": "PerPod", "size": "1Gi"}, "RollingUpdate"),
        ({"enabled": False}, "RollingUpdate"),
    ],
)
def test_a_claim_one_node_attaches_rolls_by_recreate(cache: dict, strategy: str) -> None:
    dep = by_kind(render_children(make_cr({"model": {"name": "m"}, "modelCache": cache})))[
        "Deployment"
    ]
    assert dep["spec"]["strategy"]["type"] == strategy
    assert ("rollingUpdate" in dep["spec"]["strategy"]) == (strategy == "RollingUpdate")
    kubernetes_validate.validate(dep, "1.37", strict=True)
