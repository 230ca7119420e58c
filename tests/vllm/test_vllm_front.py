"""Our server as the front of a real vLLM (ENGINE_URL): both containers of the rendered
`engine: vllm` pod (a cross-encoder, vllm.front on) started here, vLLM from its container and
the front from its container's env (mount paths mapped to local dirs, the API key's Secret
given), and every request going through the front.

- every API shape answers, with vLLM's own `/score` for the same pairs (to float rounding:
  the front asks vLLM for logits and applies the sigmoid itself);
- the API key is enforced by the front;
- a document past the model's length: vLLM alone refuses the whole request, the front cuts the
  document (counted in the truncation metric) and scores it;
- under a burst the queued-pairs gauge rises (the front bounds the calls in flight to vLLM);
- /ready waits for vLLM and the score check run through it; /info names the engine behind
  the front;
- the cohere SDK works against the front.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from vllm_helpers import (
    DOCUMENTS,
    LOCAL_MODEL,
    QUERY,
    local_front_env,
    metric_names,
    rendered_front_server,
    rendered_vllm,
    resource,
)

from promql_helpers import metric_names as series_in
from reranker_contract import Env, Metric
from reranker_contract.score_check import SCORE_CHECK_PATH, CheckState, ScoreCheckEnv

SERVED = "bge-front"
KEY = "front-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SPEC: dict[str, Any] = {
    "model": {
        "name": LOCAL_MODEL,
        "dtype": "float32",
        "maxLength": 512,
        "family": "cross-encoder",
        "servedName": SERVED,
    },
    "engine": "vllm",
    "resources": {"gpus": 1},
    # at most 8 pairs per call to vLLM (the front's BATCH_SIZE); the front checks the key
    "server": {"maxBatchSize": 8, "apiKeySecret": {"name": "front-key"}},
    # random weights: the relevance check cannot hold (reranker_server.score_check)
    "scoreCheck": {"builtins": {"relevance": False}},
}
CR = resource("front", SPEC)
# about 1,600 tokens of the tiny model's tokenizer: past its 512
LONG = " ".join(f"passage{i % 40} about rerankers and retrieval" for i in range(300))
TOLERANCE = 1e-6  # one engine's numbers, our sigmoid (float64) over its logit (float32)


@pytest.fixture(scope="module")
def vllm_url(vllm_cross_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with rendered_vllm(CR, vllm_cross_path, tmp_path_factory.mktemp("vllm-front")) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def front(
    vllm_url: str, vllm_cross_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Our server as the rendered front container runs it, in front of that vLLM."""
    with rendered_front_server(
        CR,
        vllm_cross_path,
        tmp_path_factory.mktemp("front"),
        engine_url=vllm_url,
        secrets={"front-key": KEY},
        # two calls in flight (a test knob, not a spec field): a burst must queue in the front
        extra_env={str(Env.MODEL_WORKERS): "2"},
    ) as server:
        yield server.base_url


def test_the_front_runs_as_rendered(vllm_cross_path: Path, tmp_path: Path) -> None:
    """What the front is started with is the rendered container's env, places mapped."""
    env = local_front_env(
        CR,
        vllm_cross_path,
        tmp_path,
        engine_url="http://127.0.0.1:1",
        port=1,
        secrets={"front-key": KEY},
    )
    assert env[Env.MODEL_NAME] == str(vllm_cross_path) and env[Env.API_KEY] == KEY
    assert env[Env.SERVED_MODEL_NAME] == SERVED and env[Env.DEVICE] == "cpu"
    assert env[Env.BATCH_SIZE] == "8" and env[Env.MAX_SEQUENCE_LENGTH] == "512"
    assert env[ScoreCheckEnv.SCORE_CHECK_BUILTINS] == "finite,spread,consistent"
    assert env[Env.HF_HUB_OFFLINE] == "1"


def _post(url: str, path: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, timeout=120, **kw)


def vllm_score(vllm_url: str, documents: list[str]) -> httpx.Response:
    body = {"model": SERVED, "queries": QUERY, "documents": documents}
    return _post(vllm_url, "/score", body)


