"""User probes: expectations computed independently (a plain transformers forward of the same
tiny model) pass; a wrong expectation fails naming the probe; a bad probe file fails the check
with the field named (the pod stays up and not ready, so the operator can say why)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from score_check_models import check, serve, write_json

from reranker_contract.score_check import SCORE_CHECK_PATH
from reranker_server.app import create_app
from reranker_server.config import ConfigError
from reranker_server.score_check.probes import ProbeFileError, load_probe_file, parse_probes
from server_helpers import settings_for

INSTRUCTION = "Given a question, find the passage that answers it"
QUERY = "which fruit is yellow and curved"
DOCS = [
    "bananas are yellow and curved fruit",
    "the train leaves the station at noon",
    "apples can be red or green",
    "a query about the document",
]


def _probe(qwen_ref, **expect_overrides: Any) -> dict[str, Any]:
    """A probe whose expectations come from the reference forward (not the server)."""
    scores = [qwen_ref.score(QUERY, d, INSTRUCTION) for d in DOCS]
    order = sorted(range(len(DOCS)), key=lambda i: -scores[i])
    expect = {"top": order[0], "order": order, "scores": scores, "tolerance": qwen_ref.tol}
    return {
        "name": "fruit",
        "query": QUERY,
        "documents": DOCS,
        "instruction": INSTRUCTION,
        "expect": {**expect, **expect_overrides},
    }


def test_independent_expectations_pass(tiny_qwen3_path: Path, tmp_path: Path, qwen_ref) -> None:
    probes = write_json(tmp_path / "probes.json", [_probe(qwen_ref)])
    for client in serve(tiny_qwen3_path, score_probes_file=probes):
        assert client.get("/ready").status_code == 200, client.get("/ready").json()
        report = client.get(SCORE_CHECK_PATH).json()
        fruit = check(report, "fruit")
        assert fruit["kind"] == "probe" and fruit["passed"] is True
        scored = next(p for p in report["probes"] if p["name"] == "fruit")
        assert scored["instruction"] == INSTRUCTION and scored["documents"] == DOCS


def test_wrong_order_fails_naming_the_probe(
    tiny_qwen3_path: Path, tmp_path: Path, qwen_ref
) -> None:
    right = _probe(qwen_ref)["expect"]["order"]
    wrong = _probe(qwen_ref, order=right[::-1], top=None, scores=[])
    probes = write_json(tmp_path / "probes.json", [wrong])
    for client in serve(tiny_qwen3_path, score_probes_file=probes):
        ready = client.get("/ready")
        assert ready.status_code == 503
        summary = ready.json()["score_check"]
        assert summary["failed"] == "fruit"
        assert f"document {right[-1]} is not above document {right[-2]}" in summary["message"]
        assert "probe fruit scored [" in summary["message"]


def test_scores_outside_the_tolerance_fail(tiny_qwen3_path: Path, tmp_path: Path, qwen_ref) -> None:
    shifted = [min(1.0, s + 0.1) for s in _probe(qwen_ref)["expect"]["scores"]]
    probe = _probe(qwen_ref, scores=shifted, tolerance=0.05)
    for client in serve(
        tiny_qwen3_path, score_probes_file=write_json(tmp_path / "p.json", [probe])
    ):
        summary = client.get("/ready").json()["score_check"]
        assert summary["failed"] == "fruit" and "± 0.05" in summary["message"], summary


GOOD = {"name": "p", "query": "q", "documents": ["a", "b"], "expect": {"top": 0}}


@pytest.mark.parametrize(
    ("probes", "field"),
    [
        ({"name": "p"}, "(top level)"),
        ([{**GOOD, "query": ""}], "[0] (p).query"),
        ([{**GOOD, "documents": ["only one"]}], "[0] (p).documents"),
        ([{**GOOD, "documents": ["a", 3]}], "[0] (p).documents[1]"),
        ([{**GOOD, "expect": {"top": 2}}], "[0] (p).expect.top"),
        ([{**GOOD, "expect": {"order": [0, 0]}}], "[0] (p).expect.order"),
        ([{**GOOD, "expect": {"order": [0, 5]}}], "[0] (p).expect.order[1]"),
        ([{**GOOD, "expect": {"scores": [0.5]}}], "[0] (p).expect.scores"),
        ([{**GOOD, "expect": {"scores": [0.5, 1.5]}}], "[0] (p).expect.scores[1]"),
        ([{**GOOD, "expect": {"top": 0, "tolerance": -1}}], "[0] (p).expect.tolerance"),
        ([{**GOOD, "expect": {"best": 0}}], "[0] (p).expect.best"),
        ([{**GOOD, "expect": {}}], "[0] (p).expect"),
        ([GOOD, GOOD], "[1].name"),
        ([{**GOOD, "name": "builtin-x"}], "[0].name"),
        ([{**GOOD, "documnets": ["a", "b"]}], "[0].documnets"),
    ],
)
def test_bad_probes_name_the_field(probes: Any, field: str) -> None:
    with pytest.raises(ProbeFileError) as caught:
        parse_probes(probes, "SCORE_PROBES_FILE x")
    assert caught.value.field == field
    assert str(caught.value).startswith(f"SCORE_PROBES_FILE x: {field}: ")


def test_unreadable_and_non_json_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ProbeFileError, match=r"SCORE_PROBES_FILE .*missing.json: \(file\)"):
        load_probe_file(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text('[{"name": "p",]')
    with pytest.raises(ProbeFileError, match=r"\(line 1, column \d+\): not JSON"):
        load_probe_file(str(tmp_path / "bad.json"))


def test_a_bad_probe_file_fails_the_check_not_the_pod(
    tiny_qwen3_path: Path, tmp_path: Path
) -> None:
    bad = [{**GOOD, "expect": {"top": 9}}]
    for client in serve(tiny_qwen3_path, score_probes_file=write_json(tmp_path / "p.json", bad)):
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503
        summary = ready.json()["score_check"]
        assert summary["failed"] == "probes"
        assert "[0] (p).expect.top: must be a document index 0..1, got 9" in summary["message"]
        report = client.get(SCORE_CHECK_PATH).json()
        assert check(report, "spread")["passed"] is True  # the built-ins still ran


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("score_check_builtins", "finite,sprad", "--score-check-builtins / SCORE_CHECK_BUILTINS"),
        ("score_parity_tolerances", json.dumps({"dtyp": 0.1}), "SCORE_PARITY_TOLERANCES: 'dtyp'"),
        ("score_parity_tolerances", "{oops", "SCORE_PARITY_TOLERANCES: not JSON"),
    ],
)
def test_bad_settings_stop_the_start(
    tiny_qwen3_path: Path, setting: str, value: str, named: str
) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        create_app(settings_for(tiny_qwen3_path, **{setting: value}))


def test_two_probe_files_are_both_checked_and_a_name_in_both_is_refused(
    tiny_qwen3_path: Path, tmp_path: Path, qwen_ref
) -> None:
    """SCORE_PROBES_FILE lists the inline probes' file and the probes ConfigMap's (the
    operator's projected volume): both are scored; one name in both files fails `probes`."""
    inline = write_json(tmp_path / "probes.json", [_probe(qwen_ref)])
    other = {**_probe(qwen_ref), "name": "fruit-again"}
    from_map = write_json(tmp_path / "configmap-probes.json", [other])
    for client in serve(tiny_qwen3_path, score_probes_file=f"{inline}, {from_map}"):
        report = client.get(SCORE_CHECK_PATH).json()
        assert check(report, "fruit")["passed"] is True
        assert check(report, "fruit-again")["passed"] is True
    clash = write_json(tmp_path / "clash.json", [_probe(qwen_ref)])
    for client in serve(tiny_qwen3_path, score_probes_file=f"{inline},{clash}"):
        summary = client.get("/ready").json()["score_check"]
        assert summary["failed"] == "probes", summary
        assert "'fruit' is used twice" in summary["message"] and "clash.json" in summary["message"]
