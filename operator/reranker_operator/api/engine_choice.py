"""`spec.engine`: which registered engine (reranker_operator.engines) the Deployment runs, and
the spec's rules with each engine's checks in their places."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

from reranker_operator.api.cel_rules import Rule
from reranker_operator.engines import engine_names, registered
from reranker_operator.engines.base import CheckPlace


def _registered(name: str) -> str:
    names = engine_names()
    if name not in names:
        choices = " or ".join(", ".join(repr(n) for n in names).rsplit(", ", 1))
        raise ValueError(f"Input should be {choices}")
    return name


# A registered engine's name; the CRD enumerates the engines registered when it is generated.
EngineName = Annotated[
    str,
    AfterValidator(_registered),
    WithJsonSchema({"enum": list(engine_names()), "type": "string"}),
]

ENGINE_DESCRIPTION = "; ".join(f"{e.name}: {e.summary}" for e in registered()) + "."


class SpecRules:
    """A model's `rules`: its own rules with, at each CheckPlace, every registered engine's
    checks there (read on each access, so an engine registered later takes part)."""

    def __init__(self, *parts: Iterable[Rule] | CheckPlace) -> None:
        self._parts = parts

    def __get__(self, instance: object, owner: type | None = None) -> tuple[Rule, ...]:
        rules: list[Rule] = []
        for part in self._parts:
            if isinstance(part, CheckPlace):
                rules += [rule for engine in registered() for rule in engine.rules(part)]
            else:
                rules += part
        return tuple(rules)
