"""parse_spec: defaults equal to the CRD's, bounds and enums agreeing with it, clear errors."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import jsonschema
import pytest

from render_helpers import FULL_SPEC, example_crs
from reranker_devtools.devcluster.schema import apply_defaults
from reranker_operator.api.checks import duration_seconds
from reranker_operator.api.quantity import parse_quantity
from reranker_operator.api.spec import InvalidSpecError, parse_spec

MINIMAL = {"model": {"name": "BAAI/bge-reranker-base"}}


def prune_empty(value: Any) -> Any:
    """Drop empty maps and lists (the CRD leaves them unset, the models default them to empty)."""
    if isinstance(value, dict):
        out = {k: prune_empty(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [prune_empty(v) for v in value]
    return value


@pytest.mark.parametrize(
    "spec",
    [
        MINIMAL,
        # optional objects present, so the defaults nested inside them apply too
        {
            "model": {"name": "m"},
            "hubTokenSecret": {"name": "hf"},
            "server": {"apiKeySecret": {"name": "k"}},
            "resources": {"requests": {"memory": "1Gi"}},
            "metrics": {},
            "autoscaling": {"behavior": {"scaleUp": {}}},
        },
    ],
)
def test_model_defaults_equal_crd_defaults(spec_schema: dict[str, Any], spec: dict) -> None:
    by_crd = apply_defaults(spec_schema, copy.deepcopy(spec))
    by_model = parse_spec(spec).model_dump(by_alias=True, exclude_none=True)
    assert prune_empty(by_model) == prune_empty(by_crd)


def test_minimal_spec_defaults() -> None:
    s = parse_spec(MINIMAL)
    assert (s.replicas, s.resources.gpus, s.service.port, s.service.type) == (
        1,
        0,
        8080,
        "ClusterIP",
    )
    assert not (s.autoscaling.enabled or s.ingress.enabled or s.model_cache.enabled)


def _bound_cases(spec_schema: dict[str, Any]) -> list[tuple[list[str], Any]]:
    """(path, value) pairs just outside every numeric bound and enum of non-array spec fields."""
    cases = []

    def visit(node: dict[str, Any], path: list[str]) -> None:
        for name, sub in node.get("properties", {}).items():
            p = [*path, name]
            if sub.get("type") == "object":
                visit(sub, p)
            elif sub.get("type") in ("integer", "number"):
                if "minimum" in sub:
                    cases.append((p, sub["minimum"] - 1))
                if "maximum" in sub:
                    cases.append((p, sub["maximum"] + 1))
                cases.append((p, "7"))  # a string is never a number
            elif "enum" in sub:
                cases.append((p, "not-" + str(sub["enum"][0])))
            elif sub.get("type") == "boolean":
                cases.append((p, "true"))

    visit(spec_schema, [])
    return cases


def _with(spec: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    node = out
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if part in ("hubTokenSecret", "apiKeySecret", "apiKeysSecret"):
            node.setdefault("name", "secret")
        if part == "jwt":
            node.setdefault("jwks", {"secretName": "jwks"})
    node[path[-1]] = value
    return out


def test_bounds_and_enums_agree_with_crd(spec_schema: dict[str, Any]) -> None:
    cases = _bound_cases(spec_schema)
    assert len(cases) > 40
    base = {"model": {"name": "m"}, "resources": {"gpus": 1}}
    for path, value in cases:
        spec = _with(base, path, value)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(spec, spec_schema)
        with pytest.raises(InvalidSpecError) as err:
            parse_spec(spec)
        assert err.value.field == ".".join(path), (path, value, err.value)


# One valid item of every list field of the spec.
_POLICY = {"type": "Pods", "value": 1, "periodSeconds": 60}
LIST_ITEMS = {
    "image.pullSecrets": "regcred",
    "tolerations": {"operator": "Exists"},
    "env": {"name": "A"},
    "envFrom": {"secretRef": {"name": "s"}},
    "modelCache.accessModes": "ReadWriteOnce",
    "autoscaling.behavior.scaleUp.policies": _POLICY,
    "autoscaling.behavior.scaleDown.policies": _POLICY,
    "autoscaling.keda.interceptor.hosts": "rerank.example.com",
    "vllm.extraArgs": "--quantization=fp8",
    "server.auth.jwt.algorithms": "ES256",
    "server.auth.rateLimit.trustedProxies": "10.0.0.0/8",
    "networkPolicy.allowFrom": {"podLabels": {"app": "rag"}},
    "resources.dra.selectors": "device.attributes['gpu.nvidia.com'].type == 'mig'",
    # probe names are unique: the i-th item is named after i
    "scoreCheck.probes": lambda i: {"name": f"p{i}", "query": "q", "documents": ["a", "b"]},
}


def _items(path: str, count: int) -> list[Any]:
    item = LIST_ITEMS[path]
    return [item(i) if callable(item) else copy.deepcopy(item) for i in range(count)]


def test_list_lengths_agree_with_crd(spec_schema: dict[str, Any]) -> None:
    bounds = {}

    def visit(node: dict[str, Any], path: list[str]) -> None:
        for name, sub in node.get("properties", {}).items():
            if sub.get("type") == "object":
                visit(sub, [*path, name])
            elif sub.get("type") == "array":
                bounds[".".join([*path, name])] = (sub.get("minItems", 0), sub["maxItems"])

    visit(spec_schema, [])
    assert set(bounds) == set(LIST_ITEMS)
    base = {"model": {"name": "m"}}
    for path, (low, high) in bounds.items():
        for count, ok in ((low, True), (high, True), (low - 1, False), (high + 1, False)):
            if count < 0:
                continue
            spec = _with(base, path.split("."), _items(path, count))
            if ok:
                jsonschema.validate(spec, spec_schema)
                parse_spec(spec)
                continue
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(spec, spec_schema)
            with pytest.raises(InvalidSpecError) as err:
                parse_spec(spec)
            assert err.value.field == path, (path, count, err.value)


def test_enum_values_of_crd_are_accepted(spec_schema: dict[str, Any]) -> None:
    base = {"model": {"name": "m"}, "resources": {"gpus": 1}}
    checked = 0

    def visit(node: dict[str, Any], path: list[str]) -> None:
        nonlocal checked
        for name, sub in node.get("properties", {}).items():
            if sub.get("type") == "object":
                visit(sub, [*path, name])
            elif "enum" in sub:
                for value in sub["enum"]:
                    parse_spec(_with(base, [*path, name], value))
                    checked += 1

    visit(spec_schema, [])
    assert checked > 20


def test_examples_validate_against_crd_and_parse(spec_schema: dict[str, Any], root_schema) -> None:
    crs = example_crs()
    assert set(crs) == {
        "qwen3-reranker-0.6b.yaml",
        "qwen3-reranker-8b.yaml",
        "bge-reranker-cpu.yaml",
        "ingress-with-api-key.yaml",
        "qwen3-reranker-0.6b-keda.yaml",
        "qwen3-reranker-8b-vllm.yaml",
        "bge-reranker-vllm.yaml",
        "qwen3-reranker-0.6b-mig.yaml",
        "qwen3-reranker-0.6b-dra.yaml",
        "qwen3-reranker-0.6b-score-check.yaml",
    }
    for cr in crs.values():
        jsonschema.validate(cr, root_schema)
        jsonschema.validate(apply_defaults(spec_schema, cr["spec"]), spec_schema)
        parse_spec(cr["spec"])


def test_full_spec_is_valid(root_schema: dict[str, Any]) -> None:
    jsonschema.validate({"spec": FULL_SPEC}, root_schema)
    parse_spec(FULL_SPEC)


BAD_SPECS = [
    ({}, "model", "required"),
    ({"model": {"name": ""}}, "model.name", "at least 1"),
    ({"model": {"name": "m", "famliy": "auto"}}, "model.famliy", "Extra inputs"),
    ({"model": {"name": "m"}, "replicas": -1}, "replicas", "greater than or equal"),
    ({"model": {"name": "m"}, "replicas": True}, "replicas", "integer"),
    (
        {"model": {"name": "m"}, "autoscaling": {"minReplicas": 4, "maxReplicas": 2}},
        "autoscaling.maxReplicas",
        "minReplicas",
    ),
    (
        {
            "model": {"name": "m"},
            "replicas": 5,
            "autoscaling": {"enabled": True, "maxReplicas": 4, "targetCPUUtilization": 50},
        },
        "replicas",
        "outside",
    ),
    ({"model": {"name": "m"}, "autoscaling": {"enabled": True}}, "autoscaling", "at least one"),
    (
        {"model": {"name": "m"}, "autoscaling": {"enabled": True, "requestsPerSecond": "0"}},
        "autoscaling.requestsPerSecond",
        "> 0",
    ),
    (
        {
            "model": {"name": "m"},
            "resources": {"requests": {"memory": "1Gi"}},
            "autoscaling": {"enabled": True, "targetCPUUtilization": 50},
        },
        "resources.requests.cpu",
        "CPU request",
    ),
    ({"model": {"name": "m"}, "modelCache": {"enabled": True}}, "modelCache.size", "needs size"),
    (
        {"model": {"name": "m"}, "modelCache": {"existingClaim": "c", "size": "1Gi"}},
        "modelCache.size",
        "not both",
    ),
    (
        {"model": {"name": "m"}, "modelCache": {"enabled": True, "size": "lots"}},
        "modelCache.size",
        "quantity",
    ),
    (
        {"model": {"name": "m"}, "replicas": 3, "modelCache": {"enabled": True, "size": "1Gi"}},
        "modelCache.accessModes",
        "up to 3 replicas would share one ReadWriteOnce claim",
    ),
    (
        {
            "model": {"name": "m"},
            "modelCache": {"enabled": True, "mode": "PerPod", "existingClaim": "c"},
        },
        "modelCache.existingClaim",
        "mode PerPod",
    ),
    ({"model": {"name": "m"}, "ingress": {"enabled": True}}, "ingress.host", "required"),
    (
        {"model": {"name": "m"}, "ingress": {"enabled": True, "host": "Bad Host"}},
        "ingress.host",
        "pattern",
    ),
    ({"model": {"name": "m", "quantization": "4bit"}}, "model.quantization", "gpus"),
    (
        {"model": {"name": "m"}, "podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}},
        "podDisruptionBudget.maxUnavailable",
        "either",
    ),
    (
        {"model": {"name": "m"}, "podDisruptionBudget": {"minAvailable": "half"}},
        "podDisruptionBudget.minAvailable",
        "percentage",
    ),
    (
        {
            "model": {"name": "m"},
            "resources": {"requests": {"memory": "8Gi"}, "limits": {"memory": "4Gi"}},
        },
        "resources.limits.memory",
        "below",
    ),
    (
        {"model": {"name": "m"}, "resources": {"requests": {"cpu": "1500m"}, "limits": {"cpu": 1}}},
        "resources.limits.cpu",
        "below",
    ),
    (
        {
            "model": {"name": "m"},
            "metrics": {"serviceMonitor": {"interval": "10s", "scrapeTimeout": "1m"}},
        },
        "metrics.serviceMonitor.scrapeTimeout",
        "longer",
    ),
    (
        {"model": {"name": "m"}, "metrics": {"serviceMonitor": {"interval": "soon"}}},
        "metrics.serviceMonitor.interval",
        "pattern",
    ),
    ({"model": {"name": "m"}, "podLabels": {"team": "a b"}}, "podLabels", "label value"),
    ({"model": {"name": "m"}, "nodeSelector": {"-bad": "x"}}, "nodeSelector", "label key"),
    (
        {"model": {"name": "m"}, "env": [{"name": "A", "value": "1", "valueFrom": {}}]},
        "env[0].valueFrom",
        "either",
    ),
    ({"model": {"name": "m"}, "env": [{"name": "1=2"}]}, "env[0].name", "pattern"),
    ({"model": {"name": "m"}, "envFrom": [{"prefix": "X"}]}, "envFrom[0]", "exactly one"),
    (
        {"model": {"name": "m"}, "tolerations": [{"operator": "Maybe"}]},
        "tolerations[0].operator",
        "Exists",
    ),
    (
        {"model": {"name": "m"}, "image": {"pullSecrets": ["Bad_Name"]}},
        "image.pullSecrets[0]",
        "Secret name",
    ),
    (
        {"model": {"name": "m"}, "hubTokenSecret": {"key": "token"}},
        "hubTokenSecret.name",
        "required",
    ),
    ({"model": {"name": "m"}, "affinity": ["zone-a"]}, "affinity", "dictionary"),
    (
        {"model": {"name": "m"}, "tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
        "tolerations[0].value",
        "empty",
    ),
    (
        {"model": {"name": "m"}, "service": {"annotations": {"bad key!": "v"}}},
        "service.annotations",
        "annotation key",
    ),
]


@pytest.mark.parametrize(("spec", "field", "words"), BAD_SPECS)
def test_bad_specs_name_the_field(spec: dict, field: str, words: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        parse_spec(spec)
    assert err.value.field == field
    assert words.lower() in err.value.message.lower()
    assert str(err.value).startswith(f"spec.{field}: ")


def test_non_mapping_spec_is_rejected() -> None:
    with pytest.raises(InvalidSpecError):
        parse_spec(["model"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("4Gi", Decimal(4 * 1024**3)),
        ("1.5G", Decimal(1_500_000_000)),
        ("1e3", Decimal(1000)),
        ("128974848", Decimal(128974848)),
        ("129e6", Decimal(129_000_000)),
        ("123Mi", Decimal(123 * 1024 * 1024)),
        (".5", Decimal("0.5")),
        ("100u", Decimal("0.0001")),
        ("3k", Decimal(3000)),
    ],
)
def test_parse_quantity(text: str, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("text", ["", "1.2.3", "4GB", "-1", "1 Gi", "Gi", "0x10"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m30s", 90), ("2h", 7200), ("500ms", 0.5), ("1h1m1s1ms", 3661.001)],
)
def test_duration_seconds(text: str, seconds: float) -> None:
    assert duration_seconds(text) == pytest.approx(seconds)
