"""engine: vllm with no instruction in the resource: the score template's default is the model
card's instruction, and vLLM scores as the bundled server does with its own default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vllm_helpers import (
    DOCUMENTS,
    LOCAL_MODEL,
    QUERY,
    our_scores,
    our_server,
    rendered_vllm,
    rerank,
    resource,
)

from tolerance import assert_scores_close, fp32_cross_impl_tolerance, max_abs_diff

SPEC: dict[str, Any] = {
    "model": {"name": LOCAL_MODEL, "dtype": "float32", "maxLength": 1024, "family": "qwen3-causal"},
    "engine": "vllm",
    "resources": {"gpus": 1},
}


def test_the_default_instruction_scores_as_on_our_server(
    vllm_qwen3_path: Path, tmp_path: Path
) -> None:
    with rendered_vllm(resource("qd", SPEC), vllm_qwen3_path, tmp_path) as server:
        theirs = rerank(server.base_url, LOCAL_MODEL, QUERY, DOCUMENTS)
        other = rerank(server.base_url, LOCAL_MODEL, QUERY, DOCUMENTS, instruction="Other task")
    with our_server(vllm_qwen3_path, max_sequence_length=1024) as client:
        mine = our_scores(client, QUERY, DOCUMENTS)
    print("vLLM", theirs, "\nours", mine)
    assert_scores_close(theirs, mine, vllm_qwen3_path)  # two implementations: tests/tolerance.py
    # another instruction moves the scores far beyond that tolerance: the test can tell
    assert max_abs_diff(theirs, other) > 10 * fp32_cross_impl_tolerance(vllm_qwen3_path)
