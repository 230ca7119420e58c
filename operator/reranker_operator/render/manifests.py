"""Render a RerankerService into its child manifests (plain camelCase dicts) via jinja2 templates.

Each child has one template and one params builder (a row of reranker_operator.render.kinds.CHILDREN;
the params dataclasses are in reranker_operator.render.params). Every value reaches a template through the `toyaml` filter (a JSON
flow value), so user input is data and can never add keys, list items or documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2
import yaml

from reranker_operator.render.kinds import ChildKind, children
from reranker_operator.render.service import ParsedService, parse_service
from reranker_operator.render.yamlfilters import toyaml


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """The template environment, loading `reranker_templates` via importlib.resources."""
    root = resources.files("reranker_templates")

    def load(name: str) -> str:
        resource = root.joinpath(name)
        if not resource.is_file():
            raise jinja2.TemplateNotFound(name)
        return resource.read_text(encoding="utf-8")

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["toyaml"] = toyaml
    return env


# libyaml's parser when PyYAML was built with it (the pure-Python one was most of a pass's
# CPU); both resolve with the same SafeLoader rules, and every text a template renders from a
# parsed spec reads the same with either (tests/render compare them).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def render_child(kind: ChildKind, template: str, params: Any) -> dict[str, Any]:
    """One child manifest from its template and params."""
    text = _environment().get_template(template).render(kind=kind, p=params)
    return yaml.load(text, Loader=_LOADER)


def render(svc: ParsedService) -> list[dict[str, Any]]:
    """Every child manifest the parsed RerankerService asks for, in apply order."""
    manifests = []
    for child in children():
        params = child.build(svc)
        if params is not None:
            manifests.append(render_child(child.kind, child.template, params))
    return manifests


def render_children(cr: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every child manifest of the RerankerService object `cr`, in apply order.

    Owner references are set when the CR has a `metadata.uid` (always, from an API server);
    a retained model-cache PVC never gets one. Raises InvalidSpecError naming the bad field.
    """
    return render(parse_service(cr))
