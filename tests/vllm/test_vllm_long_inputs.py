"""engine vllm with long documents, on a real vLLM started from the rendered Deployment, as
README ("Engines") and docs/engine.md ("Long documents") say:

- with no model.maxLength the rendered args carry no --max-model-len, and vLLM takes the model's
  own limit (the bundled server's limit for the same model);
- a document past it fails the whole request with 400 on every scoring route: vLLM has no
  server-side truncation default in 0.32 (no flag, no pooler setting);
- a request that sends `max_tokens_per_doc` (the limit minus the prompt around the document) is
  scored: vLLM cuts the document to that many tokens counted on their own, which can leave the
  pair a token or so shorter than the bundled server's cut (so its score can differ a little);
- `truncate_prompt_tokens: -1` is no substitute for a Qwen3 reranker: it cuts the end of the
  whole prompt, the template's closing included, and the score moves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from vllm_helpers import (
    DOCUMENTS,
    LOCAL_MODEL,
    QUERY,
    our_scores,
    our_server,
    rendered_container,
    rendered_vllm,
    resource,
)

from tolerance import fp32_tolerance, max_abs_diff

SERVED = "qwen3-long"
SPEC: dict[str, Any] = {
    "model": {
        "name": LOCAL_MODEL,
        "servedName": SERVED,
        "family": "qwen3-causal",
        "dtype": "float32",
    },
    "engine": "vllm",
    "resources": {"gpus": 1},
    # below the model's limit: vLLM must chunk a long prefill (Qwen3 pools the last token)
    "server": {"maxBatchTokens": 1024},
}
# ~5,000 tokens of the tiny model's tokenizer: past its 4,096
LONG = " ".join(f"passage{i % 50} talks about rerankers and retrieval" for i in range(900))
BODY = {"model": SERVED, "query": QUERY, "documents": [DOCUMENTS[0], LONG]}


@pytest.fixture(scope="module")
def vllm_url(vllm_qwen3_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with rendered_vllm(
        resource("ql", SPEC), vllm_qwen3_path, tmp_path_factory.mktemp("vllm-long")
    ) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def ours(vllm_qwen3_path: Path) -> list[float]:
    """The bundled server's scores of BODY with its defaults (no max length set either)."""
    with our_server(vllm_qwen3_path) as client:
        answer = client.post("/v1/rerank", json={"query": QUERY, "documents": BODY["documents"]})
    assert answer.status_code == 200, answer.text
    return [
        r["relevance_score"] for r in sorted(answer.json()["results"], key=lambda r: r["index"])
    ]


def _scores(url: str, **extra: Any) -> tuple[list[float], int]:
    answer = httpx.post(f"{url}/v1/rerank", json={**BODY, **extra}, timeout=300)
    assert answer.status_code == 200, answer.text
    results = sorted(answer.json()["results"], key=lambda r: r["index"])
    return [r["relevance_score"] for r in results], answer.json()["usage"]["prompt_tokens"]


def test_no_max_length_leaves_vllm_the_models_limit(vllm_url: str, vllm_qwen3_path: Path) -> None:
    container, _ = rendered_container(resource("ql", SPEC))
    assert not [a for a in container["args"] if a.startswith("--max-model-len")]
    assert "--max-num-batched-tokens=1024" in container["args"]
    own = json.loads((vllm_qwen3_path / "config.json").read_text())["max_position_embeddings"]
    [model] = httpx.get(f"{vllm_url}/v1/models", timeout=30).json()["data"]
    assert model["max_model_len"] == own


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/rerank", BODY),
        ("/v2/rerank", BODY),
        ("/rerank", BODY),
        ("/score", {"model": SERVED, "text_1": QUERY, "text_2": [DOCUMENTS[0], LONG]}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_long_document_fails_the_whole_request(
    vllm_url: str, path: str, body: dict[str, Any]
) -> None:
    answer = httpx.post(f"{vllm_url}{path}", json=body, timeout=300)
    assert answer.status_code == 400, answer.text
    assert "maximum context length is 4096" in answer.text


def test_max_tokens_per_doc_cuts_the_document_to_fit(
    vllm_url: str, vllm_qwen3_path: Path, ours: list[float]
) -> None:
    from transformers import AutoTokenizer

    # the prompt around a document: a one-token document's pair, less that token
    probe = httpx.post(
        f"{vllm_url}/v1/rerank",
        timeout=60,
        json={"model": SERVED, "query": QUERY, "documents": ["x"]},
    )
    around = probe.json()["usage"]["prompt_tokens"] - 1
    budget = 4096 - around
    theirs, tokens = _scores(vllm_url, max_tokens_per_doc=budget)
    short_pair = tokens - _first_pair_tokens(vllm_url)
    # the document's first `budget` tokens, counted on their own (not after the template's
    # "<Document>: "), cut at that token's last character: the pair fits, a token or so short
    # of the bundled server's cut
    assert 4096 - 3 <= short_pair <= 4096, short_pair
    tokenizer = AutoTokenizer.from_pretrained(vllm_qwen3_path)
    offsets = tokenizer(LONG, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    cut = LONG[: min(offsets[budget - 1][1], offsets[budget][0])]
    with our_server(vllm_qwen3_path) as client:  # the cut document fits: scored whole
        expected = our_scores(client, QUERY, [DOCUMENTS[0], cut])
    print("vLLM", theirs, tokens, "\nours on the cut document", expected, "\nours", ours)
    tol = fp32_tolerance(vllm_qwen3_path, seq_len=4096)  # fp32 both sides, a 4,096-token pair
    assert max_abs_diff(theirs, expected) < tol
    assert abs(theirs[0] - ours[0]) < tol


def _first_pair_tokens(url: str) -> int:
    """The prompt tokens of BODY's first (short) document's pair."""
    answer = httpx.post(
        f"{url}/v1/rerank",
        timeout=60,
        json={"model": SERVED, "query": QUERY, "documents": [DOCUMENTS[0]]},
    )
    return answer.json()["usage"]["prompt_tokens"]


def test_truncate_prompt_tokens_cuts_the_template(
    vllm_url: str, ours: list[float], vllm_qwen3_path: Path
) -> None:
    theirs, tokens = _scores(vllm_url, truncate_prompt_tokens=-1)
    print("vLLM", theirs, tokens, "\nours", ours)
    tol = fp32_tolerance(vllm_qwen3_path, seq_len=4096)
    assert abs(theirs[0] - ours[0]) < tol  # the short document is untouched
    assert abs(theirs[1] - ours[1]) > 100 * tol  # scored without the prompt's end
