"""The rendered `engine: vllm` pod, read as vLLM and the kubelet would: its flags (each once,
the user's extras last), the score template ConfigMap it mounts, GPUs, shared memory, probes, the
offline cache the init container fills, and what a cross-encoder gets instead. tests/vllm start
a real vLLM from the same rendering."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from render_helpers import VLLM_SPEC, make_cr
from reranker_operator.api.spec import InvalidSpecError, parse_spec
from reranker_operator.engines.vllm.facts import (
    VLLM_HEALTH_PATH,
    VLLM_QWEN3_OVERRIDES,
    VLLM_TEMPLATE_DIR,
    VLLM_TEMPLATE_FILE,
)
from reranker_operator.render.manifests import render_children


def _kids(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{c['kind']}/{c['metadata']['name']}": c for c in render_children(make_cr(spec))}


def _flags(args: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for arg in args:
        flag, _, value = arg.partition("=")
        assert flag not in out, f"{flag} given twice"
        out[flag] = value
    return out


def bare(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with vLLM alone in the pod (vllm.front false)."""
    return {**spec, "vllm": {**spec.get("vllm", {}), "front": False}}


def test_qwen3_on_vllm_tensor_parallel() -> None:
    kids = _kids(bare(VLLM_SPEC))
    deployment = kids["Deployment/demo"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["command"] == ["vllm", "serve"]
    flags = _flags(container["args"])
    assert flags["--runner"] == "pooling" and flags["--model"] == "Qwen/Qwen3-Reranker-8B"
    assert flags["--served-model-name"] == "qwen3-8b" and flags["--dtype"] == "bfloat16"
    assert (flags["--tensor-parallel-size"], flags["--data-parallel-size"]) == ("2", "2")
    assert flags["--max-model-len"] == "32768" and flags["--max-num-batched-tokens"] == "65536"
    assert "--enable-prefix-caching" in flags and json.loads(flags["--hf-overrides"]) == (
        VLLM_QWEN3_OVERRIDES
    )
    assert container["args"][-1] == "--seed=1"  # the user's extras come last
    assert str(container["resources"]["limits"]["nvidia.com/gpu"]) == "4"
    # the score template: a ConfigMap with the resource's instruction, mounted where the flag says
    template_cm = kids["ConfigMap/demo-vllm-template"]
    text = template_cm["data"][VLLM_TEMPLATE_FILE]
    assert "Find the passage" in text and text.endswith("\n")
    assert flags["--chat-template"] == f"{VLLM_TEMPLATE_DIR}/{VLLM_TEMPLATE_FILE}"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts[VLLM_TEMPLATE_DIR]]["configMap"]["name"] == "demo-vllm-template"
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"  # NCCL across the TP
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == VLLM_HEALTH_PATH
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 900  # load a big model
    env = {e["name"]: e for e in container["env"]}
    assert env["HF_HUB_OFFLINE"]["value"] == "1"
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "vllm-key"
    [init] = pod["initContainers"]
    cache_dir = next(a.split("=", 1)[1] for a in init["args"] if a.startswith("--cache-dir="))
    assert env["HF_HUB_CACHE"]["value"] == cache_dir  # vLLM reads what the init wrote


def test_a_cross_encoder_on_vllm_has_no_template_and_no_prefix_cache() -> None:
    spec = {
        "model": {"name": "BAAI/bge-reranker-v2-m3", "family": "cross-encoder"},
        "engine": "vllm",
        "resources": {"gpus": 1},
        "metrics": {"prometheusRule": {"enabled": True}},
    }
    kids = _kids(bare(spec))
    [container] = kids["Deployment/demo"]["spec"]["template"]["spec"]["containers"]
    flags = _flags(container["args"])
    assert "--hf-overrides" not in flags and "--chat-template" not in flags
    # vLLM 0.32 fails to start a BERT encoder with --enable-prefix-caching (no KV cache groups)
    assert "--no-enable-prefix-caching" in flags and "--enable-prefix-caching" not in flags
    assert "ConfigMap/demo-vllm-template" not in kids
    alerts = [r["alert"] for r in kids["PrometheusRule/demo"]["spec"]["groups"][0]["rules"]]
    assert "RerankerPrefixReuseLow" not in alerts  # nothing to measure


@pytest.mark.parametrize(
    "extra",
    [
        "--port=9000",
        "--tensor-parallel-size=1",
        "-tp=1",
        "--max_model_len=10",
        "--served-model",
        "--api-key=x",
    ],
)
def test_extra_args_cannot_repeat_a_flag_the_operator_owns(extra: str) -> None:
    spec = copy.deepcopy(VLLM_SPEC)
    spec["vllm"]["extraArgs"] = [extra]
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(spec)
    assert caught.value.field.startswith("vllm.extraArgs"), caught.value
