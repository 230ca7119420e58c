"""The score check through the front of a real vLLM: a vLLM started without the Qwen3 score
template (the rendered `vllm serve` args minus `--chat-template`; vLLM #21681: scores "almost
random") never lets its front turn ready, its parity with the scores our bundled engine recorded
on the same model failing. The passing half, the same record through a vLLM with the template,
is in test_vllm_front_qwen3.py (whose vLLM has it: one vLLM start per module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from vllm_helpers import (
    FRONT_ARGV,
    bundled_record,
    front_env,
    front_report,
    local_command,
    qwen3_spec,
    resource,
)

from reranker_contract.score_check import CheckState, ScoreChange
from reranker_devtools import peers, vllm
from reranker_devtools.ports import free_port

SERVED = "qwen3-gate"
SPEC = qwen3_spec(SERVED)


@pytest.fixture(scope="module")
def record_file(vllm_qwen3_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundled_record(vllm_qwen3_path, tmp_path_factory.mktemp("record"))


def _vllm(model_dir: Path, work: Path, *, template: bool) -> Iterator[peers.PeerServer]:
    port = free_port()
    args, env = local_command(resource("gate", SPEC), model_dir, work, port)
    if not template:
        args = [a for a in args if not a.startswith("--chat-template")]
    try:
        with vllm.start(args, port=port, log_path=work / "vllm.log", env=env) as server:
            print(f"vLLM (template: {template}) started in {server.started_in_s:.0f}s")
            yield server
    except peers.PeerUnavailable as exc:
        pytest.skip(f"vLLM cannot run here: {exc}")


@pytest.fixture(scope="module")
def templateless_vllm(vllm_qwen3_path: Path, tmp_path_factory) -> Iterator[peers.PeerServer]:
    yield from _vllm(vllm_qwen3_path, tmp_path_factory.mktemp("vllm-no-template"), template=False)


def test_a_vllm_without_the_score_template_never_turns_ready(
    templateless_vllm: peers.PeerServer, vllm_qwen3_path: Path, record_file: Path, tmp_path: Path
) -> None:
    status, report = front_report(
        templateless_vllm.base_url, vllm_qwen3_path, SERVED, record_file, tmp_path / "front.log"
    )
    parity = next(c for c in report["checks"] if c["name"] == "parity")
    print("parity:", parity["message"])
    assert status == 503
    assert report["state"] == CheckState.FAILED and report["failed"] == "parity", report
    assert report["setup"]["engine"] == "vllm" and report["changes"] == [ScoreChange.ENGINE]
    assert parity["passed"] is False


def test_the_front_leaves_ready_when_vllm_dies(
    templateless_vllm: peers.PeerServer, vllm_qwen3_path: Path, tmp_path: Path
) -> None:
    """Without a record the built-ins pass (the template only changes what is scored) and the
    front turns ready; once its vLLM is gone /ready answers 503 on the next probe, so the pod
    leaves the Service's endpoints. Last in the module: it stops the module's vLLM."""
    port = free_port()
    env = front_env(templateless_vllm.base_url, vllm_qwen3_path, SERVED, port)
    with peers.start(
        FRONT_ARGV,
        name="front",
        port=port,
        health_path="/ready",
        log_path=tmp_path / "f.log",
        env=env,
        timeout_s=240,
    ) as front:
        info = httpx.get(f"{front.base_url}/info", timeout=30).json()
        assert info["engine"]["engine"] == "vllm"
        assert info["engine"]["url"] == templateless_vllm.base_url
        ready = httpx.get(f"{front.base_url}/ready", timeout=30)
        assert ready.status_code == 200 and ready.json()["engine_answers"] is True
        templateless_vllm.process.terminate()
        templateless_vllm.process.wait(timeout=120)
        ready = httpx.get(f"{front.base_url}/ready", timeout=30)
        assert ready.status_code == 503 and ready.json()["engine_answers"] is False, ready.json()
