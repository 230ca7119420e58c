"""The model families as the operator sees them: what each one implies for what it renders.

The server reads the model's config to tell a family (`reranker_server.models.families`); the
operator cannot, so with `spec.model.family: auto` it goes by the model's name. Adding a family:
a `ModelFamily` value in the contract and its entry in `FAMILY_TRAITS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reranker_contract import FAMILIES, ModelFamily

AUTO = "auto"  # spec.model.family: the server detects the family from the model's config
# spec.model.family's values, auto first (the CRD's enum)
FamilyChoice = Literal[(AUTO, *FAMILIES)]  # type: ignore[valid-type]


@dataclass(frozen=True)
class FamilyTraits:
    """What a model family implies for the rendered children."""

    scoring: str  # how it scores a pair, after its name in spec.model.family's description
    # a causal LM scored by its yes/no logits: one prompt prefix per request that its documents
    # share (prefix reuse, vLLM's prefix cache and chunked prefill), vLLM's yes/no
    # sequence-classification overrides and score template
    yes_no_causal: bool
    # with family auto, a model name containing one of these (any case) is taken for this family
    name_markers: tuple[str, ...] = ()


FAMILY_TRAITS: dict[ModelFamily, FamilyTraits] = {
    ModelFamily.QWEN3_CAUSAL: FamilyTraits(
        scoring="scores logit(yes) - logit(no) of a causal LM",
        yes_no_causal=True,
        name_markers=("qwen3-reranker",),
    ),
    ModelFamily.CROSS_ENCODER: FamilyTraits(
        scoring="uses a sequence-classification head", yes_no_causal=False
    ),
}

FAMILY_DESCRIPTION = (
    f"Scoring method. {AUTO} detects it from the model config; "
    + "; ".join(f"{family} {FAMILY_TRAITS[family].scoring}" for family in ModelFamily)
    + "."
)


def known_family(family: str, model_name: str) -> ModelFamily | None:
    """The family `family` names, else (auto) the one `model_name` marks; None when only the
    model's config can tell (the server's detection)."""
    if family != AUTO:
        return ModelFamily(family)
    name = model_name.lower()
    for candidate in ModelFamily:
        if any(marker in name for marker in FAMILY_TRAITS[candidate].name_markers):
            return candidate
    return None


def is_yes_no_causal(family: str, model_name: str) -> bool:
    """Whether the model is known to be of a yes/no causal family (see `known_family`)."""
    known = known_family(family, model_name)
    return known is not None and FAMILY_TRAITS[known].yes_no_causal
