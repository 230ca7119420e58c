"""Every API shape on the tiny models, compared with plain-transformers reference scores."""

from __future__ import annotations

import itertools
import math

import pytest

QUERY = "what is the capital of France?"
DOCS = [
    "Paris is the capital of France.",
    "the quick brown fox jumps over the lazy dog",
    "Berlin is a city in Germany",
    "12345 numbers 3.14",
    "apple banana orange",
]


def _sorted_desc(values):
    return all(a >= b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
def test_cohere_shape_scores_and_usage(qwen_client, qwen_ref, path):
    r = qwen_client.post(path, json={"model": "tiny-qwen", "query": QUERY, "documents": DOCS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tiny-qwen" and body["id"]
    results = body["results"]
    assert sorted(x["index"] for x in results) == list(range(len(DOCS)))
    assert _sorted_desc([x["relevance_score"] for x in results])
    for x in results:
        assert "document" not in x
        assert abs(x["relevance_score"] - qwen_ref.score(QUERY, DOCS[x["index"]])) <= qwen_ref.tol
    expected_tokens = sum(len(qwen_ref.tokens(QUERY, d)) for d in DOCS)
    assert body["usage"] == {"prompt_tokens": expected_tokens, "total_tokens": expected_tokens}
    assert body["meta"]["billed_units"]["search_units"] == 1
    assert body["meta"]["api_version"]["version"] == path[2]


def test_cohere_top_n_documents_objects_instruction(qwen_client, qwen_ref):
    inst = "Find passages about fruit"
    docs = [{"text": d} for d in DOCS[:3]] + DOCS[3:]
    r = qwen_client.post(
        "/v2/rerank",
        json={
            "query": QUERY,
            "documents": docs,
            "top_n": 2,
            "return_documents": True,
            "instruction": inst,
        },
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    expected = sorted(range(len(DOCS)), key=lambda i: -qwen_ref.score(QUERY, DOCS[i], inst))[:2]
    assert [x["index"] for x in results] == expected
    for x in results:
        assert x["document"] == {"text": DOCS[x["index"]]}
        want = qwen_ref.score(QUERY, DOCS[x["index"]], inst)
        assert abs(x["relevance_score"] - want) <= qwen_ref.tol


def test_cohere_top_n_larger_than_documents(qwen_client):
    r = qwen_client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS[:2], "top_n": 10})
    assert r.status_code == 200 and len(r.json()["results"]) == 2


def test_max_tokens_per_doc_changes_score(qwen_client, qwen_ref):
    doc = "one two three four five six seven eight nine ten apple banana orange"
    r = qwen_client.post(
        "/v2/rerank", json={"query": QUERY, "documents": [doc], "max_tokens_per_doc": 3}
    )
    assert r.status_code == 200
    doc_ids = qwen_ref.tok(" " + doc, add_special_tokens=False)["input_ids"][:3]
    truncated_text = qwen_ref.tok.decode(
        doc_ids
    )  # ' one two three'-like: re-tokenizes the same here
    assert qwen_ref.tok(truncated_text, add_special_tokens=False)["input_ids"] == doc_ids
    assert (
        abs(r.json()["results"][0]["relevance_score"] - qwen_ref.score(QUERY, truncated_text[1:]))
        <= qwen_ref.tol
    )
    assert r.json()["usage"]["prompt_tokens"] == len(qwen_ref.tokens(QUERY, truncated_text[1:]))


def test_tei_shape(qwen_client, qwen_ref):
    r = qwen_client.post("/rerank", json={"query": QUERY, "texts": DOCS, "return_text": True})
    assert r.status_code == 200, r.text
    out = r.json()
    assert isinstance(out, list) and len(out) == len(DOCS)
    assert _sorted_desc([x["score"] for x in out])
    for x in out:
        assert x["text"] == DOCS[x["index"]]
        assert abs(x["score"] - qwen_ref.score(QUERY, x["text"])) <= qwen_ref.tol
    raw = qwen_client.post(
        "/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": True}
    ).json()
    for x in raw:
        p = qwen_ref.score(QUERY, DOCS[x["index"]])
        assert abs(x["score"] - math.log(p / (1 - p))) <= qwen_ref.logit_tol
        assert "text" not in x


def test_simple_shape(qwen_client, qwen_ref):
    r = qwen_client.post("/rerank", json={"query": QUERY, "documents": DOCS, "top_k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = sorted(range(len(DOCS)), key=lambda i: -qwen_ref.score(QUERY, DOCS[i]))[:3]
    assert body["ranked_indices"] == expected
    assert body["ranked_documents"] == [DOCS[i] for i in expected]
    assert len(body["scores"]) == 3 and _sorted_desc(body["scores"])
    for s, i in zip(body["scores"], expected):
        assert abs(s - qwen_ref.score(QUERY, DOCS[i])) <= qwen_ref.tol
    assert body["processing_time"] >= 0


def test_rank_shape(qwen_client, qwen_ref):
    r = qwen_client.post("/v1/rank", json={"query": QUERY, "docs": DOCS})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["rank"] for x in results] == list(range(1, len(DOCS) + 1))
    assert _sorted_desc([x["score"] for x in results])
    for x in results:
        assert abs(x["score"] - qwen_ref.score(QUERY, x["doc"])) <= qwen_ref.tol


def test_cross_encoder_app(bert_client, bert_ref):
    r = bert_client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS})
    assert r.status_code == 200, r.text
    for x in r.json()["results"]:
        want = bert_ref.score(QUERY, DOCS[x["index"]])
        assert abs(x["relevance_score"] - want) <= bert_ref.tol
    info = bert_client.get("/info").json()
    assert info["family"] == "cross-encoder" and info["prefix_cache"] is False
    assert info["shortcuts"] == {
        "cls_only": {"in_force": True, "reason": None},
        "packed_encoder": {"in_force": True, "reason": None},
    }


