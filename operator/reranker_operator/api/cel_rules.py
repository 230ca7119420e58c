"""Cross-field rules of the spec, each stated once: the CEL the API server evaluates and the
predicate the operator evaluates for specs that never went through an API server.

A spec model lists its rules in `rules`; the CRD generator (reranker_operator.api.crdgen) writes
them as the model's `x-kubernetes-validations`, and `violations` checks them on a parsed spec.
A test evaluates both forms on good and bad specs and requires the same verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Rule:
    """One rule of the object it is attached to (CEL's `self`, the model instance in Python).

    cel: the expression the API server evaluates, on the object after defaulting.
    message: what the API server answers when `cel` is false.
    holds: the same rule over the parsed model; False where `cel` is false.
    field_path: the field blamed, relative to the object (`.maxReplicas`; empty: the object).
    explain: the operator's message for a model that breaks the rule (a function of the model
        where it names the values); `message` when unset.
    """

    cel: str
    message: str
    holds: Callable[[Any], bool]
    field_path: str = ""
    explain: str | Callable[[Any], str] | None = None

    def validation(self) -> dict[str, str]:
        """The rule as one `x-kubernetes-validations` entry."""
        out = {"rule": self.cel, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out

    def describe(self, model: Any) -> str:
        """The operator's message for `model`, which breaks the rule."""
        if callable(self.explain):
            return self.explain(model)
        return self.explain or self.message


def _join(path: str, field_path: str) -> str:
    return f"{path}{field_path}" if path else field_path.removeprefix(".")


def nodes(model: BaseModel, path: str = "") -> Iterator[tuple[str, BaseModel]]:
    """(dotted path, model) of `model` and every model inside it (list items as `name[i]`),
    innermost first, fields in declaration order."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        sub = _join(path, f".{info.alias or name}")
        if isinstance(value, BaseModel):
            yield from nodes(value, sub)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from nodes(item, f"{sub}[{i}]")
    yield path, model


def violations(model: BaseModel) -> Iterator[tuple[str, str]]:
    """(field, message) for every rule a model inside `model` breaks, innermost first."""
    for path, node in nodes(model):
        for rule in getattr(type(node), "rules", ()):
            if not rule.holds(node):
                yield _join(path, rule.field_path), rule.describe(node)
