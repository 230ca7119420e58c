"""docs/reference.md is generated from the CRD and must not drift from it."""

from __future__ import annotations

from render_helpers import REPO
from reranker_operator.crdschema import openapi_schema
from reranker_operator.docgen import generate


def test_committed_reference_equals_generated_output() -> None:
    committed = (REPO / "docs" / "reference.md").read_text()
    assert committed == generate(), "run: python -m reranker_operator.docgen > docs/reference.md"


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
