"""Our server as the front of a real vLLM serving a Qwen3 yes/no reranker (the score template
rendered by the operator): the front counts each pair's tokens as vLLM does, scores as vLLM's own
`/score` with the default and a request's instruction, and cuts or splits a document that vLLM
alone refuses."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from vllm_helpers import (
    DOCUMENTS,
    QUERY,
    bundled_record,
    front_report,
    qwen3_spec,
    rendered_vllm,
    resource,
)

from reranker_contract.score_check import PARITY_TOLERANCES, CheckState, ScoreChange
from reranker_devtools import peers
from reranker_devtools.ports import free_port

SERVED = "qwen3-front"
SPEC = qwen3_spec(SERVED)
# about 1,800 tokens of the tiny model's tokenizer: past its 1,024
LONG = " ".join(f"passage{i % 40} about rerankers and retrieval" for i in range(300))
TOLERANCE = 1e-6  # one engine's numbers, our sigmoid (float64) over its logit (float32)
# the same prompt again, which vLLM may serve partly from its prefix cache: the tokens after the
# cached blocks are computed in another order (1.5e-6 apart on an AMD EPYC, 2026-12-05)
PREFIX_CACHED_TOLERANCE = 1e-5
INSTRUCTION = "Prefer passages about Kubernetes"


@pytest.fixture(scope="module")
def vllm_url(vllm_qwen3_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with rendered_vllm(
        resource("qfront", SPEC), vllm_qwen3_path, tmp_path_factory.mktemp("vllm-front-qwen3")
    ) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def front(
    vllm_url: str, vllm_qwen3_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    env = {
        "MODEL_NAME": str(vllm_qwen3_path),
        "SERVED_MODEL_NAME": SERVED,
        "ENGINE_URL": vllm_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MAX_SEQUENCE_LENGTH": "1024",
        "SCORE_CHECK_BUILTINS": "finite,spread,consistent",
        "HF_HUB_OFFLINE": "1",
    }
    log = tmp_path_factory.mktemp("front-qwen3") / "front.log"
    argv = [sys.executable, "-m", "reranker_server.cli", "serve"]
    with peers.start(
        argv, name="front", port=port, health_path="/ready", log_path=log, env=env, timeout_s=180
    ) as server:
        yield server.base_url


def _vllm(url: str, documents: list[str], **extra: Any) -> httpx.Response:
    body = {"model": SERVED, "queries": QUERY, "documents": documents, **extra}
    return httpx.post(f"{url}/score", json=body, timeout=120)


def _front(url: str, documents: list[str], **extra: Any) -> dict[str, Any]:
    body = {"model": SERVED, "query": QUERY, "documents": documents, **extra}
    answer = httpx.post(f"{url}/v1/rerank", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _scores(results: list[dict[str, Any]], key: str) -> list[float]:
    return [r[key] for r in sorted(results, key=lambda r: r["index"])]


@pytest.mark.parametrize("extra", [{}, {"instruction": INSTRUCTION}], ids=["default", "request"])
def test_scores_and_tokens_are_vllms_own(vllm_url: str, front: str, extra: dict) -> None:
    theirs = _vllm(vllm_url, DOCUMENTS, **extra)
    assert theirs.status_code == 200, theirs.text
    mine = _front(front, DOCUMENTS, **extra)
    expected = _scores(theirs.json()["data"], "score")
    got = _scores(mine["results"], "relevance_score")
    print("front", got, "\nvLLM ", expected)
    assert max(abs(a - b) for a, b in zip(got, expected)) <= TOLERANCE
    assert max(got) - min(got) > 1e-3
    # the front counts the prompt vLLM renders from its score template, token for token
    assert mine["usage"]["prompt_tokens"] == theirs.json()["usage"]["prompt_tokens"]


def test_the_instruction_reaches_vllm(vllm_url: str, front: str) -> None:
    plain = _scores(_front(front, DOCUMENTS)["results"], "relevance_score")
    told = _scores(_front(front, DOCUMENTS, instruction=INSTRUCTION)["results"], "relevance_score")
    assert max(abs(a - b) for a, b in zip(plain, told)) > 100 * TOLERANCE


def test_a_long_document_is_cut_or_split_by_the_front(vllm_url: str, front: str) -> None:
    refused = _vllm(vllm_url, [DOCUMENTS[0], LONG])
    print("vLLM alone:", refused.status_code, refused.text[:200])
    assert refused.status_code == 400
    cut = _front(front, [DOCUMENTS[0], LONG])
    assert cut["meta"]["long_documents"]["truncated_documents"] == 1
    assert cut["usage"]["prompt_tokens"] <= 2 * 1024
    tail = _front(front, [DOCUMENTS[0], LONG + " and another ending"])
    cut_scores = _scores(cut["results"], "relevance_score")
    tail_scores = _scores(tail["results"], "relevance_score")
    assert tail_scores == pytest.approx(cut_scores, abs=PREFIX_CACHED_TOLERANCE)
    split = _front(front, [DOCUMENTS[0], LONG], long_documents="chunk")
    meta = split["meta"]["long_documents"]
    print("chunked:", meta)
    assert meta["chunked_documents"] == 1 and meta["chunk_windows"] >= 2
    split_scores = _scores(split["results"], "relevance_score")
    # the first window is the cut document: the max over the windows is at least its score
    assert split_scores[1] >= cut_scores[1] - TOLERANCE
    assert split_scores[0] == pytest.approx(cut_scores[0], abs=TOLERANCE)


def test_an_engine_switch_passes_parity_with_the_recorded_scores(
    vllm_url: str, vllm_qwen3_path: Path, tmp_path: Path
) -> None:
    """The record of our bundled engine on the same model (what the operator writes once a
    transformers revision is Ready); a front of this vLLM passes parity against it at the
    engine tolerance (test_vllm_score_gate.py: the same record fails without the template)."""
    record = bundled_record(vllm_qwen3_path, tmp_path)
    status, report = front_report(vllm_url, vllm_qwen3_path, SERVED, record, tmp_path / "f.log")
    parity = next(c for c in report["checks"] if c["name"] == "parity")
    print("parity:", parity["message"])
    assert status == 200 and report["state"] == CheckState.PASSED, report
    assert report["setup"]["engine"] == "vllm" and report["changes"] == [ScoreChange.ENGINE]
    assert parity["passed"] is True and report["tolerance"] == PARITY_TOLERANCES[ScoreChange.ENGINE]


def test_diagnose_reads_vllms_prefix_cache_through_the_front(vllm_url: str, front: str) -> None:
    """`diagnose --url` on the front under load: it knows vLLM scores (from /info), judges
    prefix reuse by vLLM's own token hits (relayed through the front's /metrics: vLLM's own
    counters give the same ratio over a window around it), and finds no padding."""
    import io
    import json
    import re
    import threading

    from reranker_operator import cli

    def hits_and_queries() -> tuple[float, float]:
        text = httpx.get(f"{vllm_url}/metrics", timeout=30).text
        values = {}
        for name in ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"):
            values[name] = sum(
                float(v)
                for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)", text, re.M)
            )
        return values["vllm:prefix_cache_hits_total"], values["vllm:prefix_cache_queries_total"]

    # a long instruction: the shared prefix spans whole KV blocks of vLLM's prefix cache
    load = ["loadtest", front, "-c", "2", "-d", "6", "--documents", "16", "--json"]
    load += ["--instruction-words", "300"]
    loader = threading.Thread(target=cli.main, args=(load,), kwargs={"stdout": io.StringIO()})
    loader.start()
    out = io.StringIO()
    try:
        time.sleep(1.0)  # the load is running
        before = hits_and_queries()
        status = cli.main(
            ["diagnose", "live", "--url", front, "--interval", "3", "--json"], stdout=out
        )
        after = hits_and_queries()
    finally:
        loader.join(120)
    assert status == 0
    result = json.loads(out.getvalue())
    signals, names = result["signals"], [v["name"] for v in result["verdicts"]]
    print(signals, names)
    assert signals["engine"] == "vllm" and signals["causal"] is True
    assert signals["requests_per_s"] > 0 and signals["padding_ratio_mean"] == 0.0
    # vLLM's own ratio over a window just around diagnose's (the load is steady)
    hits, queries = after[0] - before[0], after[1] - before[1]
    assert 0.0 < signals["prefix_reuse_share"] <= 1.0
    assert abs(signals["prefix_reuse_share"] - hits / queries) < 0.1
    assert "padding waste" not in names and "low prefix reuse" not in names
