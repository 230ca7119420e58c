"""The model families the server loads, each stated by its own backend module.

A family's module (`causal.py`, `cross_encoder.py`) builds its `Family` and registers it in one
line, `register(Family(...))`; `FAMILY_MODULES` names those modules, imported on first lookup
(they import torch). Adding a family: a `ModelFamily` value in the contract, its module here, and
its name in `FAMILY_MODULES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reranker_contract import ModelFamily
from reranker_server.contracts import ModelBackend

# the modules that register a family
FAMILY_MODULES = ("reranker_server.models.causal", "reranker_server.models.cross_encoder")


@dataclass(frozen=True)
class BackendSettings:
    """What every backend is built with, besides the model and its tokenizer."""

    model_name: str  # the served name
    max_length: int  # at most this many tokens per sequence (the model's limit may be lower)
    default_instruction: str | None = None  # instruction-aware families: when a request has none


@dataclass(frozen=True)
class Family:
    """One model family as the server loads it."""

    name: ModelFamily
    auto_class: str  # the transformers Auto class its weights load with
    # (config, tokenizer) -> whether an auto-detected model is of this family (no two families
    # claim one model); raises ModelLoadError naming `model_family` when the model is of this
    # family's kind but unusable
    detects: Callable[[Any, Any], bool]
    build: Callable[[Any, Any, BackendSettings], ModelBackend]  # (model, tokenizer, settings)


_registered: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add `family` to the registry (a family module's one line)."""
    _registered[family.name] = family
    return family


def registered() -> dict[str, Family]:
    """Every family by name (the family modules imported first): ModelFamily's in its order,
    then any other in registration order."""
    for module in FAMILY_MODULES:
        importlib.import_module(module)
    rank = {family: i for i, family in enumerate(ModelFamily)}
    ordered = sorted(_registered.values(), key=lambda family: rank.get(family.name, len(rank)))
    return {family.name: family for family in ordered}


def architectures(config: Any) -> list[str]:
    """The model classes a config names (empty when it names none)."""
    return list(getattr(config, "architectures", None) or [])
