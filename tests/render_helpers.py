"""Shared data of the render tests: the example RerankerServices and a spec using every field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SHARED_SCHEMAS = REPO.parent / "shared" / "schemas"


def example_crs() -> dict[str, dict[str, Any]]:
    """Every RerankerService document under examples/, by file name."""
    out = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "RerankerService":
                out[path.name] = doc
    return out


def make_cr(
    spec: dict[str, Any],
    name: str = "demo",
    namespace: str = "ml",
    uid: str | None = "0b7c4c1e-1111-4222-8333-944445555666",
) -> dict[str, Any]:
    """A RerankerService object as an API server would hand it to the operator."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if uid:
        meta["uid"] = uid
    return {
        "apiVersion": "rerankers.io/v1alpha1",
        "kind": "RerankerService",
        "metadata": meta,
        "spec": copy.deepcopy(spec),
    }


# A spec that switches every optional child on, so one render exercises every template.
FULL_SPEC: dict[str, Any] = {
    "model": {
        "name": "Qwen/Qwen3-Reranker-0.6B",
        "revision": "v1",
        "servedName": "qwen3",
        "family": "qwen3-causal",
        "instruction": "Find passages",
        "maxLength": 4096,
        "dtype": "float16",
        "quantization": "8bit",
        "trustRemoteCode": True,
    },
    "image": {
        "repository": "registry.example.com/rr",
        "tag": "1.2.3",
        "pullPolicy": "Always",
        "pullSecrets": ["regcred"],
    },
    "replicas": 2,
    "resources": {
        "gpus": 2,
        "requests": {"cpu": "2", "memory": "8Gi"},
        "limits": {"cpu": 4, "memory": "16Gi"},
    },
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["23000"]}
                        ]
                    }
                ]
            }
        }
    },
    "priorityClassName": "high",
    "runtimeClassName": "nvidia",
    "env": [
        {"name": "EXTRA", "value": "1"},
        {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ],
    "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "X_"}, {"secretRef": {"name": "sec"}}],
    "modelCache": {
        "enabled": True,
        "size": "20Gi",
        "storageClassName": "fast",
        "accessModes": ["ReadWriteMany"],
        "retainOnDelete": False,
    },
    "hubTokenSecret": {"name": "hf-token"},
    "service": {"type": "LoadBalancer", "port": 80, "annotations": {"a.example.com/x": "y"}},
    "autoscaling": {
        "enabled": True,
        "minReplicas": 2,
        "maxReplicas": 6,
        "targetCPUUtilization": 70,
        "targetMemoryUtilization": 80,
        "requestsPerSecond": "20",
        "p95LatencySeconds": "500m",
        "behavior": {
            "scaleDown": {
                "stabilizationWindowSeconds": 300,
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
            },
            "scaleUp": {"selectPolicy": "Max"},
        },
    },
    "metrics": {
        "serviceMonitor": {
            "enabled": True,
            "interval": "15s",
            "scrapeTimeout": "5s",
            "labels": {"release": "prometheus"},
        },
        "prometheusRule": {
            "enabled": True,
            "labels": {"release": "prometheus"},
            "errorRateThreshold": 0.02,
            "p95LatencySeconds": 0.75,
            "for": "10m",
            "queueRejectionsPerSecond": 0.5,
        },
        "dashboard": {
            "enabled": True,
            "labels": {"grafana_dashboard": "1", "team": "ml"},
            "folder": "Search / Rerankers",
        },
    },
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "host": "rerank.example.com",
        "path": "/api",
        "tlsSecretName": "tls",
        "annotations": {"k": "v"},
    },
    "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"},
    "networkPolicy": {
        "allowFrom": [{"namespaceLabels": {"team": "search"}}, {"podLabels": {"app": "rag"}}],
        "ingressControllerNamespaceLabels": {"kubernetes.io/metadata.name": "ingress-nginx"},
    },
    "server": {
        "maxBatchTokens": 8192,
        "maxBatchSize": 8,
        "maxClientBatchSize": 100,
        "maxConcurrentRequests": 10,
        "apiKeySecret": {"name": "api"},
        "logLevel": "debug",
    },
    "podAnnotations": {"team": "search"},
    "podLabels": {"team": "search"},
}


