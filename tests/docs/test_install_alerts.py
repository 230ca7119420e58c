"""docs/install.md lists every alert the operator renders, for both engines, and no other: each
example is rendered with its PrometheusRule switched on, and the alert table is compared with the
alerts in those PrometheusRules."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from reranker_operator.render.manifests import render_children

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "docs" / "install.md"


def _examples() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((REPO / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "RerankerService":
                out[path.name] = doc
    return out


def _rendered_alerts(cr: dict[str, Any]) -> set[str]:
    cr = copy.deepcopy(cr)
    metrics = cr["spec"].setdefault("metrics", {})
    metrics["prometheusRule"] = {**metrics.get("prometheusRule", {}), "enabled": True}
    rules = [c for c in render_children(cr) if c["kind"] == "PrometheusRule"]
    assert len(rules) == 1, cr["metadata"]["name"]
    return {r["alert"] for g in rules[0]["spec"]["groups"] for r in g["rules"]}


def _documented_alerts() -> set[str]:
    """The alert names in the first column of install.md's alert table."""
    text = INSTALL.read_text()
    return set(re.findall(r"^\s*\| `(Reranker[A-Za-z0-9]+)` \|", text, re.M))


def test_every_rendered_alert_is_documented_and_every_documented_one_rendered() -> None:
    examples = _examples()
    engines = {doc["spec"].get("engine", "transformers") for doc in examples.values()}
    assert engines == {"transformers", "vllm"}  # both engines' alerts are covered
    by_example = {name: _rendered_alerts(doc) for name, doc in examples.items()}
    rendered = set().union(*by_example.values())
    documented = _documented_alerts()
    missing = {n: sorted(a - documented) for n, a in by_example.items() if a - documented}
    assert missing == {}, f"rendered for these examples, not in docs/install.md: {missing}"
    assert documented - rendered == set(), "docs/install.md lists alerts no example renders"
