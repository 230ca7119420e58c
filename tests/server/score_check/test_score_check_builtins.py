"""The built-in checks on real servers: correct tiny models pass and turn ready; a model that
scores 0.5 for everything (the first guide's bug, in the weights) or NaN never does."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from score_check_models import check, edited_qwen, equal_yes_no_rows, gauge, serve

from reranker_contract import Metric
from reranker_contract.score_check import SCORE_CHECK_PATH, BuiltinCheck
from reranker_server.score_check.probes import BUILTIN_PROBES


@pytest.fixture(scope="module")
def half_bug_path(tiny_qwen3_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("half-bug") / "model"
    return edited_qwen(tiny_qwen3_path, out, equal_yes_no_rows)


@pytest.mark.parametrize("model", ["qwen", "cross"])
def test_correct_tiny_models_pass_and_turn_ready(
    model: str, tiny_qwen3_path: Path, tiny_cross_encoder_path: Path, qwen_ref, bert_ref
) -> None:
    path, ref = (
        (tiny_qwen3_path, qwen_ref) if model == "qwen" else (tiny_cross_encoder_path, bert_ref)
    )
    for client in serve(path):
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.json()
        assert ready.json()["score_check"] == {"state": "passed", "failed": None, "message": ""}
        report = client.get(SCORE_CHECK_PATH).json()
        for name in (BuiltinCheck.FINITE, BuiltinCheck.SPREAD, BuiltinCheck.CONSISTENT):
            assert check(report, name)["passed"] is True, report["checks"]
        relevance = check(report, BuiltinCheck.RELEVANCE)
        assert relevance["passed"] is None
        assert relevance["skipped"] == "not in SCORE_CHECK_BUILTINS"
        assert [p["name"] for p in report["probes"]] == [p.name for p in BUILTIN_PROBES]
        # the scores are the model's: a plain transformers forward of each pair agrees
        for probe in report["probes"]:
            expected = [ref.score(probe["query"], d) for d in probe["documents"]]
            assert probe["scores"] == pytest.approx(expected, abs=ref.tol), probe["name"]
        assert report["setup"]["dtype"] == "float32" and report["checked_at"] > 0
        assert client.get("/info").json()["score_check"]["state"] == "passed"
        assert gauge(client.get("/metrics").text, Metric.SCORE_CHECK_PASSED) == 1.0


def test_constant_scores_fail_spread_and_never_turn_ready(
    half_bug_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="reranker_server"):
        for client in serve(half_bug_path):
            ready = client.get("/ready")
            assert ready.status_code == 503
            summary = ready.json()["score_check"]
            assert summary["state"] == "failed" and summary["failed"] == BuiltinCheck.SPREAD
            first = BUILTIN_PROBES[0].name
            assert first in summary["message"] and "[0.5, 0.5, 0.5, 0.5]" in summary["message"]
            report = client.get(SCORE_CHECK_PATH).json()
            assert report["state"] == "failed" and check(report, "spread")["passed"] is False
            assert all(s == 0.5 for p in report["probes"] for s in p["scores"])
            assert client.get("/health").status_code == 200  # loaded, alive: only not ready
            assert gauge(client.get("/metrics").text, Metric.SCORE_CHECK_PASSED) == 0.0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("score check failed" in e and first in e and "0.5" in e for e in errors), errors


def test_check_off_leaves_readiness_as_before(half_bug_path: Path) -> None:
    for client in serve(half_bug_path, score_check=False):
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["score_check"]["state"] == "disabled"
        assert client.get(SCORE_CHECK_PATH).json()["probes"] == []


def test_nan_scores_fail_finite(tiny_qwen3_path: Path, tmp_path: Path) -> None:
    """Warm-up off: with it, the warm-up's NaN already fails the load (the process exits)."""

    def nan_norm(model, _tokenizer) -> None:
        model.model.norm.weight.fill_(float("nan"))

    nan_model = edited_qwen(tiny_qwen3_path, tmp_path / "nan", nan_norm)
    for client in serve(nan_model, warmup=False):
        summary = client.get("/ready").json()["score_check"]
        assert summary["failed"] == BuiltinCheck.FINITE, summary
        assert BUILTIN_PROBES[0].name in summary["message"]
