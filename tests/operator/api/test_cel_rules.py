"""The CRD's CEL rules, evaluated with cel-python against good and bad specs (after defaulting),
and compared with parse_spec's verdict on the same specs."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import celpy
import pytest

from render_helpers import FULL_SPEC, example_crs
from reranker_devtools.devcluster.schema import apply_defaults
from reranker_operator.api.spec import InvalidSpecError, parse_spec

M = {"name": "m"}


def rules_by_path(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, rule) for every CEL rule; path parts are property names, '[]' for array items."""
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule
    for name, sub in schema.get("properties", {}).items():
        yield from rules_by_path(sub, f"{path}/{name}")
    if "items" in schema:
        yield from rules_by_path(schema["items"], f"{path}/[]")


def nodes_at(value: Any, path: str) -> Iterator[Any]:
    """Every value at `path` inside `value` (fan out over array items)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        yield value
        return
    head, rest = parts[0], "/".join(parts[1:])
    if head == "[]":
        for item in value if isinstance(value, list) else []:
            yield from nodes_at(item, rest)
    elif isinstance(value, dict) and head in value:
        yield from nodes_at(value[head], rest)


def failing_rules(spec_schema: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """Messages of the CEL rules the defaulted spec violates, as the API server evaluates them."""
    env = celpy.Environment()
    defaulted = apply_defaults(spec_schema, copy.deepcopy(spec))
    failed = []
    for path, rule in rules_by_path(spec_schema):
        program = env.program(env.compile(rule["rule"]))
        for node in nodes_at(defaulted, path):
            result = program.evaluate({"self": celpy.json_to_cel(node)})
            assert isinstance(result, celpy.celtypes.BoolType), (rule["rule"], result)
            if not result:
                failed.append(rule["message"])
    return failed


def test_good_specs_pass_every_rule(spec_schema: dict[str, Any]) -> None:
    specs = [{"model": M}, FULL_SPEC, *(cr["spec"] for cr in example_crs().values())]
    for spec in specs:
        assert failing_rules(spec_schema, spec) == []


CEL_BAD = [
    (
        {"model": M, "autoscaling": {"minReplicas": 4, "maxReplicas": 2}},
        "minReplicas must not exceed",
    ),
    (
        {
            "model": M,
            "replicas": 5,
            "autoscaling": {"enabled": True, "maxReplicas": 4, "targetCPUUtilization": 50},
        },
        "replicas must lie",
    ),
    (
        {"model": M, "replicas": 0, "autoscaling": {"enabled": True, "targetCPUUtilization": 50}},
        "replicas must lie",
    ),
    ({"model": M, "autoscaling": {"enabled": True}}, "needs a target"),
    ({"model": M, "modelCache": {"enabled": True}}, "needs size"),
    ({"model": M, "modelCache": {"existingClaim": "c", "size": "1Gi"}}, "not both"),
    # one ReadWriteOnce claim for replicas that may land on several nodes (issue 19)
    (
        {"model": M, "replicas": 2, "modelCache": {"enabled": True, "size": "1Gi"}},
        "would share one ReadWriteOnce claim",
    ),
    (
        {
            "model": M,
            "replicas": 2,
            "modelCache": {"enabled": True, "size": "1Gi", "accessModes": ["ReadWriteOncePod"]},
        },
        "would share one ReadWriteOnce claim",
    ),
    (
        {
            "model": M,
            "resources": {"gpus": 1},
            "autoscaling": {"enabled": True, "maxReplicas": 4},
            "modelCache": {"enabled": True, "size": "1Gi"},
        },
        "would share one ReadWriteOnce claim",
    ),
    (
        {"model": M, "modelCache": {"enabled": True, "mode": "PerPod", "existingClaim": "c"}},
        "existingClaim is for mode Shared",
    ),
    (
        {
            "model": M,
            "modelCache": {
                "enabled": True,
                "mode": "PerPod",
                "size": "1Gi",
                "retainOnDelete": True,
            },
        },
        "retainOnDelete is for mode Shared",
    ),
    (
        {
            "model": M,
            "modelCache": {"enabled": True, "size": "1Gi", "accessModes": ["ReadOnlyMany"]},
        },
        "init container writes the cache",
    ),
    ({"model": M, "ingress": {"enabled": True}, "networkPolicy": {"enabled": False}}, "needs host"),
    ({"model": {"name": "m", "quantization": "8bit"}}, "needs a GPU (resources.gpus, mig"),
    (
        {"model": {"name": "m", "quantization": "4bit"}, "resources": {"gpus": 0}},
        "needs a GPU (resources.gpus, mig",
    ),
    (
        {"model": M, "podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": "10%"}},
        "either minAvailable",
    ),
    (
        {"model": M, "env": [{"name": "A"}, {"name": "B", "value": "1", "valueFrom": {}}]},
        "either value or valueFrom",
    ),
    (
        {"model": M, "envFrom": [{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]},
        "exactly one",
    ),
    ({"model": M, "envFrom": [{"prefix": "P"}]}, "exactly one"),
    ({"model": M, "metrics": {"dashboard": {"enabled": True, "labels": {}}}}, "needs labels"),
    # one GPU form at a time
    ({"model": M, "resources": {"gpus": 1, "mig": {"profile": "1g.18gb"}}}, "either mig"),
    ({"model": M, "resources": {"gpus": 1, "sharedGpu": {}}}, "drop gpus and mig"),
    ({"model": M, "resources": {"mig": {"profile": "1g.18gb"}, "dra": {}}}, "dra claims"),
    # engine vllm
    ({"model": M, "engine": "vllm"}, "needs a GPU (resources.gpus, mig"),
    (
        {"model": M, "engine": "vllm", "resources": {"sharedGpu": {}}},
        "on a shared GPU needs vllm.gpuMemoryUtilization",
    ),
    (
        {"model": M, "engine": "vllm", "resources": {"gpus": 4}, "vllm": {"tensorParallelSize": 3}},
        "must divide",
    ),
    (
        {
            "model": M,
            "engine": "vllm",
            "resources": {"gpus": 1},
            "vllm": {"extraArgs": ["--max-model-len=4096"]},
        },
        "may not set a flag",
    ),
    (
        {
            "model": M,
            "engine": "vllm",
            "resources": {"gpus": 1},
            "vllm": {"extraArgs": ["--served-model-name", "x"]},
        },
        "may not set a flag",
    ),
    (
        {
            "model": M,
            "engine": "vllm",
            "resources": {"gpus": 1},
            "vllm": {"maxModelLen": 4096, "maxNumBatchedTokens": 2048},
        },
        "at least maxModelLen",
    ),
    (
        {
            "model": {"name": "m", "maxLength": 9000},
            "engine": "vllm",
            "resources": {"gpus": 1},
            "vllm": {"maxNumBatchedTokens": 8192},
        },
        "at least the model length",
    ),
    (
        {
            "model": {"name": "m", "quantization": "8bit"},
            "engine": "vllm",
            "resources": {"gpus": 1},
        },
        "is for engine transformers",
    ),
    (
        {
            "model": M,
            "engine": "vllm",
            "resources": {"gpus": 1},
            "vllm": {"front": False},
            "autoscaling": {"enabled": True, "requestsPerSecond": 5},
        },
        "bare vLLM (vllm.front false) scales on",
    ),
    (
        {
            "model": M,
            "engine": "vllm",
            "resources": {"gpus": 1},
            "vllm": {"front": False},
            "server": {"auth": {"rateLimit": {"requestsPerMinute": 300}}},
        },
        "takes one API key",
    ),
    # keda
    (
        {
            "model": M,
            "autoscaling": {"enabled": True, "keda": {"enabled": True}},
            "metrics": {"serviceMonitor": {"enabled": True}},
        },
        "needs prometheusAddress",
    ),
    (
        {
            "model": M,
            "autoscaling": {
                "enabled": True,
                "keda": {"enabled": True, "prometheusAddress": "http://p:9090"},
            },
        },
        "needs metrics.serviceMonitor",
    ),
    (
        {"model": M, "ingress": {"enabled": True, "host": "a.example.com"}},
        "needs ingressControllerNamespaceLabels",
    ),
    (
        {
            "model": M,
            "autoscaling": {
                "enabled": False,
                "keda": {"enabled": True, "prometheusAddress": "http://p:9090"},
            },
        },
        "keda needs",
    ),
    (
        {
            "model": M,
            "autoscaling": {
                "enabled": True,
                "keda": {"scaleToZero": True, "prometheusAddress": "http://p:9090"},
            },
            "resources": {"gpus": 1},
        },
        "scaleToZero needs",
    ),
    (
        {
            "model": M,
            "replicas": 0,
            "resources": {"gpus": 1},
            "metrics": {"serviceMonitor": {"enabled": True}},
            "autoscaling": {
                "enabled": True,
                "keda": {"enabled": True, "prometheusAddress": "http://p:9090"},
            },
        },
        "replicas must lie",
    ),
    # request limits
    (
        {"model": M, "server": {"maxRequestTokens": 500000, "maxQueuedTokens": 400000}},
        "maxQueuedTokens must be at least maxRequestTokens",
    ),
    ({"model": M, "server": {"maxRequestTokens": 2000000}}, "maxQueuedTokens must be at least"),
    # access
    ({"model": M, "server": {"metricsPort": 8080}}, "must differ"),
    (
        {
            "model": M,
            "server": {"auth": {"jwt": {"jwks": {"secretName": "a", "configMapName": "b"}}}},
        },
        "exactly one",
    ),
    ({"model": M, "networkPolicy": {"allowFrom": [{}]}}, "needs namespaceLabels or podLabels"),
]


@pytest.mark.parametrize(("spec", "message"), CEL_BAD)
def test_bad_specs_fail_exactly_one_rule_and_parse_spec(spec_schema, spec, message) -> None:
    failed = failing_rules(spec_schema, spec)
    assert len(failed) == 1 and message in failed[0], failed
    with pytest.raises(InvalidSpecError):
        parse_spec(spec)


CEL_GOOD_EDGES = [
    {
        "model": M,
        "replicas": 0,
        "resources": {"gpus": 1},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "autoscaling": {
            "enabled": True,
            "keda": {"enabled": True, "scaleToZero": True, "prometheusAddress": "http://p:9090"},
        },
    },
    {"model": M, "resources": {"gpus": 1}, "autoscaling": {"enabled": True}},
    {
        "model": M,
        "engine": "vllm",
        "resources": {"gpus": 4},
        "vllm": {
            "tensorParallelSize": 2,
            "extraArgs": ["--quantization=fp8", "--config-format=auto"],
        },
    },
    {"model": M, "engine": "vllm", "resources": {"gpus": 1}, "vllm": {"maxNumBatchedTokens": 8192}},
    {
        "model": M,
        "replicas": 4,
        "autoscaling": {
            "enabled": True,
            "minReplicas": 4,
            "maxReplicas": 4,
            "p95LatencySeconds": "1",
        },
    },
    {"model": M, "replicas": 9, "autoscaling": {"enabled": False, "maxReplicas": 2}},
    {"model": M, "modelCache": {"enabled": True, "existingClaim": "shared"}},
    {"model": M, "modelCache": {"enabled": False, "size": "1Gi"}},
    # a shared claim is fine for one pod, across nodes when RWX/ROX, never checked for an
    # existingClaim (its access modes are read at reconcile time), and per pod always
    {"model": M, "replicas": 1, "modelCache": {"enabled": True, "size": "1Gi"}},
    {
        "model": M,
        "replicas": 3,
        "autoscaling": {"enabled": False, "maxReplicas": 4},
        "modelCache": {"enabled": True, "size": "1Gi", "accessModes": ["ReadWriteMany"]},
    },
    {
        "model": M,
        "resources": {"gpus": 1},
        "autoscaling": {"enabled": True, "maxReplicas": 1},
        "modelCache": {"enabled": True, "size": "1Gi"},
    },
    {"model": M, "replicas": 3, "modelCache": {"enabled": True, "existingClaim": "c"}},
    {"model": M, "replicas": 3, "modelCache": {"enabled": True, "mode": "PerPod", "size": "1Gi"}},
    {"model": M, "replicas": 3, "modelCache": {"enabled": False, "size": "1Gi"}},
    {
        "model": M,
        "modelCache": {
            "enabled": True,
            "size": "1Gi",
            "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
        },
    },
    {"model": {"name": "m", "quantization": "4bit"}, "resources": {"gpus": 1}},
    {"model": M, "ingress": {"enabled": False, "className": "nginx"}},
    {"model": M, "podDisruptionBudget": {"enabled": True, "maxUnavailable": "10%"}},
    {"model": M, "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
    {"model": M, "metrics": {"dashboard": {"enabled": False, "labels": {}}}},
    {"model": M, "metrics": {"dashboard": {"enabled": True}}},
    {"model": M, "server": {"maxRequestTokens": 400000, "maxQueuedTokens": 400000}},
]


@pytest.mark.parametrize("spec", CEL_GOOD_EDGES)
def test_edge_specs_pass_both(spec_schema: dict[str, Any], spec: dict[str, Any]) -> None:
    assert failing_rules(spec_schema, spec) == []
    parse_spec(spec)
