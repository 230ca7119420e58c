"""The base of every RerankerService spec model, and the error a rejected spec raises."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from reranker_operator.api.cel_rules import Rule


class InvalidSpecError(ValueError):
    """A spec the operator rejects; `field` is a dotted path such as `autoscaling.maxReplicas`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"spec.{field}: {message}" if field else f"spec: {message}")
        self.field = field
        self.message = message


class SpecModel(BaseModel):
    """Base of the spec models: camelCase names, no unknown fields, no type coercion."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=True,
        protected_namespaces=(),
    )
    # Cross-field rules of this object (its `x-kubernetes-validations` in the CRD).
    rules: ClassVar[tuple[Rule, ...]] = ()
