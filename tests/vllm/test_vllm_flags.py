"""operator/reranker_operator/engines/vllm/known_flags.py (the flags spec.vllm.extraArgs may use) is what the pinned vLLM's own
parser has: `make generate` writes it from build/vllm-venv, and here, where that venv exists, it
must not have drifted (elsewhere `generate --check` skips it, saying so)."""

from __future__ import annotations

import pytest

from reranker_devtools import generate, vllm


def test_the_committed_flag_list_is_the_pinned_vllms() -> None:
    if not vllm.available():
        pytest.skip("no build/vllm-venv (run `make vllm-venv`)")
    [(path, make)] = generate.VLLM_GENERATED.items()
    committed = (generate.REPO / path).read_text(encoding="utf-8")
    assert committed == make(), f"{path} differs from the pinned vLLM's parser: run make generate"
    # and the parser still refuses what the operator refuses
    from reranker_operator.engines.vllm.known_flags import VLLM_SERVE_FLAGS

    assert "--disable-log-requests" not in VLLM_SERVE_FLAGS
