"""The operator's family registry: an entry for every ModelFamily, spec.model.family's values
from it (auto first, as the CRD states them), and what a spec's family implies."""

from __future__ import annotations

from typing import Any

import pytest

from reranker_contract import FAMILIES, ModelFamily
from reranker_operator.api.families import (
    AUTO,
    FAMILY_DESCRIPTION,
    FAMILY_TRAITS,
    is_yes_no_causal,
    known_family,
)
from reranker_operator.api.spec import ModelSpec


def test_every_model_family_has_traits():
    assert list(FAMILY_TRAITS) == list(ModelFamily)
    for family in ModelFamily:
        assert f"{family} {FAMILY_TRAITS[family].scoring}" in FAMILY_DESCRIPTION


def test_the_crd_allows_auto_then_each_family(spec_schema: dict[str, Any]):
    family = spec_schema["properties"]["model"]["properties"]["family"]
    assert family["enum"] == [AUTO, *FAMILIES] and family["default"] == AUTO
    assert family["description"] == FAMILY_DESCRIPTION
    with pytest.raises(ValueError, match="family"):
        ModelSpec.model_validate({"name": "m", "family": "toy"})


@pytest.mark.parametrize(
    ("name", "family", "known", "causal"),
    [
        ("Qwen/Qwen3-Reranker-0.6B", AUTO, ModelFamily.QWEN3_CAUSAL, True),
        ("/models/qwen3-reranker-4b", AUTO, ModelFamily.QWEN3_CAUSAL, True),
        ("BAAI/bge-reranker-v2-m3", AUTO, None, False),
        ("/m", "qwen3-causal", ModelFamily.QWEN3_CAUSAL, True),
        ("Qwen/Qwen3-Reranker-0.6B", "cross-encoder", ModelFamily.CROSS_ENCODER, False),
    ],
)
def test_what_a_spec_family_implies(name: str, family: str, known, causal: bool):
    assert known_family(family, name) is known
    assert is_yes_no_causal(family, name) is causal
    assert ModelSpec.model_validate({"name": name, "family": family}).is_causal() is causal
