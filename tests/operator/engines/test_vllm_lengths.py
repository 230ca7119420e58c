"""engine vllm's sequence length: unset, `--max-model-len` is left out so vLLM takes the model's
own limit (the operator cannot read the model's config); set (vllm.maxModelLen, else
model.maxLength), it caps it, and the batch budget is never below it. tests/vllm start a real
vLLM from such a rendering (test_vllm_long_inputs.py)."""

from __future__ import annotations

from typing import Any

import pytest

from reranker_operator.api.spec import parse_spec
from reranker_operator.engines.vllm.serve import serve_args


def _flags(spec: dict[str, Any]) -> dict[str, str]:
    full = {"engine": "vllm", "resources": {"gpus": 1}, **spec}
    args = serve_args(parse_spec(full))
    return {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if "=" in a}


QWEN = {"name": "Qwen/Qwen3-Reranker-0.6B"}
BGE = {"name": "BAAI/bge-reranker-v2-m3", "family": "cross-encoder"}


@pytest.mark.parametrize(
    ("spec", "model_len", "batched"),
    [
        # no length: vLLM reads the model's (Qwen3: chunked prefill, so the server budget holds)
        ({"model": QWEN}, None, "16384"),
        ({"model": QWEN, "server": {"maxBatchTokens": 4096}}, None, "4096"),
        # an encoder's sequence is never split: vLLM's default is max(model limit, its own)
        ({"model": BGE}, None, None),
        ({"model": {**QWEN, "maxLength": 32768}}, "32768", "32768"),
        ({"model": {**BGE, "maxLength": 512}}, "512", "16384"),
        ({"model": {**QWEN, "maxLength": 512}, "vllm": {"maxModelLen": 1024}}, "1024", "16384"),
        ({"model": BGE, "vllm": {"maxNumBatchedTokens": 2048}}, None, "2048"),
    ],
    ids=str,
)
def test_lengths(spec: dict[str, Any], model_len: str | None, batched: str | None) -> None:
    flags = _flags(spec)
    assert flags.get("--max-model-len") == model_len
    assert flags.get("--max-num-batched-tokens") == batched