def test_info_shows_the_shortcuts_in_force(qwen_client):
    qwen_client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})  # first use checks
    info = qwen_client.get("/info").json()
    assert info["prefix_cache"] is True
    assert info["shortcuts"] == {
        "segmentwise_tokens": {"in_force": True, "reason": None},
        "word_floor": {"in_force": True, "reason": None},
        "prefix_kv": {"in_force": True, "reason": None},
        "last_token": {"in_force": True, "reason": None},
        "packed_decoder": {"in_force": True, "reason": None},
    }


def test_ops_routes(qwen_client):
    health = qwen_client.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "model_loaded": True, "gpu_available": False}
    assert qwen_client.get("/healthz").json() == {"status": "alive"}
    assert qwen_client.get("/ready").status_code == 200
    root = qwen_client.get("/").json()
    assert root["model"] == "tiny-qwen" and "POST /v2/rerank" in root["endpoints"]
    info = qwen_client.get("/info").json()
    assert (
        info["family"] == "qwen3-causal" and info["device"] == "cpu" and info["dtype"] == "float32"
    )
    assert info["max_length"] == 4096 and info["limits"]["max_client_batch_size"] == 16
    assert qwen_client.get("/docs").status_code == 200
    paths = qwen_client.get("/openapi.json").json()["paths"]
    assert {"/v1/rerank", "/v2/rerank", "/rerank", "/v1/rank"} <= set(paths)


def _samples(text: str) -> dict[str, list]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def test_metrics_series(qwen_client):
    def count(samples, name, **labels):
        return sum(
            s.value
            for s in samples.get(name, [])
            if all(s.labels.get(k) == v for k, v in labels.items())
        )

    before = _samples(qwen_client.get("/metrics").text)
    assert (
        qwen_client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS[:3]}).status_code
        == 200
    )
    after = _samples(qwen_client.get("/metrics").text)
    http = {"method": "POST", "endpoint": "/v2/rerank", "status": "200"}
    assert (
        count(after, "http_requests_total", **http)
        == count(before, "http_requests_total", **http) + 1
    )
    assert (
        count(after, "reranker_requests_total", status="ok")
        == count(before, "reranker_requests_total", status="ok") + 1
    )
    docs_sum = "reranker_documents_per_request_sum"
    assert count(after, docs_sum) == count(before, docs_sum) + 3
    for name in (
        "http_request_duration_seconds_bucket",
        "http_requests_active",
        "model_inference_duration_seconds_count",
        "reranker_tokens_per_request_bucket",
        "reranker_batch_size_bucket",  # the engine's series share the registry
    ):
        assert name in after, name
    assert count(after, "model_inference_duration_seconds_count", model_name="tiny-qwen") >= 1


def test_default_instruction_setting(tiny_qwen3_path, qwen_ref):
    from fastapi.testclient import TestClient

    from reranker_server.app import create_app
    from server_helpers import settings_for

    inst = "Find passages about fruit"
    settings = settings_for(tiny_qwen3_path, default_instruction=inst)
    app = create_app(settings)
    with TestClient(app) as client:
        assert app.state.server.loaded.wait(120) and app.state.server.load_error is None
        r = client.post("/v1/rank", json={"query": QUERY, "docs": DOCS[:3]})
        assert r.status_code == 200
        for x in r.json()["results"]:
            assert abs(x["score"] - qwen_ref.score(QUERY, x["doc"], inst)) <= qwen_ref.tol
        assert client.get("/info").json()["default_instruction"] == inst
