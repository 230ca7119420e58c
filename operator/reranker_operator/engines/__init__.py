"""The inference engines a RerankerService's Deployment can run: the registry, one line each.

Each entry names the module whose `ENGINE` implements reranker_operator.engines.base.Engine;
the modules are imported on first use, and the order is spec.engine's (its default first).
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reranker_operator.engines.base import Engine

ENGINES: dict[str, str] = {
    "transformers": "reranker_operator.engines.transformers",
    "vllm": "reranker_operator.engines.vllm",
}
DEFAULT_ENGINE = next(iter(ENGINES))  # spec.engine's default


@cache
def _load(module: str) -> Engine:
    return import_module(module).ENGINE


def engine(name: str) -> Engine:
    """The engine spec.engine `name` names; KeyError for one not registered."""
    return _load(ENGINES[name])


def engine_names() -> tuple[str, ...]:
    """The registered engines' names, the default first."""
    return tuple(ENGINES)


def registered() -> tuple[Engine, ...]:
    """Every registered engine, in the registry's order."""
    return tuple(engine(name) for name in ENGINES)
