"""The score gate end to end: the real operator on the emulator in its rolling-update mode, each
pod a REAL reranker server (tiny random Qwen3 models) started from the rendered container at the
pod's own loopback address, ready only when its score check passed.

One RerankerService goes through four revisions:
1. tiny model A, float32: turns Ready; the record ConfigMap holds the pod's probe scores;
2. a broken model (the lm_head rows of "yes" and "no" equal: every score 0.5): the new pod never
   turns Ready, the old one keeps serving, the status says ScoreCheckFailed naming the pod and
   the check, with a Warning Event;
3. model A in bfloat16: parity with the record passes at the dtype tolerance, the pod replaces
   the old one, the record is updated;
4. another model: the record is reset (an Event says so).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from operator_helpers import condition, wait_for
from reranker_contract import Env
from reranker_contract.score_check import (
    RECORD_KEY,
    SCORE_CHECK_FAILED_REASON,
    SCORE_CHECK_PATH,
    SCORE_RECORD_RESET_REASON,
    SCORE_RECORDED_REASON,
)
from reranker_devtools.devcluster import DEPLOYMENTS, PODS, RERANKERS, DevCluster
from reranker_devtools.devcluster.kubelet import PodLaunch, Stop
from reranker_operator.controller.handlers import Controller
from reranker_operator.controller.metrics import OperatorMetric
from reranker_operator.render.labels import score_record_config_map_name

NS, NAME = "default", "gate"
MODEL_A, MODEL_FLAT, MODEL_B = "tiny/qwen3-a", "tiny/qwen3-flat", "tiny/qwen3-b"
PROBE_PERIOD_S = 0.3
STAGE_TIMEOUT_S = 120


def flatten_yes_no(path: Path) -> Path:
    """Make the "yes" and "no" rows of the (tied) lm_head equal: every score is then 0.5, the
    bug of the first guide's code and of vLLM #27857."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        head[no] = head[yes]
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Spec model name -> a local tiny model directory."""
    from reranker_devtools.tiny_models import build_qwen3_reranker

    root = tmp_path_factory.mktemp("gate-models")
    return {
        MODEL_A: build_qwen3_reranker(root / "a", seed=0),
        MODEL_FLAT: flatten_yes_no(build_qwen3_reranker(root / "flat", seed=0)),
        MODEL_B: build_qwen3_reranker(root / "b", seed=1),
    }


class ServerRuntime:
    """Starts `python -m reranker_server.cli` for a pod from its rendered env, bound to the
    pod's address; the spec's model name is mapped to the local tiny model."""

    def __init__(self, models: dict[str, Path]) -> None:
        self.models = models
        self.logs: list[Path] = []

    def __call__(self, launch: PodLaunch) -> Stop:
        env = {
            **launch.env,
            "PATH": os.environ["PATH"],
            "HF_HUB_OFFLINE": "1",
            Env.MODEL_NAME: str(self.models[launch.env[Env.MODEL_NAME]]),
            Env.HOST: launch.ip,
            Env.DEVICE: "cpu",
            Env.LOG_LEVEL: "warning",
            Env.WARMUP: "false",
            Env.TORCH_THREADS: "1",
            Env.MODEL_WORKERS: "1",
        }
        log = launch.workdir / "server.log"
        self.logs.append(log)
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "reranker_server.cli"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

        def stop() -> None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

        return stop


def resource(model: str, dtype: str) -> dict[str, Any]:
    return {
        "apiVersion": "rerankers.io/v1alpha1",
        "kind": "RerankerService",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "model": {"name": model, "family": "qwen3-causal", "dtype": dtype, "maxLength": 512},
            "replicas": 1,
            "scoreCheck": {"builtins": {"relevance": False}},
        },
    }


@pytest.fixture
def rolling(cluster: DevCluster, models: dict[str, Path]) -> Iterator[ServerRuntime]:
    runtime = ServerRuntime(models)
    cluster.rolling_updates(runtime, probe_period_s=PROBE_PERIOD_S)
    yield runtime
    for log in runtime.logs:  # shown when the test failed
        if log.exists():
            print(f"--- {log}\n{log.read_text()[-3000:]}")


def get_json(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def cr(cluster: DevCluster) -> dict[str, Any]:
    return cluster.get(RERANKERS, NS, NAME) or {}


def pods(cluster: DevCluster) -> list[dict[str, Any]]:
    return [p for p in cluster.list(PODS, NS) if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    return (condition(pod, "Ready") or {}).get("status") == "True"


def rolled_out(cluster: DevCluster) -> bool:
    """Ready, the Deployment's rollout complete, one pod, and it ready."""
    dep = cluster.get(DEPLOYMENTS, NS, NAME) or {}
    progressing = condition(dep, "Progressing") or {}
    ready_cond = condition(cr(cluster), "Ready") or {}
    live = pods(cluster)
    return (
        ready_cond.get("status") == "True"
        and progressing.get("reason") == "NewReplicaSetAvailable"
        and (dep.get("status") or {}).get("observedGeneration") == dep["metadata"]["generation"]
        and len(live) == 1
        and ready(live[0])
    )