def _by_index(results: list[dict[str, Any]], key: str) -> list[float]:
    return [r[key] for r in sorted(results, key=lambda r: r["index"])]


def test_every_api_shape_scores_as_vllm_does(vllm_url: str, front: str) -> None:
    answer = vllm_score(vllm_url, DOCUMENTS)
    assert answer.status_code == 200, answer.text
    theirs = _by_index(answer.json()["data"], "score")
    shapes = {
        "/v1/rerank": ({"model": SERVED, "query": QUERY, "documents": DOCUMENTS}, "results"),
        "/v2/rerank": ({"model": SERVED, "query": QUERY, "documents": DOCUMENTS}, "results"),
        "/rerank": ({"query": QUERY, "texts": DOCUMENTS}, None),
    }
    for path, (body, field) in shapes.items():
        answer = _post(front, path, body, headers=AUTH)
        assert answer.status_code == 200, (path, answer.text)
        results = answer.json()[field] if field else answer.json()
        key = "relevance_score" if field else "score"
        mine = _by_index(results, key)
        print(path, "front", mine, "\nvLLM", theirs)
        assert max(abs(a - b) for a, b in zip(mine, theirs)) <= TOLERANCE, path
    ranked = _post(front, "/v1/rank", {"query": QUERY, "docs": DOCUMENTS}, headers=AUTH)
    assert ranked.status_code == 200, ranked.text
    by_doc = {r["doc"]: r["score"] for r in ranked.json()["results"]}
    assert max(abs(by_doc[d] - s) for d, s in zip(DOCUMENTS, theirs)) <= TOLERANCE
    assert max(theirs) - min(theirs) > 1e-3  # the scores are spread: equality means something


def test_the_front_enforces_its_api_key(front: str) -> None:
    body = {"query": QUERY, "documents": DOCUMENTS[:2]}
    assert _post(front, "/v1/rerank", body).status_code == 401
    wrong = {"Authorization": "Bearer not-the-key"}
    assert _post(front, "/v1/rerank", body, headers=wrong).status_code == 401
    assert _post(front, "/v1/rerank", body, headers=AUTH).status_code == 200


