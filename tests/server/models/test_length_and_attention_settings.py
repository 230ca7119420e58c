"""What docs/reference.md says of model.maxLength and model.attentionImplementation is what the
server does: unset, the sequence limit is the model's own limit capped at
DEFAULTS.max_sequence_length (the description names that number), and the attention kernel the
resource names is the one the loaded model runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from reranker_contract import DEFAULTS
from reranker_operator.api.spec import ModelSpec
from reranker_server.app import settings_loader
from reranker_server.config import Settings


def _backend(model: Path, **settings: object):
    return settings_loader(Settings(model=str(model), device="cpu", dtype="float32", **settings))()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def long_context_qwen3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3 reranker whose own limit (max_position_embeddings) is past the cap."""
    from reranker_devtools.tiny_models import build_qwen3_reranker

    return build_qwen3_reranker(
        tmp_path_factory.mktemp("long-qwen3"),
        max_position_embeddings=4 * DEFAULTS.max_sequence_length,
    )


def test_the_description_states_the_cap() -> None:
    text = ModelSpec.model_fields["max_length"].description or ""
    assert f"model's limit capped at {DEFAULTS.max_sequence_length}" in text
    assert "engine vllm takes the model's own limit" in text


def test_unset_length_is_the_models_limit_capped(
    long_context_qwen3: Path, tiny_qwen3_path: Path
) -> None:
    assert _backend(long_context_qwen3).max_length == DEFAULTS.max_sequence_length
    assert _backend(tiny_qwen3_path).max_length == 4096  # its own limit, under the cap
    # set: the resource's number, still at most the model's limit
    longer = 2 * DEFAULTS.max_sequence_length
    assert _backend(long_context_qwen3, max_sequence_length=longer).max_length == longer
    assert _backend(tiny_qwen3_path, max_sequence_length=longer).max_length == 4096


@pytest.mark.parametrize("kernel", ["sdpa", "eager"])
def test_the_attention_kernel_is_the_models(tiny_cross_encoder_path: Path, kernel: str) -> None:
    backend = _backend(tiny_cross_encoder_path, attn_implementation=kernel)
    assert backend.model.config._attn_implementation == kernel
