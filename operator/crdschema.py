"""The shipped RerankerService CRD and its openAPIV3Schema, loaded from the package data."""

from __future__ import annotations

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