def record(cluster: DevCluster) -> dict[str, Any] | None:
    cm = cluster.get("v1/configmaps", NS, score_record_config_map_name(NAME))
    return json.loads(cm["data"][RECORD_KEY]) if cm else None


def events(cluster: DevCluster, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.list("v1/events", NS) if e.get("reason") == reason]


def report(pod: dict[str, Any]) -> dict[str, Any]:
    status, body = get_json(f"http://{pod['status']['podIP']}:8080{SCORE_CHECK_PATH}")
    assert status == 200, body
    return body


def holds(operator: Controller) -> float | None:
    """The operator's reranker_operator_score_gate_holds gauge."""
    return operator.metrics.registry.get_sample_value(OperatorMetric.SCORE_GATE_HOLDS)


def snapshot(cluster: DevCluster) -> str:
    """The resource's conditions, the Deployment's status and the pods', for a failure."""
    dep = cluster.get(DEPLOYMENTS, NS, NAME) or {}
    return json.dumps(
        {
            "conditions": (cr(cluster).get("status") or {}).get("conditions"),
            "deployment": dep.get("status"),
            "generation": dep.get("metadata", {}).get("generation"),
            "pods": {p["metadata"]["name"]: p.get("status") for p in pods(cluster)},
            "emulator errors": cluster.emulator.rolling.errors
            + cluster.emulator.rolling.kubelet.errors,
        }
    )


def patch_model(cluster: DevCluster, model: str, dtype: str) -> None:
    cluster.patch(RERANKERS, NS, NAME, {"spec": {"model": {"name": model, "dtype": dtype}}})


def scores(rec: dict[str, Any]) -> dict[str, list[float]]:
    return {p["name"]: p["scores"] for p in rec["probes"]}


