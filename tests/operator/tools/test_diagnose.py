"""`reranker-operator diagnose --url` against the real server, under loads crafted to produce
each verdict (and one that produces none)."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import pytest

from reranker_operator import cli
from reranker_operator.tools.diagnose.signals import Signals
from reranker_operator.tools.diagnose.verdicts import diagnose
from server_helpers import serving


def _run(url: str, load: list[str], *, interval: float = 3.0) -> dict:
    """Run `loadtest URL load...` in the background and diagnose while it runs."""
    out = io.StringIO()
    loader = threading.Thread(
        target=cli.main,
        args=(["loadtest", url, *load, "--json"],),
        kwargs={"stdout": io.StringIO()},
    )
    loader.start()
    try:
        status = cli.main(
            ["diagnose", "live", "--url", url, "--interval", str(interval), "--json"], stdout=out
        )
    finally:
        loader.join(120)
    assert status == 0
    return json.loads(out.getvalue())


def _names(result: dict) -> list[str]:
    return [v["name"] for v in result["verdicts"]]


def test_a_healthy_load_has_no_bottleneck(tiny_qwen3_path) -> None:
    for url in serving(tiny_qwen3_path, max_client_batch_size=64):
        result = _run(url, ["-c", "1", "-d", "4.5", "--documents", "16", "--doc-words", "20-40"])
    sig = result["signals"]
    assert sig["requests_per_s"] > 0 and sig["causal"] is True
    assert _names(result) == [], result


def test_overload_is_queue_bound(tiny_qwen3_path) -> None:
    for url in serving(tiny_qwen3_path, max_concurrent_requests=1, max_client_batch_size=64):
        result = _run(url, ["-c", "6", "-d", "4.5", "--documents", "16"])
    assert result["signals"]["rejected_per_s"] > 0
    assert _names(result)[0] == "queue-bound"
    assert "spec.autoscaling.maxReplicas" in result["verdicts"][0]["remedy"]


def test_a_saturated_model_is_compute_bound(tiny_qwen3_path) -> None:
    for url in serving(tiny_qwen3_path, model_workers=1, max_client_batch_size=64):
        result = _run(url, ["-c", "4", "-d", "4.5", "--documents", "32", "--doc-words", "60-120"])
    assert result["signals"]["inference_busy"] >= 0.8
    assert "compute-bound" in _names(result)


def test_long_documents_are_tokenization_bound_and_truncated(tiny_qwen3_path) -> None:
    for url in serving(tiny_qwen3_path, max_sequence_length=96, max_client_batch_size=64):
        result = _run(
            url, ["-c", "2", "-d", "4.5", "--documents", "16", "--doc-words", "4000-6000"]
        )
    names = _names(result)
    assert "tokenization-bound" in names and "requests truncated" in names, result
    assert result["signals"]["truncated_share"] > 0.9


def test_mixed_lengths_in_one_forward_are_padding_waste(tiny_cross_encoder_path) -> None:
    """A cross-encoder that pads its batches scores a request's documents in one forward of
    whole pairs; documents of 1 to 300 words pad most of it. float16: on a CPU the packed path
    (no padding at all) takes float32 and bfloat16 only."""
    for url in serving(tiny_cross_encoder_path, max_client_batch_size=64, dtype="float16"):
        result = _run(url, ["-c", "1", "-d", "4.5", "--documents", "16", "--doc-words", "1-300"])
    assert result["signals"]["padding_ratio_mean"] > 0.3 and result["signals"]["causal"] is False
    assert "padding waste" in _names(result)
    assert "low prefix reuse" not in _names(result)  # not a Qwen3 model


def test_single_document_requests_reuse_no_prefix(tiny_qwen3_path) -> None:
    for url in serving(tiny_qwen3_path):
        result = _run(url, ["-c", "2", "-d", "4.5", "--documents", "1", "--doc-words", "20-30"])
    assert result["signals"]["prefix_reuse_share"] == 0
    assert {"low prefix reuse", "small requests"} <= set(_names(result))


def test_no_traffic_says_so(tiny_qwen3_path) -> None:
    for url in serving(tiny_qwen3_path):
        out = io.StringIO()
        assert cli.main(["diagnose", "live", "--url", url, "--interval", "1"], stdout=out) == 0
    assert "no traffic in the window" in out.getvalue()


def _healthy(**changes: Any) -> Signals:
    """Signals of a healthy, causal server: no rule fires."""
    from dataclasses import replace

    signals = Signals(
        source="x",
        window_s=10,
        requests_per_s=5,
        rejected_per_s=0,
        rate_limited_per_s=0,
        documents_per_s=80,
        documents_per_request=16,
        latency_p95_s=0.1,
        queue_time_p95_s=0.01,
        tokenization_busy=0.05,
        inference_busy=0.3,
        batch_size_mean=12,
        padding_ratio_mean=0.1,
        prefix_reuse_share=1.0,
        truncated_share=0.0,
        max_batch_size=32,
        model_workers=1,
        causal=True,
    )
    return replace(signals, **changes)


@pytest.mark.parametrize(
    ("changes", "verdict"),
    [
        ({"rejected_per_s": 1.0}, "queue-bound"),
        ({"inference_busy": 0.95}, "compute-bound"),
        ({"padding_ratio_mean": 0.45}, "padding waste"),
        ({"truncated_share": 0.2}, "requests truncated"),
        ({"documents_per_request": 400.0}, "large requests"),
    ],
)
def test_each_rule_by_its_threshold(changes: dict, verdict: str) -> None:
    assert diagnose(_healthy()) == []
    assert verdict in [v.name for v in diagnose(_healthy(**changes))]


def test_family_is_causal_asks_the_family_registry():
    from reranker_contract import ModelFamily
    from reranker_operator.api.families import FAMILY_TRAITS
    from reranker_operator.tools.diagnose.signals import family_is_causal

    for family in ModelFamily:
        assert family_is_causal(family.value) is FAMILY_TRAITS[family].yes_no_causal
    assert family_is_causal("qwen3-causal") is True and family_is_causal("cross-encoder") is False
    assert family_is_causal("a-family-of-a-newer-server") is False
    assert family_is_causal(None) is None


def test_a_server_requiring_keys_shows_its_settings_to_diagnose_with_a_key(tiny_qwen3_path) -> None:
    """Where credentials are required, /info keeps the settings for clients: diagnose sends
    --api-key and knows the family (prefix reuse is judged); without it, it does not."""
    key = "diagnose-key-0123456789"
    for url in serving(tiny_qwen3_path, api_key=key):
        seen = {}
        for sent in (None, key):
            args = ["diagnose", "live", "--url", url, "--interval", "0.5", "--json"]
            out = io.StringIO()
            assert cli.main([*args, *(["--api-key", sent] if sent else [])], stdout=out) == 0
            seen[sent] = json.loads(out.getvalue())["signals"]["causal"]
    assert seen == {None: None, key: True}


def test_behind_the_front_of_vllm_the_remedies_are_vllms() -> None:
    """The front's "model" stage is its calls to vLLM and its prefix reuse vLLM's token hits:
    the verdicts name vLLM's knobs, never the bundled server's refused ones."""
    from reranker_contract.score_check import ScoringEngine

    front = _healthy(
        inference_busy=0.95,
        padding_ratio_mean=0.0,
        prefix_reuse_share=0.2,
        model_workers=8,
        engine=ScoringEngine.VLLM,
    )
    verdicts = {v.name: v for v in diagnose(front)}
    assert set(verdicts) == {"compute-bound", "low prefix reuse"}
    assert "vllm.extraArgs --quantization" in verdicts["compute-bound"].remedy
    assert "spec.model.quantization" not in verdicts["compute-bound"].remedy
    assert "vLLM's prefix cache" in verdicts["low prefix reuse"].evidence
    assert "vllm.enablePrefixCaching" in verdicts["low prefix reuse"].remedy
    ours = {v.name: v for v in diagnose(_healthy(inference_busy=0.95))}
    assert "spec.model.quantization" in ours["compute-bound"].remedy