def _truncated_total(front: str) -> float:
    text = httpx.get(f"{front}/metrics", timeout=30).text
    found = re.search(rf"^{Metric.TRUNCATED_DOCUMENTS_TOTAL} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_long_document_is_cut_by_the_front_where_vllm_refuses_it(
    vllm_url: str, front: str
) -> None:
    refused = vllm_score(vllm_url, [DOCUMENTS[0], LONG])
    print("vLLM alone:", refused.status_code, refused.text[:300])
    assert refused.status_code == 400
    before = _truncated_total(front)
    body = {"query": QUERY, "documents": [DOCUMENTS[0], LONG]}
    answer = _post(front, "/v1/rerank", body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert _truncated_total(front) == before + 1
    cut = _by_index(answer.json()["results"], "relevance_score")
    # the front cut the right end: what lies past the cut changes nothing
    longer = {"query": QUERY, "documents": [DOCUMENTS[0], LONG + " and a different ending"]}
    again = _by_index(
        _post(front, "/v1/rerank", longer, headers=AUTH).json()["results"], "relevance_score"
    )
    assert max(abs(a - b) for a, b in zip(cut, again)) <= TOLERANCE
    # with truncation refused, the front answers 413 itself, naming the document
    tei = _post(
        front, "/rerank", {"query": QUERY, "texts": [LONG], "truncate": False}, headers=AUTH
    )
    assert tei.status_code == 413, tei.text


def _queue_depth(text: str) -> float:
    found = re.search(rf"^{Metric.QUEUE_DEPTH} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_the_queued_pairs_gauge_rises_under_a_burst(front: str) -> None:
    documents = [f"{d} (variant {i})" for i in range(3) for d in DOCUMENTS][:16]

    async def burst() -> tuple[list[int], float]:
        seen = 0.0
        async with httpx.AsyncClient(base_url=front, timeout=120, headers=AUTH) as client:
            body = {"query": QUERY, "documents": documents}
            requests = [
                asyncio.create_task(
                    client.post("/v1/rerank", json={**body, "query": f"{QUERY} {i}"})
                )
                for i in range(24)
            ]
            while not all(r.done() for r in requests):
                seen = max(seen, _queue_depth((await client.get("/metrics")).text))
                await asyncio.sleep(0.02)
            return [r.result().status_code for r in requests], seen

    codes, peak = asyncio.run(burst())
    print("burst answers", codes, "peak queued pairs", peak)
    assert codes == [200] * 24
    assert peak > 16  # more than the two calls in flight hold: the rest waited in the front
    assert _queue_depth(httpx.get(f"{front}/metrics", timeout=30).text) == 0


def test_ready_and_info_name_the_engine_behind_the_front(vllm_url: str, front: str) -> None:
    assert httpx.get(f"{front}/ready", timeout=30).status_code == 200
    # the score check ran through vLLM before /ready turned 200
    report = httpx.get(f"{front}{SCORE_CHECK_PATH}", timeout=30).json()
    assert report["state"] == CheckState.PASSED, report
    info = httpx.get(f"{front}/info", headers=AUTH, timeout=30).json()
    assert info["settings"]["engine_url"] == vllm_url
    assert info["device"] == "vllm" and info["dtype"] == "float32"
    version = httpx.get(f"{vllm_url}/version", timeout=30).json()["version"]
    assert version in info["dtype_reason"] and vllm_url in info["dtype_reason"]
    assert info["family"] == "cross-encoder" and info["max_length"] == 512


def test_the_cohere_sdk_works_against_the_front(vllm_url: str, front: str) -> None:
    import cohere

    theirs = _by_index(vllm_score(vllm_url, DOCUMENTS).json()["data"], "score")
    order = sorted(range(len(DOCUMENTS)), key=lambda i: -theirs[i])
    client = cohere.ClientV2(api_key=KEY, base_url=front, max_retries=0)
    answer = client.rerank(model=SERVED, query=QUERY, documents=DOCUMENTS, top_n=3)
    assert [r.index for r in answer.results] == order[:3]


def _families(text: str, prefix: str) -> dict[str, list[tuple[str, tuple, float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        f.name: sorted((s.name, tuple(sorted(s.labels.items())), s.value) for s in f.samples)
        for f in text_string_to_metric_families(text)
        if f.name.startswith(prefix)
    }


def test_the_front_relays_vllms_own_series(vllm_url: str, front: str) -> None:
    """vLLM listens on localhost only behind the front, so its series reach Prometheus through
    the front's /metrics: the same names, labels and values as vLLM's own, and nothing else of
    vLLM's (its process and HTTP families would collide with the front's)."""
    body = {"query": QUERY, "documents": DOCUMENTS}
    assert _post(front, "/v1/rerank", body, headers=AUTH).status_code == 200
    theirs = _families(httpx.get(f"{vllm_url}/metrics", timeout=30).text, "vllm:")
    text = httpx.get(f"{front}/metrics", timeout=30).text
    mine = _families(text, "vllm:")
    assert len(theirs) >= 10 and set(mine) == set(theirs)
    assert re.search(rf"^{Metric.ENGINE_METRICS_UP} 1\.0$", text, re.M)
    # nothing scored in between: every counter agrees (gauges of a live engine may move)
    for name in ("vllm:prompt_tokens", "vllm:request_success", "vllm:prefix_cache_queries"):
        assert mine[name] == theirs[name], name
    assert sum(v for n, _, v in mine["vllm:prompt_tokens"] if n.endswith("_total")) > 0
    # each family once: vLLM's process, Python and HTTP families (the front has its own) stay out
    types = re.findall(r"^# TYPE (\S+)", text, re.M)
    assert "http_requests" in str(types) and len(types) == len(set(types))


def test_every_series_the_fronts_monitoring_reads_exists(front: str) -> None:
    """Each alert, panel and autoscaling rule rendered for `engine: vllm` behind the front reads
    a series the front's /metrics carries after a scored request (vLLM's through the relay):
    none stays empty, as the GPU memory panel did while it read the front's absent GPU."""
    from reranker_contract import ADAPTER_RULES
    from reranker_operator.api.spec import parse_spec
    from reranker_operator.engines.vllm.front import FRONTED
    from reranker_operator.render.monitoring import (
        KUBE_STATE_METRICS,
        alert_rules,
        dashboard_panels,
    )

    body = {"query": QUERY, "documents": DOCUMENTS}
    assert _post(front, "/v1/rerank", body, headers=AUTH).status_code == 200
    exposed = metric_names(httpx.get(f"{front}/metrics", timeout=30).text)
    rules = parse_spec(SPEC).metrics.prometheus_rule
    exprs = [r["expr"] for r in alert_rules("f", "ml", rules, engine_name=FRONTED)]
    exprs += [e for _t, _u, _d, targets in dashboard_panels("f", "ml", FRONTED) for e, _ in targets]
    read = {n for e in exprs for n in set(series_in(e))} | {r.series for r in ADAPTER_RULES}
    read -= set(KUBE_STATE_METRICS)
    assert {"vllm:kv_cache_usage_perc", "reranker_queue_depth"} <= read
    missing = sorted(n for n in read if n not in exposed)
    assert missing == [], f"the front exports {sorted(exposed)}"


def test_a_chunked_document_scores_the_max_of_its_windows_through_vllm(
    vllm_url: str, front: str, vllm_cross_path: Path
) -> None:
    """Long documents scored whole behind the front: the document's score equals the max of its
    windows, each computed here from the tokenizer by the documented rule (docs/server.md:
    `room - overlap` apart, the last ending at the document's end; behind the front each window
    is CUT_MARGIN = 2 tokens short of the room, since vLLM tokenizes the window's text again)
    and scored alone by vLLM's own /score."""
    import random

    from transformers import AutoTokenizer

    from reranker_contract import DEFAULTS
    from reranker_devtools.tiny_models import single_token_words

    tok = AutoTokenizer.from_pretrained(vllm_cross_path)
    rng = random.Random(7)
    vocab = single_token_words(tok)
    doc = " ".join(rng.choice(vocab) for _ in range(1400))
    ids = tok(doc, add_special_tokens=False)["input_ids"]
    fixed = len(tok(QUERY, "x")["input_ids"]) - 1  # [CLS] query [SEP] ... [SEP]
    size = SPEC["model"]["maxLength"] - fixed - 2
    step = size - min(DEFAULTS.chunk_overlap_tokens, size // 4)
    starts = list(range(0, len(ids) - size, step)) + [len(ids) - size]
    windows = [tok.decode(ids[s : s + size]) for s in starts]
    for start, window in zip(starts, windows):  # each window's text is its tokens again
        assert tok(window, add_special_tokens=False)["input_ids"] == ids[start : start + size]
    answer = vllm_score(vllm_url, windows)
    assert answer.status_code == 200, answer.text
    alone = _by_index(answer.json()["data"], "score")
    body = {"query": QUERY, "documents": [DOCUMENTS[0], doc], "long_documents": "chunk"}
    chunked = _post(front, "/v1/rerank", body, headers=AUTH)
    assert chunked.status_code == 200, chunked.text
    meta = chunked.json()["meta"]["long_documents"]
    print(f"{len(ids)} tokens, {len(windows)} windows: {alone}; front: {meta}")
    assert meta["chunked_documents"] == 1 and meta["chunk_windows"] == len(windows) >= 3
    scores = _by_index(chunked.json()["results"], "relevance_score")
    assert abs(scores[1] - max(alone)) <= TOLERANCE
    assert max(alone) - min(alone) > 1e-4  # the windows differ: the max is a choice
    # truncate (the default) scores the first window's worth, as before
    cut = _by_index(
        _post(front, "/v1/rerank", {**body, "long_documents": "truncate"}, headers=AUTH).json()[
            "results"
        ],
        "relevance_score",
    )
    assert cut[0] == pytest.approx(scores[0], abs=TOLERANCE)
    assert cut[1] == pytest.approx(alone[0], abs=TOLERANCE)  # the cut is the first window
