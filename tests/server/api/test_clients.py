"""Real clients (cohere SDK V2 and V1, LiteLLM, raw HTTP) against uvicorn on 127.0.0.1."""

from __future__ import annotations

import os

import httpx
import pytest

QUERY = "what is the capital of France?"
DOCS = [
    "Paris is the capital of France.",
    "the quick brown fox",
    "Berlin is in Germany",
    "apple banana",
]


def _expected_order(qwen_ref):
    return sorted(range(len(DOCS)), key=lambda i: -qwen_ref.score(QUERY, DOCS[i]))


def test_cohere_v2_client(uvicorn_url, qwen_ref):
    import cohere

    client = cohere.ClientV2(api_key="secret-key", base_url=uvicorn_url, max_retries=0)
    resp = client.rerank(model="tiny", query=QUERY, documents=DOCS, top_n=3)
    assert [r.index for r in resp.results] == _expected_order(qwen_ref)[:3]
    for r in resp.results:
        assert abs(r.relevance_score - qwen_ref.score(QUERY, DOCS[r.index])) <= qwen_ref.tol
    assert resp.meta.billed_units.search_units == 1


def test_cohere_v1_client(uvicorn_url, qwen_ref):
    import cohere

    client = cohere.Client(api_key="secret-key", base_url=uvicorn_url, max_retries=0)
    resp = client.rerank(query=QUERY, documents=DOCS, return_documents=True)
    assert [r.index for r in resp.results] == _expected_order(qwen_ref)
    for r in resp.results:
        assert r.document.text == DOCS[r.index]


def test_cohere_client_wrong_key_is_401(uvicorn_url):
    import cohere

    client = cohere.ClientV2(api_key="wrong", base_url=uvicorn_url, max_retries=0)
    with pytest.raises(cohere.core.api_error.ApiError) as err:
        client.rerank(model="tiny", query=QUERY, documents=DOCS)
    assert err.value.status_code == 401


def test_litellm_cohere_provider(uvicorn_url, qwen_ref):
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = pytest.importorskip("litellm")
    resp = litellm.rerank(
        model="cohere/tiny",
        query=QUERY,
        documents=DOCS,
        top_n=2,
        api_base=uvicorn_url,
        api_key="secret-key",
    )
    assert [r["index"] for r in resp.results] == _expected_order(qwen_ref)[:2]


def test_auth_on_scoring_routes_only(uvicorn_url):
    body = {"query": QUERY, "documents": DOCS}
    with httpx.Client(base_url=uvicorn_url) as http:
        for path, payload in (
            ("/v2/rerank", body),
            ("/v1/rerank", body),
            ("/v1/rank", {"query": QUERY, "docs": DOCS}),
            ("/rerank", {"query": QUERY, "texts": DOCS}),
        ):
            missing = http.post(path, json=payload)
            assert (
                missing.status_code == 401 and missing.json()["error"]["field"] == "authorization"
            )
            assert missing.headers["www-authenticate"] == 'Bearer realm="reranker"'
            assert (
                http.post(path, json=payload, headers={"Authorization": "Bearer nope"}).status_code
                == 401
            )
            assert (
                http.post(
                    path, json=payload, headers={"Authorization": "Basic secret-key"}
                ).status_code
                == 401
            )
            assert (
                http.post(
                    path, json=payload, headers={"Authorization": "Bearer secret-key"}
                ).status_code
                == 200
            )
        for path in ("/health", "/healthz", "/ready", "/metrics", "/info", "/"):
            assert http.get(path).status_code == 200, path
