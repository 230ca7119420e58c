"""The CRD file: identity, subresources, printer columns, and a structural openAPIV3Schema."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest

from reranker_operator.api.constants import (
    CRD_GROUP,
    CRD_KIND,
    CRD_PLURAL,
    CRD_SHORT_NAMES,
    CRD_VERSION,
)

ALLOWED_KEYS = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "default",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "minProperties",
    "format",
    "anyOf",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}
TYPES = {"object", "array", "string", "integer", "number", "boolean"}
PY_TYPES = {"string": str, "integer": int, "boolean": bool, "number": (int, float)}


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its dotted path."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def test_identity_matches_constants(crd: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{CRD_PLURAL}.{CRD_GROUP}"
    spec = crd["spec"]
    assert spec["group"] == CRD_GROUP and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == CRD_KIND and spec["names"]["plural"] == CRD_PLURAL
    assert spec["names"]["shortNames"] == list(CRD_SHORT_NAMES)
    assert [v["name"] for v in spec["versions"]] == [CRD_VERSION]
    assert spec["versions"][0]["served"] and spec["versions"][0]["storage"]


def test_status_and_scale_subresources(crd: dict[str, Any], root_schema: dict[str, Any]) -> None:
    sub = crd["spec"]["versions"][0]["subresources"]
    assert sub["status"] == {}
    assert sub["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    status = root_schema["properties"]["status"]["properties"]
    assert status["replicas"]["type"] == "integer" and status["selector"]["type"] == "string"
    assert root_schema["properties"]["spec"]["properties"]["replicas"]["type"] == "integer"


def _resolve(root: dict[str, Any], json_path: str) -> dict[str, Any]:
    node = root
    for part in re.sub(r"\[.*?\]", "", json_path).lstrip(".").split("."):
        node = node["items"] if node.get("type") == "array" else node
        node = node["properties"][part]
    return node


def test_printer_columns_point_at_schema_fields(
    crd: dict[str, Any], root_schema: dict[str, Any]
) -> None:
    cols = {c["name"]: c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert list(cols)[:5] == ["Model", "Replicas", "Ready", "Endpoint", "Age"]
    assert {n for n, c in cols.items() if c.get("priority") == 1} == {
        "Engine",
        "DType",
        "GPUs",
        "Autoscaling",
        "Reason",
    }
    assert cols["Age"]["jsonPath"] == ".metadata.creationTimestamp"
    assert cols["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    for name, col in cols.items():
        if name == "Age":
            continue
        node = _resolve(root_schema, col["jsonPath"])
        assert node["type"] == col["type"], name


def test_schema_is_structural(root_schema: dict[str, Any]) -> None:
    problems = []
    for path, node in walk(root_schema):
        where = path or "<root>"
        unknown = set(node) - ALLOWED_KEYS
        if unknown:
            problems.append(f"{where}: unknown keywords {sorted(unknown)}")
        if node.get("x-kubernetes-int-or-string"):
            if node.get("anyOf") != [{"type": "integer"}, {"type": "string"}] or "type" in node:
                problems.append(
                    f"{where}: int-or-string must be anyOf [integer, string] without type"
                )
        elif node.get("type") not in TYPES:
            problems.append(f"{where}: missing or bad type {node.get('type')!r}")
        elif "anyOf" in node:
            problems.append(f"{where}: anyOf only allowed for int-or-string")
        if node.get("type") == "array" and "items" not in node:
            problems.append(f"{where}: array without items")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{where}: both properties and additionalProperties")
        if node.get("x-kubernetes-preserve-unknown-fields") and node.get("type") != "object":
            problems.append(f"{where}: preserve-unknown-fields on a non-object")
        missing = set(node.get("required", [])) - set(node.get("properties", {}))
        if missing:
            problems.append(f"{where}: required names unknown properties {sorted(missing)}")
        if path != ".metadata" and not node.get("description", "").strip():
            problems.append(f"{where}: no description")
        if "pattern" in node:
            re.compile(node["pattern"])
        for value in node.get("enum", []):
            if not isinstance(value, PY_TYPES[node["type"]]):
                problems.append(f"{where}: enum value {value!r} is not a {node['type']}")
        if node.get("x-kubernetes-list-type") == "map":
            keys = set(node["x-kubernetes-list-map-keys"])
            if not keys <= set(node["items"].get("required", [])):
                problems.append(f"{where}: list-map keys must be required")
    assert problems == []


def test_every_default_satisfies_its_own_schema(root_schema: dict[str, Any]) -> None:
    defaults = [(p, n) for p, n in walk(root_schema) if "default" in n]
    assert len(defaults) > 30
    for path, node in defaults:
        jsonschema.Draft7Validator(node).validate(node["default"]), path


def test_metadata_is_a_plain_object(root_schema: dict[str, Any]) -> None:
    # The API server rejects CRDs that constrain metadata beyond name/generateName.
    assert root_schema["properties"]["metadata"] == {"type": "object"}


def test_cel_rules_are_well_formed_and_compile(root_schema: dict[str, Any]) -> None:
    env = celpy.Environment()
    rules = [(p, r) for p, n in walk(root_schema) for r in n.get("x-kubernetes-validations", [])]
    assert len(rules) >= 9
    for path, rule in rules:
        assert set(rule) <= {"rule", "message", "fieldPath", "reason"}, path
        assert rule["message"].strip(), path
        env.compile(rule["rule"])  # raises on a syntax error
        if "fieldPath" in rule:
            node = _resolve(root_schema, f"{path}{rule['fieldPath']}")
            assert node, path


@pytest.mark.parametrize(
    "field",
    [
        "model",
        "image",
        "replicas",
        "resources",
        "nodeSelector",
        "tolerations",
        "affinity",
        "priorityClassName",
        "runtimeClassName",
        "env",
        "envFrom",
        "modelCache",
        "hubTokenSecret",
        "service",
        "autoscaling",
        "metrics",
        "ingress",
        "podDisruptionBudget",
        "server",
        "podAnnotations",
        "podLabels",
    ],
)
def test_spec_has_field(spec_schema: dict[str, Any], field: str) -> None:
    assert field in spec_schema["properties"]


@pytest.mark.parametrize("version", ["1.30", "1.37"])
def test_crd_object_validates_as_a_customresourcedefinition(
    crd: dict[str, Any], version: str
) -> None:
    kubernetes_validate.validate(crd, version, strict=True)
