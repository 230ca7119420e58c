"""Fixtures of the API tests: the CRD and its schemas."""

from __future__ import annotations

from typing import Any

import pytest

from reranker_operator.api.crd import load_crd, openapi_schema


@pytest.fixture(scope="session")
def crd() -> dict[str, Any]:
    return load_crd()


@pytest.fixture(scope="session")
def root_schema(crd: dict[str, Any]) -> dict[str, Any]:
    return openapi_schema(crd)


@pytest.fixture(scope="session")
def spec_schema(root_schema: dict[str, Any]) -> dict[str, Any]:
    return root_schema["properties"]["spec"]
