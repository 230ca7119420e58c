"""Each cross-field Rule of the spec models is stated once and means the same in both forms: its
CEL, evaluated as the API server does (on the defaulted object), and its Python predicate give
the same verdict on every spec below, and every rule is seen both holding and broken."""

from __future__ import annotations

import copy
import re
import typing
from collections.abc import Iterator
from typing import Any

import celpy
import pytest
from pydantic import BaseModel

from render_helpers import FULL_SPEC, example_crs
from reranker_devtools.devcluster.schema import apply_defaults
from reranker_operator.api.cel_rules import Rule, nodes
from reranker_operator.api.spec import InvalidSpecError, RerankerServiceSpec, parse_spec

M = {"name": "m"}
ON = {"enabled": True}

# Specs the schema accepts, each holding or breaking some rules (together: every rule both ways).
SPECS: list[dict[str, Any]] = [
    {"model": M},
    FULL_SPEC,
    *(cr["spec"] for cr in example_crs().values()),
    # replicas within [minReplicas, maxReplicas] while autoscaling
    {
        "model": M,
        "replicas": 5,
        "autoscaling": {**ON, "maxReplicas": 4, "targetCPUUtilization": 50},
    },
    {"model": M, "replicas": 0, "autoscaling": {**ON, "targetCPUUtilization": 50}},
    {
        "model": M,
        "replicas": 4,
        "autoscaling": {**ON, "minReplicas": 4, "maxReplicas": 4, "p95LatencySeconds": "1"},
    },
    {"model": M, "replicas": 9, "autoscaling": {"maxReplicas": 2, "minReplicas": 1}},
    # quantization needs a GPU
    {"model": {"name": "m", "quantization": "8bit"}},
    {"model": {"name": "m", "quantization": "4bit"}, "resources": {"gpus": 0}},
    {"model": {"name": "m", "quantization": "4bit"}, "resources": {"gpus": 1}},
    # the GPU comes one way: whole GPUs, a MIG slice, a shared GPU or a DRA claim
    {"model": {"name": "m", "quantization": "4bit"}, "resources": {"mig": {"profile": "1g.18gb"}}},
    {"model": M, "resources": {"gpus": 1, "mig": {"profile": "1g.18gb"}}},
    {"model": M, "resources": {"sharedGpu": {}}},
    {"model": M, "resources": {"mig": {"profile": "2g.35gb"}, "sharedGpu": {}}},
    {"model": M, "resources": {"gpus": 2, "sharedGpu": {"resourceName": "example.com/gpu-share"}}},
    {"model": M, "resources": {"dra": {"minMemory": "16Gi"}}},
    {"model": M, "resources": {"gpus": 1, "dra": {}}},
    {"model": M, "resources": {"sharedGpu": {}, "dra": {"migProfile": "1g.18gb"}}},
    {"model": M, "engine": "vllm", "resources": {"dra": {"deviceClassName": "gpu.example.com"}}},
    # utilization targets need requests
    {
        "model": M,
        "resources": {"requests": {"memory": "1Gi"}},
        "autoscaling": {**ON, "targetCPUUtilization": 50},
    },
    {
        "model": M,
        "resources": {"requests": {"cpu": "1"}},
        "autoscaling": {**ON, "targetMemoryUtilization": 80},
    },
    {
        "model": M,
        "resources": {"requests": {"cpu": "1"}},
        "autoscaling": {"targetMemoryUtilization": 80, "targetCPUUtilization": 50},
    },
    {"model": M, "resources": {"requests": {}}, "autoscaling": {**ON, "requestsPerSecond": 5}},
    # tolerations
    {"model": M, "tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
    {
        "model": M,
        "tolerations": [
            {"operator": "Exists"},
            {"operator": "Exists", "value": ""},
            {"key": "k", "operator": "Equal", "value": "v"},
            {"key": "k", "value": "v"},
        ],
    },
    # env and envFrom
    {"model": M, "env": [{"name": "A"}, {"name": "B", "value": "1", "valueFrom": {}}]},
    {"model": M, "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
    {"model": M, "envFrom": [{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]},
    {"model": M, "envFrom": [{"prefix": "P"}, {"secretRef": {"name": "b"}}]},
    # model cache
    {"model": M, "modelCache": ON},
    {"model": M, "modelCache": {"existingClaim": "c", "size": "1Gi"}},
    {"model": M, "modelCache": {**ON, "existingClaim": "shared"}},
    {"model": M, "modelCache": {"enabled": False, "size": "1Gi"}},
    {"model": M, "replicas": 2, "modelCache": {**ON, "size": "1Gi"}},
    {
        "model": M,
        "replicas": 2,
        "modelCache": {**ON, "size": "1Gi", "accessModes": ["ReadWriteMany"]},
    },
    {
        "model": M,
        "autoscaling": {**ON, "maxReplicas": 2, "targetCPUUtilization": 50},
        "resources": {"requests": {"cpu": "1"}},
        "modelCache": {**ON, "size": "1Gi"},
    },
    {"model": M, "modelCache": {**ON, "mode": "PerPod", "existingClaim": "c"}},
    {"model": M, "modelCache": {**ON, "mode": "PerPod", "size": "1Gi", "retainOnDelete": True}},
    {"model": M, "modelCache": {**ON, "size": "1Gi", "accessModes": ["ReadOnlyMany"]}},
    # autoscaling
    {"model": M, "autoscaling": {"minReplicas": 4, "maxReplicas": 2}},
    {"model": M, "autoscaling": ON},
    # dashboard, ingress, disruption budget
    {"model": M, "metrics": {"dashboard": {**ON, "labels": {}}}},
    {"model": M, "metrics": {"dashboard": {"enabled": False, "labels": {}}}},
    {"model": M, "metrics": {"dashboard": ON}},
    {"model": M, "ingress": ON},
    {"model": M, "ingress": {"enabled": False, "className": "nginx"}},
    {"model": M, "podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": "10%"}},
    {"model": M, "podDisruptionBudget": {**ON, "maxUnavailable": "10%"}},
    # engine vllm
    {"model": M, "engine": "vllm"},
    {"model": M, "engine": "vllm", "resources": {"gpus": 4}, "vllm": {"tensorParallelSize": 3}},
    {"model": M, "engine": "vllm", "resources": {"gpus": 4}, "vllm": {"tensorParallelSize": 2}},
    {"model": M, "engine": "transformers", "vllm": {"tensorParallelSize": 3}},
    {"model": M, "engine": "vllm", "resources": {"sharedGpu": {}}},
    {
        "model": M,
        "engine": "vllm",
        "resources": {"sharedGpu": {}},
        "vllm": {"gpuMemoryUtilization": 0.2},
    },
    {
        "model": M,
        "engine": "vllm",
        "resources": {"gpus": 1},
        "vllm": {"extraArgs": ["--dtype=half", "--quantization", "fp8"]},
    },
    {
        "model": M,
        "engine": "vllm",
        "resources": {"gpus": 1},
        "vllm": {"maxModelLen": 4096, "maxNumBatchedTokens": 2048},
    },
    {
        "model": M,
        "engine": "vllm",
        "resources": {"gpus": 1},
        "vllm": {"maxModelLen": 4096, "maxNumBatchedTokens": 4096},
    },
    {
        "model": {"name": "m", "maxLength": 9000},
        "engine": "vllm",
        "resources": {"gpus": 1},
        "vllm": {"maxNumBatchedTokens": 8192},
    },
    {"model": M, "engine": "vllm", "resources": {"gpus": 1}, "vllm": {"maxNumBatchedTokens": 8192}},
    {
        "model": {"name": "m", "maxLength": 9000},
        "engine": "vllm",
        "resources": {"gpus": 1},
        "vllm": {"maxNumBatchedTokens": 9000},
    },
    # long documents chunked: the bundled server's, also as vLLM's front; bare vLLM refuses it
    {"model": M, "engine": "vllm", "resources": {"gpus": 1}, "server": {"longDocuments": "chunk"}},
    {
        "model": M,
        "engine": "vllm",
        "resources": {"gpus": 1},
        "vllm": {"front": False},
        "server": {"longDocuments": "chunk"},
    },
    {"model": M, "server": {"longDocuments": "chunk"}},
    # bundled-server scoring options: refused with vllm; flash attention needs a GPU
    {
        "model": {"name": "m", "attentionImplementation": "eager"},
        "engine": "vllm",
        "resources": {"gpus": 1},
    },
    {"model": {"name": "m", "attentionImplementation": "eager"}},
    {"model": M, "server": {"compileKernels": True}},
    {"model": M, "server": {"compileKernels": True}, "resources": {"gpus": 1}},
    {"model": M, "server": {"compileKernels": False}, "resources": {"gpus": 1}},
    {"model": M, "engine": "vllm", "resources": {"gpus": 1}, "server": {"compileKernels": True}},
    {"model": {"name": "m", "attentionImplementation": "flash_attention_2"}},
    {
        "model": {"name": "m", "attentionImplementation": "flash_attention_2"},
        "resources": {"gpus": 1},
    },
    {"model": M, "engine": "vllm", "resources": {"gpus": 1}, "server": {"scoreCache": ON}},
    # bare vLLM (vllm.front false) has none of the front's features
    {
        "model": M,
        "engine": "vllm",
        "resources": {"gpus": 1},
        "vllm": {"front": False},
        "server": {"scoreCache": ON, "auth": {"jwt": {"jwks": {"configMapName": "jwks"}}}},
        "autoscaling": {**ON, "queuedTokensPerPod": 5000},
    },
    {
        "model": M,
        "engine": "vllm",
        "resources": {"gpus": 1},
        "server": {"scoreCache": {"enabled": False, "size": 10}},
    },
    {"model": M, "server": {"scoreCache": {**ON, "size": 10}}},
    {"model": {"name": "m", "quantization": "8bit"}, "engine": "vllm", "resources": {"gpus": 1}},
    {
        "model": M,
        "engine": "vllm",
        "resources": {"gpus": 1},
        "autoscaling": {**ON, "queuedTokensPerPod": 5000},
    },
    {
        "model": M,
        "engine": "vllm",
        "resources": {"gpus": 1},
        "autoscaling": {**ON, "queuedPairsPerPod": 64},
    },
    {
        "model": M,
        "engine": "vllm",
        "resources": {"gpus": 1},
        "server": {"auth": {"jwt": {"jwks": {"configMapName": "jwks"}}}},
    },
    {
        "model": M,
        "engine": "vllm",
        "resources": {"gpus": 1},
        "server": {"auth": {"rateLimit": {"pairsPerMinute": 0}}, "apiKeySecret": {"name": "k"}},
    },
    {
        "model": M,
        "engine": "vllm",
        "resources": {"gpus": 1},
        "server": {"auth": {"rateLimit": {"tokensPerMinute": 100000}}},
    },
    # queued-work targets and KEDA
    {"model": M, "resources": {"gpus": 1}, "autoscaling": ON},
    {"model": M, "autoscaling": {**ON, "queuedPairsPerPod": "100"}},
    {"model": M, "autoscaling": {**ON, "keda": ON}},
    {"model": M, "autoscaling": {"keda": {**ON, "prometheusAddress": "http://p:9090"}}},
    {
        "model": M,
        "autoscaling": {**ON, "keda": {"scaleToZero": True, "prometheusAddress": "http://p:9090"}},
    },
    {
        "model": M,
        "replicas": 0,
        "autoscaling": {**ON, "keda": {**ON, "scaleToZero": True, "prometheusAddress": "http://p"}},
    },
    {
        "model": M,
        "replicas": 0,
        "autoscaling": {**ON, "keda": {**ON, "prometheusAddress": "http://p"}},
    },
    # request limits: a pod queues at least one largest request
    {"model": M, "server": {"maxRequestTokens": 500000, "maxQueuedTokens": 400000}},
    {"model": M, "server": {"maxRequestTokens": 400000, "maxQueuedTokens": 400000}},
    # access
    {"model": M, "server": {"metricsPort": 8080}},
    {"model": M, "server": {"metricsPort": 9090, "auth": {"jwt": {"jwks": {"secretName": "s"}}}}},
    {"model": M, "server": {"auth": {"jwt": {"jwks": {"secretName": "a", "configMapName": "b"}}}}},
    {"model": M, "networkPolicy": {"allowFrom": [{}, {"podLabels": {"app": "rag"}}]}},
    {"model": M, "ingress": {**ON, "host": "a.example.com"}},
    {"model": M, "ingress": {**ON, "host": "a.example.com"}, "networkPolicy": {"enabled": False}},
    {
        "model": M,
        "ingress": {**ON, "host": "a.example.com"},
        "networkPolicy": {"ingressControllerNamespaceLabels": {"team": "edge"}},
    },
    {
        "model": M,
        "autoscaling": {**ON, "keda": {**ON, "prometheusAddress": "http://p"}},
        "metrics": {"serviceMonitor": ON},
    },
    # score-check probes: unique names, indexes within the documents, one score per document
    *(
        {"model": M, "scoreCheck": {"probes": probes}}
        for probes in (
            [
                {"name": "a", "query": "q", "documents": ["x", "y", "z"]},
                {
                    "name": "b",
                    "query": "q",
                    "documents": ["x", "y", "z"],
                    "expect": {"top": 2, "order": [2, 0], "scores": [0.1, 0.2, 0.9]},
                },
            ],
            [{"name": "a", "query": "q", "documents": ["x", "y"]}] * 2,
            [{"name": "a", "query": "q", "documents": ["x", "y"], "expect": {"top": 2}}],
            [{"name": "a", "query": "q", "documents": ["x", "y"], "expect": {"order": [1, 2]}}],
            [{"name": "a", "query": "q", "documents": ["x", "y"], "expect": {"order": [1, 1]}}],
            [
                {
                    "name": "a",
                    "query": "q",
                    "documents": ["x", "y", "z"],
                    "expect": {"scores": [0, 1]},
                }
            ],
            [{"name": "a", "query": "q", "documents": ["x", "y"], "expect": {"tolerance": 0.1}}],
            [
                {
                    "name": "a",
                    "query": "q",
                    "documents": ["x", "y"],
                    "expect": {"scores": [0, 1], "tolerance": 0.1},
                }
            ],
        )
    ),
]

_ENV = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}


def spec_models() -> list[type[BaseModel]]:
    """Every model reachable from RerankerServiceSpec through its fields' annotations."""
    seen: list[type[BaseModel]] = []
    todo: list[Any] = [RerankerServiceSpec]
    while todo:
        node = todo.pop()
        if isinstance(node, type) and issubclass(node, BaseModel):
            if node in seen:
                continue
            seen.append(node)
            todo += [f.annotation for f in node.model_fields.values()]
        else:
            todo += list(typing.get_args(node))
    return seen


def all_rules() -> list[Rule]:
    """Every Rule of every spec model (a model inheriting its parent's rules adds none)."""
    out = []
    for cls in spec_models():
        if "rules" in vars(cls):
            out += list(cls.rules)
    return out


def cel_holds(rule: Rule, node: Any) -> bool:
    """The rule's CEL on one object of the (defaulted) spec, as the API server evaluates it."""
    if rule.cel not in _PROGRAMS:
        _PROGRAMS[rule.cel] = _ENV.program(_ENV.compile(rule.cel))
    result = _PROGRAMS[rule.cel].evaluate({"self": celpy.json_to_cel(node)})
    assert isinstance(result, celpy.celtypes.BoolType), (rule.cel, result)
    return bool(result)


def at(value: Any, path: str) -> Any:
    """The value at a dotted path such as `env[1]` or `metrics.dashboard`; None when absent."""
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        if index:
            value = value[int(index)] if isinstance(value, list) else None
        else:
            value = value.get(name) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def verdicts(
    spec_schema: dict[str, Any], spec: dict[str, Any]
) -> Iterator[tuple[Rule, str, bool, bool | None]]:
    """(rule, object path, Python verdict, CEL verdict or None where the object is absent) for
    every rule of every object of `spec`."""
    parsed = RerankerServiceSpec.model_validate(copy.deepcopy(spec))
    defaulted = apply_defaults(spec_schema, copy.deepcopy(spec))
    for path, model in nodes(parsed):
        for rule in type(model).rules:
            node = at(defaulted, path) if path else defaulted
            yield rule, path, rule.holds(model), None if node is None else cel_holds(rule, node)


def test_every_rule_is_in_the_crd_once(root_schema: dict[str, Any]) -> None:
    def validations(node: dict[str, Any]) -> Iterator[dict[str, str]]:
        yield from node.get("x-kubernetes-validations", [])
        for sub in node.get("properties", {}).values():
            yield from validations(sub)
        if isinstance(node.get("items"), dict):
            yield from validations(node["items"])

    in_crd = sorted(map(repr, validations(root_schema["properties"]["spec"])))
    rules = all_rules()
    assert len(rules) >= 14
    assert in_crd == sorted(repr(rule.validation()) for rule in rules)


@pytest.mark.parametrize("spec", SPECS, ids=range(len(SPECS)))
def test_cel_and_python_agree(spec_schema: dict[str, Any], spec: dict[str, Any]) -> None:
    broken = []
    for rule, path, python, cel in verdicts(spec_schema, spec):
        # An absent object is not validated by the API server, so its default must pass.
        assert python == (True if cel is None else cel), (path, rule.cel, python, cel)
        if not python:
            broken.append(f"{path}{rule.field_path}".lstrip("."))
    if broken:
        with pytest.raises(InvalidSpecError) as err:
            parse_spec(spec)
        assert err.value.field == broken[0]
    else:
        parse_spec(spec)


def test_the_specs_see_every_rule_hold_and_break(spec_schema: dict[str, Any]) -> None:
    seen: dict[str, set[bool]] = {rule.cel: set() for rule in all_rules()}
    for spec in SPECS:
        for rule, _path, python, cel in verdicts(spec_schema, spec):
            if cel is not None:
                seen[rule.cel].add(python)
    assert {cel: found for cel, found in seen.items() if found != {True, False}} == {}
