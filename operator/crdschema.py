"""The shipped RerankerService CRD and its openAPIV3Schema, loaded from the package data."""

from __future__ import annotations

import copy
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

CRD_FILE = "rerankerservices.yaml"


@lru_cache(maxsize=1)
def _crd_text() -> str:
    return resources.files("reranker_operator.crds").joinpath(CRD_FILE).read_text("utf-8")


def load_crd() -> dict[str, Any]:
    """A fresh copy of the CustomResourceDefinition as a dict."""
    return yaml.safe_load(_crd_text())


def crd_yaml() -> str:
    """The CRD file's text, as shipped (for `kubectl apply -f -`)."""
    return _crd_text()


def openapi_schema(crd: dict[str, Any] | None = None) -> dict[str, Any]:
    """The openAPIV3Schema of the (single) served version."""
    crd = crd or load_crd()
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return version["schema"]["openAPIV3Schema"]


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """`value` with the schema's defaults filled in, the way the API server defaults objects.

    A missing property with a `default` gets a deep copy of it; defaults are then applied inside
    it too. Array items get their item schema's defaults.
    """
    if isinstance(value, dict) and schema.get("type") == "object":
        out = dict(value)
        for name, sub in schema.get("properties", {}).items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(sub, out[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in set(out) - set(schema.get("properties", {})):
                out[name] = apply_defaults(extra, out[name])
        return out
    if isinstance(value, list) and schema.get("type") == "array" and "items" in schema:
        return [apply_defaults(schema["items"], v) for v in value]
    return value
