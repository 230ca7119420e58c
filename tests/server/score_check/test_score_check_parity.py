"""Parity with the operator's record: a dtype change passes at its tolerance and fails at the
restart (NONE) tolerance; a loader change that moves the weights under the same model id fails;
a record of another model is skipped and said so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from score_check_models import (
    check,
    edited_qwen,
    gauge,
    perturb_weights,
    record_of,
    serve,
    write_json,
)

from reranker_contract import Metric
from reranker_contract.score_check import PARITY_TOLERANCES, SCORE_CHECK_PATH, ScoreChange


@pytest.fixture(scope="module")
def model_and_record(tiny_qwen3_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """A copy of the tiny Qwen3 model and the record an fp32 server's report gives."""
    work = tmp_path_factory.mktemp("parity")
    model = work / "model"
    shutil.copytree(tiny_qwen3_path, model)
    for client in serve(model, server_image="reranker-server:1.0"):
        report = client.get(SCORE_CHECK_PATH).json()
    return model, record_of(report), work


def test_bfloat16_passes_at_the_dtype_tolerance_and_fails_at_none(model_and_record) -> None:
    model, record, work = model_and_record
    path = write_json(work / "record.json", record)
    base = {"dtype": "bfloat16", "server_image": "reranker-server:1.0", "score_record_file": path}
    for client in serve(model, **base):
        assert client.get("/ready").status_code == 200, client.get("/ready").json()
        report = client.get(SCORE_CHECK_PATH).json()
        assert report["changes"] == ["dtype"]
        assert report["tolerance"] == PARITY_TOLERANCES[ScoreChange.DTYPE]
        parity = check(report, "parity")
        deviation = gauge(client.get("/metrics").text, Metric.SCORE_CHECK_PARITY_DEVIATION)
        print(f"bf16 vs fp32 record: largest deviation {deviation:.3g}; {parity['message']}")
        assert parity["passed"] is True
        assert PARITY_TOLERANCES[ScoreChange.NONE] < deviation <= report["tolerance"]
    strict = json.dumps({"dtype": PARITY_TOLERANCES[ScoreChange.NONE]})
    for client in serve(model, **base, score_parity_tolerances=strict):
        ready = client.get("/ready")
        assert ready.status_code == 503
        summary = ready.json()["score_check"]
        print(f"bf16 at the NONE tolerance: {summary['message']}")
        assert summary["failed"] == "parity"
        assert "> 0.0001 (changes: dtype)" in summary["message"]


def test_same_setup_restart_and_image_bump_pass(model_and_record) -> None:
    model, record, work = model_and_record
    path = write_json(work / "record-same.json", record)
    for client in serve(model, server_image="reranker-server:1.0", score_record_file=path):
        report = client.get(SCORE_CHECK_PATH).json()
        assert report["changes"] == ["none"] and report["state"] == "passed"
        assert report["tolerance"] == PARITY_TOLERANCES[ScoreChange.NONE]
    for client in serve(model, server_image="reranker-server:1.1", score_record_file=path):
        report = client.get(SCORE_CHECK_PATH).json()
        assert report["changes"] == ["image"] and report["state"] == "passed"
        assert report["tolerance"] == PARITY_TOLERANCES[ScoreChange.IMAGE]


def test_weights_changed_under_the_same_model_id_fail(
    model_and_record, tiny_qwen3_path: Path
) -> None:
    model, record, work = model_and_record
    changed = edited_qwen(tiny_qwen3_path, work / "changed", perturb_weights)
    moved = record_of(record)  # the record is of `model`; this pod loads other weights under it
    moved["identity"]["model"] = str(changed)
    path = write_json(work / "record-moved.json", moved)
    for client in serve(changed, server_image="reranker-server:1.0", score_record_file=path):
        ready = client.get("/ready")
        assert ready.status_code == 503
        summary = ready.json()["score_check"]
        print(f"perturbed weights: {summary['message']}")
        assert summary["failed"] == "parity" and "(changes: none)" in summary["message"]
        assert "probe builtin-" in summary["message"]


def test_a_record_of_another_model_is_skipped(model_and_record) -> None:
    model, record, work = model_and_record
    other = record_of(record, model="Qwen/Qwen3-Reranker-8B")
    path = write_json(work / "record-other.json", other)
    for client in serve(model, dtype="bfloat16", score_record_file=path):
        assert client.get("/ready").status_code == 200
        parity = check(client.get(SCORE_CHECK_PATH).json(), "parity")
        assert parity["passed"] is None
        assert (
            "'Qwen/Qwen3-Reranker-8B'" in parity["skipped"] and "not compared" in parity["skipped"]
        )
        assert gauge(client.get("/metrics").text, Metric.SCORE_CHECK_PARITY_DEVIATION) is None


def test_no_record_yet_is_skipped(model_and_record) -> None:
    model, _record, work = model_and_record
    for client in serve(model, score_record_file=str(work / "absent.json")):
        parity = check(client.get(SCORE_CHECK_PATH).json(), "parity")
        assert parity["passed"] is None and "no record at" in parity["skipped"]
