"""spec.vllm.extraArgs is checked against the pinned vLLM's own flag list (operator/reranker_operator/engines/vllm/known_flags.py,
generated from its parser; tests/vllm/test_vllm_flags.py checks the list against the venv): a
flag vLLM does not have is refused naming extraArgs[i], before vLLM would crash-loop on it."""

from __future__ import annotations

from typing import Any

import pytest

from reranker_operator.api.spec import InvalidSpecError, parse_spec
from reranker_operator.engines.vllm.facts import VLLM_OWNED_FLAGS, VLLM_VERSION
from reranker_operator.engines.vllm.known_flags import VLLM_FLAGS_VERSION, VLLM_SERVE_FLAGS


def _spec(extra: list[str]) -> dict[str, Any]:
    return {
        "model": {"name": "Qwen/Qwen3-Reranker-0.6B"},
        "engine": "vllm",
        "resources": {"gpus": 1},
        "vllm": {"extraArgs": extra},
    }


def test_the_list_is_the_pinned_vllms() -> None:
    assert VLLM_FLAGS_VERSION == VLLM_VERSION
    # the list holds the forms argparse registers: --no- twins and short aliases
    assert {"--enable-log-requests", "--no-enable-log-requests", "-tp", "--quantization"} <= (
        VLLM_SERVE_FLAGS
    )
    # every flag the operator keeps to itself is one vLLM has (a stale name would guard nothing)
    assert set(VLLM_OWNED_FLAGS) <= VLLM_SERVE_FLAGS


@pytest.mark.parametrize(
    "extra",
    [
        ["--quantization", "fp8"],
        ["--quantization=fp8"],
        ["-q", "fp8"],
        ["--kv_cache_dtype=fp8"],
        ["--compilation-config.mode=3"],
        ["-O3"],
        ["--no-enable-log-requests"],
        ["--num-gpu-blocks-override", "-1"],
        ["--disable-log-stat"],  # a unique prefix, as argparse
    ],
    ids=str,
)
def test_flags_vllm_takes_pass(extra: list[str]) -> None:
    parse_spec(_spec(extra))


@pytest.mark.parametrize(
    ("extra", "index", "words"),
    [
        (
            ["--seed=1", "--disable-log-requests"],
            1,
            ["--disable-log-requests", "--enable-log-requests"],
        ),
        (["--no-such-flag=1"], 0, ["--no-such-flag", "not a flag of vLLM 0.32.0"]),
        (["--quantization", "fp8", "--task", "score"], 2, ["--task"]),
        (["--disable"], 0, ["ambiguous"]),  # a prefix of several flags, as argparse says
        (["-x"], 0, ["-x"]),
    ],
    ids=str,
)
def test_a_flag_vllm_lacks_is_refused_naming_the_item(
    extra: list[str], index: int, words: list[str]
) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(_spec(extra))
    assert caught.value.field == f"vllm.extraArgs[{index}]", caught.value
    for word in words:
        assert word in str(caught.value), caught.value


def test_another_vllm_tag_is_not_checked_against_the_pinned_flags() -> None:
    """Another release has other flags: the operator cannot judge them, vLLM will."""
    spec = _spec(["--flag-of-a-later-release"])
    spec["vllm"]["image"] = {"tag": "v9.9.9"}
    parse_spec(spec)
    spec["vllm"]["image"] = {"tag": f"v{VLLM_VERSION}"}
    with pytest.raises(InvalidSpecError, match="--flag-of-a-later-release"):
        parse_spec(spec)


def test_generate_check_passes_without_the_vllm_venv(tmp_path) -> None:
    """Where `make vllm-venv` never ran, `generate --check` skips the flag list, saying so,
    and judges the other files alone."""
    import os
    import subprocess
    import sys

    from reranker_devtools.generate import REPO

    env = {**os.environ, "RERANKER_VLLM_VENV": str(tmp_path / "none")}
    done = subprocess.run(
        [sys.executable, "-m", "reranker_devtools.generate", "--check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (
        "skipped operator/reranker_operator/engines/vllm/known_flags.py: no build/vllm-venv"
        in done.stderr
    ), done.stderr
    assert done.returncode == 0, done.stderr
