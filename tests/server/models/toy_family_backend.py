"""A toy third model family, stated the way a real one is: one module that registers it.

`test_family_registry.py` lists this module in `FAMILY_MODULES` and checks the server loads, detects
and serves the family with nothing else changed (the enum value is the test's own)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from reranker_server.models.cross_encoder import CrossEncoderBackend
from reranker_server.models.families import BackendSettings, Family, architectures, register


class ToyFamily(StrEnum):
    """Stands in for the value a real family adds to ModelFamily."""

    TOY = "toy-classifier"


TOY_ARCHITECTURE = "ToyForRanking"


class ToyBackend(CrossEncoderBackend):
    """A one-label classifier under another family name."""

    family = ToyFamily.TOY  # type: ignore[assignment]


def is_toy(config: Any, tokenizer: Any) -> bool:
    return TOY_ARCHITECTURE in architectures(config)


def _build(model: Any, tokenizer: Any, settings: BackendSettings) -> ToyBackend:
    return ToyBackend(
        model, tokenizer, model_name=settings.model_name, max_length=settings.max_length
    )


register(Family(ToyFamily.TOY, "AutoModelForSequenceClassification", is_toy, _build))
