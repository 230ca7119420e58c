"""Tiny models in the shapes vLLM's CPU build accepts, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from vllm_helpers import CROSS_SHAPE, QWEN3_SHAPE


@pytest.fixture(scope="session")
def vllm_qwen3_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reranker_devtools.tiny_models import build_qwen3_reranker

    return build_qwen3_reranker(tmp_path_factory.mktemp("vllm-qwen3"), seed=3, **QWEN3_SHAPE)


@pytest.fixture(scope="session")
def vllm_cross_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reranker_devtools.tiny_models import build_cross_encoder

    return build_cross_encoder(tmp_path_factory.mktemp("vllm-cross"), seed=3, **CROSS_SHAPE)
