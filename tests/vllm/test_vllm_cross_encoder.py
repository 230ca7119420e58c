"""engine: vllm for a cross-encoder: no overrides and no template in the rendered Deployment,
and vLLM's scores equal the bundled server's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vllm_helpers import (
    DOCUMENTS,
    LOCAL_MODEL,
    QUERY,
    our_scores,
    our_server,
    rendered_container,
    rendered_vllm,
    rerank,
    resource,
)

from tolerance import assert_scores_close

SPEC: dict[str, Any] = {
    "model": {
        "name": LOCAL_MODEL,
        "dtype": "float32",
        "maxLength": 512,
        "family": "cross-encoder",
        "servedName": "bge",
    },
    "engine": "vllm",
    "resources": {"gpus": 1},
}


def test_a_cross_encoder_is_served_natively() -> None:
    container, files = rendered_container(resource("ce", SPEC))
    assert files == {}
    assert not [a for a in container["args"] if a.startswith(("--hf-overrides", "--chat-template"))]


def test_cross_encoder_scores_as_on_our_server(vllm_cross_path: Path, tmp_path: Path) -> None:
    with rendered_vllm(resource("ce", SPEC), vllm_cross_path, tmp_path) as server:
        theirs = rerank(server.base_url, "bge", QUERY, DOCUMENTS)
    with our_server(vllm_cross_path, max_sequence_length=512) as client:
        mine = our_scores(client, QUERY, DOCUMENTS)
    print("vLLM", theirs, "\nours", mine)
    assert_scores_close(theirs, mine, vllm_cross_path)  # two implementations: tests/tolerance.py
    assert max(mine) - min(mine) > 1e-3
