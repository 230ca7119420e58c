"""The checks as pure functions: consistent's precision tolerances, parity's change kinds and
the largest tolerance among them, relevance on a random-weight model (which fails it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from score_check_models import check, serve

from reranker_contract.score_check import PARITY_TOLERANCES, SCORE_CHECK_PATH, ScoreChange
from reranker_server.score_check.checks import (
    CONSISTENT_TOLERANCES,
    ScoredProbe,
    check_consistent,
    consistent_tolerance,
    parity_tolerance,
    setup_changes,
)
from reranker_server.score_check.probes import BUILTIN_PROBES
from reranker_server.score_check.processor import cpu_model, processor_model

SETUP = {
    "engine": "transformers",
    "image": "a:1",
    "dtype": "float32",
    "quantization": "none",
    "attention": "sdpa",
    "device": "cuda: NVIDIA H100 80GB HBM3",
}


def test_consistent_fails_beyond_the_precision_tolerance() -> None:
    probe = BUILTIN_PROBES[0]
    batched = (0.9, 0.1, 0.2, 0.3)
    tol = consistent_tolerance("float32", "none")
    near = ScoredProbe(probe, batched, tuple(s + tol / 2 for s in batched))
    assert check_consistent([near], tol).passed is True
    far = ScoredProbe(probe, batched, (0.9, 0.1, 0.2 + 2 * tol, 0.3))
    result = check_consistent([far], tol)
    assert result.passed is False
    assert f"probe {probe.name} document 2 scored 0.2 in a batch" in result.message
    assert consistent_tolerance("bfloat16", "none") == CONSISTENT_TOLERANCES["half"]
    assert consistent_tolerance("bfloat16", "int8") == CONSISTENT_TOLERANCES["quantized"]


@pytest.mark.parametrize(
    ("changed", "kinds"),
    [
        ({}, [ScoreChange.NONE]),
        ({"image": "a:2"}, [ScoreChange.IMAGE]),
        ({"engine": "vllm", "image": "a:2"}, [ScoreChange.ENGINE, ScoreChange.IMAGE]),
        ({"dtype": "bfloat16", "attention": "eager"}, [ScoreChange.DTYPE, ScoreChange.ATTENTION]),
        ({"quantization": "int8"}, [ScoreChange.QUANTIZATION]),
        ({"device": "cuda: NVIDIA L4"}, [ScoreChange.DEVICE]),
        ({"device": None}, [ScoreChange.NONE]),  # unknown (the front of vLLM): not compared
    ],
)
def test_changes_and_the_largest_tolerance(changed: dict, kinds: list[ScoreChange]) -> None:
    found = setup_changes(SETUP, {**SETUP, **changed})
    assert found == kinds
    assert parity_tolerance(found, {}) == max(PARITY_TOLERANCES[k] for k in kinds)


def test_overrides_replace_a_kind_only() -> None:
    kinds = [ScoreChange.IMAGE, ScoreChange.DTYPE]
    assert (
        parity_tolerance(kinds, {ScoreChange.DTYPE: 1e-4}) == PARITY_TOLERANCES[ScoreChange.IMAGE]
    )


def test_random_weights_fail_relevance_when_it_runs(tiny_qwen3_path: Path) -> None:
    """Why tests and the demo leave `relevance` out: a random-weight model ranks at random."""
    for client in serve(tiny_qwen3_path, score_check_builtins="finite,spread,consistent,relevance"):
        report = client.get(SCORE_CHECK_PATH).json()
        assert report["failed"] == "relevance", report["checks"]
        assert check(report, "relevance")["message"].startswith("probe builtin-")
        assert client.get("/ready").status_code == 503


def test_every_score_check_env_is_a_setting_and_a_flag() -> None:
    from dataclasses import fields

    from reranker_contract.score_check import ScoreCheckEnv
    from reranker_server.cli import build_parser
    from reranker_server.config import Settings, load_settings

    by_env = {f.metadata["env"]: f.name for f in fields(Settings)}
    assert set(ScoreCheckEnv) <= set(by_env)
    argv = ["serve", "--no-score-check", "--score-check-builtins", "finite"]
    argv += ["--score-probes-file", "p.json", "--score-record-file", "r.json"]
    argv += ["--score-parity-tolerances", '{"image": 0.01}', "--server-image", "img:2"]
    flags = load_settings(build_parser().parse_args(argv), env={})
    env = load_settings(
        {},
        env={
            "SCORE_CHECK": "off",
            "SCORE_CHECK_BUILTINS": "finite",
            "SCORE_PROBES_FILE": "p.json",
            "SCORE_RECORD_FILE": "r.json",
            "SCORE_PARITY_TOLERANCES": '{"image": 0.01}',
            "SERVER_IMAGE": "img:2",
        },
    )
    for name in (by_env[e] for e in ScoreCheckEnv):
        assert getattr(flags, name) == getattr(env, name) != getattr(Settings(), name), name


def test_the_processor_model_is_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t: avx2\n")
    assert cpu_model(info) == "AMD EPYC 9R14"
    assert cpu_model(tmp_path / "missing") is None
    assert processor_model("cpu") == (f"cpu: {cpu_model()}" if cpu_model() else None)
    assert processor_model("vllm") is None and processor_model(None) is None
