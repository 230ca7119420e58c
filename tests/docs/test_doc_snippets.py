"""Every RerankerService snippet in the README and docs/ is a spec the operator accepts (a
fragment gets a model name when it leaves it out) and renders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from reranker_operator.render.manifests import render_children

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _snippets() -> list[tuple[str, dict]]:
    out = []
    for page in PAGES:
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S)):
            for doc in yaml.safe_load_all(block):
                if (
                    isinstance(doc, dict)
                    and "spec" in doc
                    and doc.get("kind", "RerankerService") == "RerankerService"
                ):
                    out.append((f"{page.name}#{i}", doc))
    return out


SNIPPETS = _snippets()


def test_the_pages_have_snippets() -> None:
    assert len(SNIPPETS) >= 8, [name for name, _ in SNIPPETS]


@pytest.mark.parametrize(("name", "doc"), SNIPPETS, ids=[n for n, _ in SNIPPETS])
def test_a_snippet_is_a_spec_the_operator_renders(name: str, doc: dict) -> None:
    spec = dict(doc["spec"])
    spec.setdefault("model", {"name": "Qwen/Qwen3-Reranker-0.6B"})
    cr = {
        "apiVersion": "rerankers.io/v1alpha1",
        "kind": "RerankerService",
        "metadata": {"name": "snippet", "namespace": "default"},
        "spec": spec,
    }
    assert render_children(cr)
