"""Infinity (the benchmark's cross-encoder peer) on a tiny cross-encoder, built once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# our side of the comparison runs through the vLLM tests' helpers
sys.path.insert(0, str(Path(__file__).parents[1] / "vllm"))


@pytest.fixture(scope="session")
def infinity_cross_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vllm_helpers import CROSS_SHAPE

    from reranker_devtools.tiny_models import build_cross_encoder

    return build_cross_encoder(tmp_path_factory.mktemp("infinity-cross"), seed=5, **CROSS_SHAPE)
