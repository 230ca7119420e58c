"""docs/reference.md is generated from the CRD and must not drift from it."""

from __future__ import annotations

from reranker_devtools.docgen import generate
from reranker_operator.api.crd import openapi_schema


def test_every_generated_file_equals_its_source() -> None:
    """docs/reference.md, deploy/'s CRD copy and the adapter rules are written by `make generate`."""
    from reranker_devtools.generate import stale

    assert stale() == [], "run: make generate"


def test_reference_lists_every_spec_field() -> None:
    text = generate()

    def paths(schema: dict, prefix: str):
        for name, sub in schema.get("properties", {}).items():
            path = f"{prefix}.{name}"
            yield path
            target = sub.get("items", sub) if sub.get("type") == "array" else sub
            yield from paths(target, path + ("[]" if sub.get("type") == "array" else ""))

    all_paths = list(paths(openapi_schema()["properties"]["spec"], "spec"))
    assert len(all_paths) > 80
    for path in all_paths:
        assert f"| `{path}` |" in text, path
