"""Bad input gives a 4xx JSON error naming the field, and the server keeps serving."""

from __future__ import annotations

import pytest

OK = {"query": "q", "documents": ["a", "b"]}


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/v2/rerank", {"query": "", "documents": ["a"]}, 422, "query"),
        ("/v2/rerank", {"query": "   ", "documents": ["a"]}, 422, "query"),
        ("/v2/rerank", {"query": "q", "documents": []}, 422, "documents"),
        ("/v2/rerank", {"documents": ["a"]}, 422, "query"),
        ("/v2/rerank", {"query": "q"}, 422, "documents"),
        ("/v2/rerank", {"query": 5, "documents": ["a"]}, 422, "query"),
        ("/v2/rerank", {"query": "q", "documents": "abc"}, 422, "documents"),
        ("/v2/rerank", {"query": "q", "documents": ["a", "b", 3]}, 422, "documents[2]"),
        ("/v2/rerank", {"query": "q", "documents": ["a", {"txt": "b"}]}, 422, "documents[1]"),
        ("/v2/rerank", {"query": "q", "documents": ["a"] * 17}, 413, "documents"),
        ("/v2/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, 422, "top_n"),
        ("/v2/rerank", {"query": "q", "documents": ["a"], "top_n": -3}, 422, "top_n"),
        (
            "/v2/rerank",
            {"query": "q", "documents": ["a"], "max_tokens_per_doc": 0},
            422,
            "max_tokens_per_doc",
        ),
        ("/v2/rerank", {"query": "q", "documents": ["a"], "model": "other-model"}, 404, "model"),
        ("/v1/rerank", {"query": "q", "documents": [None]}, 422, "documents[0]"),
        ("/v2/rerank", ["not", "an", "object"], 422, "body"),
        ("/rerank", {"query": "q", "texts": ["a", 1]}, 422, "texts[1]"),
        ("/rerank", {"query": "q", "texts": []}, 422, "texts"),
        (
            "/rerank",
            {"query": "q", "texts": ["a"], "truncation_direction": "up"},
            422,
            "truncation_direction",
        ),
        ("/rerank", {"query": "q", "documents": ["a", {"text": "b"}]}, 422, "documents[1]"),
        ("/rerank", {"query": "q", "documents": ["a"], "top_k": 0}, 422, "top_k"),
        ("/rerank", {"query": "q"}, 422, "texts"),
        ("/rerank", [1, 2], 422, "body"),
        ("/v1/rank", {"query": "q", "docs": ["a", 2.5]}, 422, "docs[1]"),
        ("/v1/rank", {"query": "", "docs": ["a"]}, 422, "query"),
        ("/v1/rank", {"query": "q", "docs": ["a"] * 17}, 413, "docs"),
    ],
)
def test_bad_input(qwen_client, path, body, status, field):
    r = qwen_client.post(path, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["field"] == field
    assert err["message"].startswith(field)
    assert qwen_client.post("/v2/rerank", json=OK).status_code == 200  # still serving


@pytest.mark.parametrize("path", ["/v2/rerank", "/v1/rerank", "/rerank", "/v1/rank"])
def test_malformed_json(qwen_client, path):
    r = qwen_client.post(
        path, content=b'{"query": "q", "documents": [', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == "body" and "malformed JSON" in r.json()["error"]["message"]


def test_too_long_query_is_413_with_counts(qwen_client):
    r = qwen_client.post("/v2/rerank", json={"query": "apple " * 5000, "documents": ["a"]})
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert err["field"] == "query" and err["limit"] == 4096 and err["tokens"] > 4096


def test_tei_truncate_false_names_texts_index(qwen_client):
    r = qwen_client.post(
        "/rerank", json={"query": "q", "texts": ["short", "apple " * 5000], "truncate": False}
    )
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert err["field"] == "texts[1]"
    assert err["message"].startswith("texts[1]: ") and "documents" not in err["message"]
    ok = qwen_client.post("/rerank", json={"query": "q", "texts": ["short", "apple " * 5000]})
    assert ok.status_code == 200  # truncation on by default


def test_unknown_route_is_json_404(qwen_client):
    r = qwen_client.get("/nope")
    assert r.status_code == 404 and "error" in r.json()
