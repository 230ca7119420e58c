"""The RerankerService CRD and its openAPIV3Schema, built from the spec models (`crdgen`).

crds/rerankerservices.yaml is the same text, written by `make generate` (a test compares them)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import yaml

from reranker_operator.api.crdgen import crd_yaml as generated_crd_yaml


@lru_cache(maxsize=1)
def _crd_text() -> str:
    return generated_crd_yaml()


def load_crd() -> dict[str, Any]:
    """A fresh copy of the CustomResourceDefinition as a dict."""
    return yaml.safe_load(_crd_text())


def crd_yaml() -> str:
    """The CRD's text, as crds/rerankerservices.yaml has it (for `kubectl apply -f -`)."""
    return _crd_text()


def openapi_schema(crd: dict[str, Any] | None = None) -> dict[str, Any]:
    """The openAPIV3Schema of the (single) served version."""
    crd = crd or load_crd()
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return version["schema"]["openAPIV3Schema"]
