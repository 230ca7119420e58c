"""A real Infinity (infinity-emb, `make infinity-venv`), started as the benchmark starts it,
scores a cross-encoder as our server does: the benchmark's agreement check between the two
holds, and its Infinity rows cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest
from vllm_helpers import DOCUMENTS, QUERY, our_scores, our_server, rerank

from reranker_devtools import infinity, peers
from reranker_devtools.ports import free_port
from tolerance import assert_scores_close


def test_infinity_scores_as_our_server(infinity_cross_path: Path, tmp_path: Path) -> None:
    port = free_port()
    try:
        with infinity.start(
            infinity_cross_path,
            port=port,
            log_path=tmp_path / "infinity.log",
            dtype="float32",
            timeout_s=300,
        ) as server:
            print(f"Infinity started in {server.started_in_s:.0f}s")
            theirs = rerank(server.base_url, infinity_cross_path.name, QUERY, DOCUMENTS)
            # several requests at once go through its dynamic batcher: the same scores
            reversed_docs = rerank(
                server.base_url, infinity_cross_path.name, QUERY, DOCUMENTS[::-1]
            )
    except peers.PeerUnavailable as exc:
        pytest.skip(f"Infinity cannot run here: {exc}")
    with our_server(infinity_cross_path, max_sequence_length=512) as client:
        mine = our_scores(client, QUERY, DOCUMENTS)
    print("Infinity", theirs, "\nours", mine)
    # two float32 implementations of one model (tests/tolerance.py)
    assert_scores_close(theirs, mine, infinity_cross_path)
    assert_scores_close(reversed_docs[::-1], mine, infinity_cross_path)
    assert max(mine) - min(mine) > 1e-3  # the model tells the documents apart