def python_patterns(node: Any) -> Any:
    """The schema with Go's `^(?i)...` patterns spelled `(?i)^...` (Python wants flags first)."""
    if isinstance(node, dict):
        out = {k: python_patterns(v) for k, v in node.items()}
        pattern = out.get("pattern")
        if isinstance(pattern, str) and pattern.startswith("^(?i)"):
            out["pattern"] = "(?i)^" + pattern[len("^(?i)") :]
        return out
    if isinstance(node, list):
        return [python_patterns(v) for v in node]
    return node


def prometheus_operator_schema(plural: str) -> dict[str, Any]:
    """The v1 openAPIV3Schema of a prometheus-operator CRD from shared/schemas (skip if absent)."""
    path = SHARED_SCHEMAS / "prometheus-operator" / f"monitoring.coreos.com_{plural}.yaml"
    if not path.exists():
        pytest.skip(f"{path} not present (shared/ beside the clone)")
    crd = yaml.safe_load(path.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return python_patterns(version["schema"]["openAPIV3Schema"])


def keda_schema(file_name: str, version: str) -> dict[str, Any]:
    """The openAPIV3Schema of a KEDA (or HTTP add-on) CRD from shared/schemas/keda."""
    path = SHARED_SCHEMAS / "keda" / file_name
    if not path.exists():
        pytest.skip(f"{path} not present (shared/ beside the clone)")
    crd = yaml.safe_load(path.read_text())
    (found,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return python_patterns(found["schema"]["openAPIV3Schema"])


# Every KEDA field the operator renders, on: a ScaledObject with each trigger, the
# InterceptorRoute and the <name>-proxy Service.
KEDA_SPEC: dict[str, Any] = {
    "model": {"name": "Qwen/Qwen3-Reranker-0.6B"},
    "replicas": 0,
    "resources": {"gpus": 1, "requests": {"cpu": "2", "memory": "8Gi"}},
    "autoscaling": {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 5,
        "targetCPUUtilization": 80,
        "targetMemoryUtilization": 85,
        "queuedPairsPerPod": 64,
        "queuedTokensPerPod": "20k",
        "requestsPerSecond": "20",
        "p95LatencySeconds": "500m",
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        "keda": {
            "enabled": True,
            "scaleToZero": True,
            "prometheusAddress": "http://prometheus-operated.monitoring:9090",
            "authenticationRef": "prometheus-auth",
            "activationThreshold": "1",
            "pollingInterval": 10,
            "cooldownPeriod": 600,
            "interceptor": {
                "hosts": ["rerank.example.com"],
                "targetConcurrency": 4,
                "readinessTimeout": "15m",
            },
        },
    },
    "metrics": {"serviceMonitor": {"enabled": True}},
}
VLLM_SPEC: dict[str, Any] = {
    "model": {
        "name": "Qwen/Qwen3-Reranker-8B",
        "instruction": "Find the passage",
        "dtype": "bfloat16",
        "servedName": "qwen3-8b",
    },
    "engine": "vllm",
    "resources": {"gpus": 4},
    "vllm": {
        "tensorParallelSize": 2,
        "gpuMemoryUtilization": 0.95,
        "maxModelLen": 32768,
        "maxNumSeqs": 128,
        "maxNumBatchedTokens": 65536,
        "extraArgs": ["--seed=1"],
    },
    "server": {"apiKeySecret": {"name": "vllm-key"}},
    "modelCache": {"enabled": True, "size": "40Gi", "accessModes": ["ReadWriteMany"]},
    "hubTokenSecret": {"name": "hf"},
    "autoscaling": {"enabled": True, "maxReplicas": 4, "queuedPairsPerPod": 256},
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    },
}
