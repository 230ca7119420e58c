"""The check's place in the start-up: /ready waits for it, /score-check is open like the other
probes, and the probes are scored by the engine afresh (never from the score cache)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from score_check_models import gauge, serve

from reranker_contract import Metric
from reranker_contract.score_check import SCORE_CHECK_PATH
from reranker_server.api.ops_routes import ENDPOINTS
from reranker_server.app import create_app
from server_helpers import gated_loader, settings_for


def test_ready_waits_for_the_check_and_metrics_are_absent_while_pending(
    tiny_qwen3_path: Path,
) -> None:
    settings = settings_for(tiny_qwen3_path)
    loader, release = gated_loader(settings)
    app = create_app(settings, loader=loader)
    with TestClient(app) as client:
        try:
            ready = client.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["score_check"] == {
                "state": "pending",
                "failed": None,
                "message": "",
            }
            assert client.get(SCORE_CHECK_PATH).json()["state"] == "pending"
            assert gauge(client.get("/metrics").text, Metric.SCORE_CHECK_PASSED) is None
        finally:
            release.set()
        assert app.state.server.loaded.wait(120)
        assert client.get("/ready").status_code == 200
        assert gauge(client.get("/metrics").text, Metric.SCORE_CHECK_PASSED) == 1.0
        stamp = gauge(client.get("/metrics").text, Metric.SCORE_CHECK_TIMESTAMP)
        assert stamp == client.get(SCORE_CHECK_PATH).json()["checked_at"]


def test_score_check_is_open_and_listed(tiny_qwen3_path: Path) -> None:
    assert f"GET {SCORE_CHECK_PATH}" in ENDPOINTS
    for client in serve(tiny_qwen3_path, api_key="a-secret-key-123"):
        assert client.post("/v2/rerank", json={"query": "q", "documents": ["a"]}).status_code == 401
        report = client.get(SCORE_CHECK_PATH)
        assert report.status_code == 200 and report.json()["state"] == "passed"
        assert f"GET {SCORE_CHECK_PATH}" in client.get("/").json()["endpoints"]


def test_probes_bypass_the_score_cache(tiny_qwen3_path: Path) -> None:
    """With a score cache, a document scored alone after its batch would be a cache hit: the
    check must compute it again, and leave nothing in the cache for it."""

    def hits() -> float:
        return REGISTRY.get_sample_value(Metric.SCORE_CACHE_HITS_TOTAL) or 0.0

    before = hits()
    for client in serve(tiny_qwen3_path, score_cache_size=256, warmup=False):
        assert client.get("/ready").status_code == 200
        assert hits() == before
        report = client.get(SCORE_CHECK_PATH).json()
        probe = report["probes"][0]
        body = {"query": probe["query"], "documents": probe["documents"]}
        scored = client.post("/v2/rerank", json=body).json()["results"]
        assert hits() == before  # the check put nothing in the cache
        by_index = {r["index"]: r["relevance_score"] for r in scored}
        assert [by_index[i] for i in range(len(probe["documents"]))] == probe["scores"]