def test_a_wrong_scoring_revision_never_takes_traffic(
    cluster: DevCluster, operator: Controller, rolling: ServerRuntime
) -> None:
    began = time.monotonic()
    # 1. the first revision turns Ready; its scores are recorded
    cluster.create(resource(MODEL_A, "float32"))
    wait_for(lambda: rolled_out(cluster), "revision 1 rolled out", timeout=STAGE_TIMEOUT_S)
    first = wait_for(lambda: record(cluster), "the score record")
    (pod1,) = pods(cluster)
    assert first["pod"] == pod1["metadata"]["name"]
    assert first["identity"] == report(pod1)["identity"]
    assert scores(first) == {p["name"]: p["scores"] for p in report(pod1)["probes"]}
    assert first["setup"]["dtype"] == "float32"
    cm = cluster.get("v1/configmaps", NS, score_record_config_map_name(NAME))
    assert cm["metadata"]["ownerReferences"][0]["uid"] == cr(cluster)["metadata"]["uid"]
    wait_for(lambda: len(events(cluster, SCORE_RECORDED_REASON)) == 1, "the record event")
    t1 = time.monotonic() - began

    # 2. a broken model never turns Ready; the old pod serves; the status says why
    patch_model(cluster, MODEL_FLAT, "float32")

    def held() -> dict[str, Any] | None:
        degraded = condition(cr(cluster), "Degraded") or {}
        return degraded if degraded.get("reason") == SCORE_CHECK_FAILED_REASON else None

    try:
        degraded = wait_for(held, "the score gate's hold", timeout=STAGE_TIMEOUT_S)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {snapshot(cluster)}") from None
    (stuck,) = [p for p in pods(cluster) if p["metadata"]["name"] != pod1["metadata"]["name"]]
    verdict = report(stuck)
    assert verdict["state"] == "failed"
    assert not ready(stuck)
    assert degraded["status"] == "True"
    assert stuck["metadata"]["name"] in degraded["message"]
    assert repr(verdict["failed"]) in degraded["message"]
    assert verdict["message"] in degraded["message"]  # what the pod scored
    status = cr(cluster)
    assert (condition(status, "Progressing") or {})["reason"] == SCORE_CHECK_FAILED_REASON
    assert (condition(status, "Ready") or {})["status"] == "True"  # the old pod serves
    warnings = wait_for(
        lambda: [e for e in events(cluster, SCORE_CHECK_FAILED_REASON) if e["type"] == "Warning"],
        "the Warning event",
    )
    assert stuck["metadata"]["name"] in warnings[0]["message"]
    old = cluster.get(PODS, NS, pod1["metadata"]["name"])
    assert ready(old)
    code, answer = get_json(
        f"http://{old['status']['podIP']}:8080/v1/rerank",
        {"query": "what is a reranker", "documents": ["a reranker orders documents", "cats"]},
    )
    assert code == 200 and len(answer["results"]) == 2
    assert record(cluster) == first  # a held revision records nothing
    assert holds(operator) == 1
    t2 = time.monotonic() - began

    # 3. the same model in bfloat16: parity with the record passes, the pod replaces the old one
    patch_model(cluster, MODEL_A, "bfloat16")
    wait_for(lambda: rolled_out(cluster), "the bfloat16 revision", timeout=STAGE_TIMEOUT_S)
    (pod3,) = pods(cluster)
    assert pod3["metadata"]["name"] not in (pod1["metadata"]["name"], stuck["metadata"]["name"])
    parity = [c for c in report(pod3)["checks"] if c["kind"] == "parity"]
    assert parity and all(c["passed"] for c in parity), parity
    assert (condition(cr(cluster), "Degraded") or {})["status"] == "False"
    assert holds(operator) == 0
    updated = wait_for(
        lambda: (r := record(cluster)) and r["setup"]["dtype"] == "bfloat16" and r,
        "the record of the bfloat16 revision",
    )
    assert updated["identity"] == first["identity"] and scores(updated) != scores(first)
    wait_for(lambda: len(events(cluster, SCORE_RECORDED_REASON)) == 2, "the second record event")
    assert not events(cluster, SCORE_RECORD_RESET_REASON)
    t3 = time.monotonic() - began

    # 4. another model: the record is reset, and an Event says so
    patch_model(cluster, MODEL_B, "float32")
    wait_for(
        lambda: (r := record(cluster)) and r["identity"] != first["identity"],
        "the record of the other model",
        timeout=STAGE_TIMEOUT_S,
    )
    (reset,) = wait_for(lambda: events(cluster, SCORE_RECORD_RESET_REASON), "the reset event")
    assert "reset" in reset["message"]
    assert not cluster.emulator.rolling.errors + cluster.emulator.rolling.kubelet.errors
    print(f"stages done at {t1:.1f} s, {t2:.1f} s, {t3:.1f} s, {time.monotonic() - began:.1f} s")
