"""Peer servers the tests and the benchmark run beside ours (vLLM, Infinity).

Each peer lives in a venv of its own under build/ (built by a make target: they pin their own
transformers, numpy and more). Where a peer cannot start here (no venv, a CPU its kernels
refuse), `start` raises `PeerUnavailable` with the reason (CPU flags and the peer's own last
words), for a test to skip on.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class PeerUnavailable(RuntimeError):
    """A peer cannot run on this machine; the message says why."""


@dataclass
class PeerServer:
    """A running peer: its base URL, process and log."""

    base_url: str
    process: subprocess.Popen
    log_path: Path
    started_in_s: float


def venv_python(venv: Path, make_target: str) -> Path:
    """A peer venv's interpreter; PeerUnavailable when `make MAKE_TARGET` never finished."""
    exe = venv / "bin" / "python"
    if not (venv / ".installed").exists() or not exe.exists():
        raise PeerUnavailable(f"no venv at {venv} (run `make {make_target}`)")
    return exe


def cpu_flags() -> str:
    """The CPU model and the ISA flags peers' kernels choose from (for skip reasons)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")),
        "unknown CPU",
    )
    flags = next(
        (ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []
    )
    isa = [f for f in flags if f.startswith(("avx512", "amx", "avx2"))]
    return f"{model}; {' '.join(sorted(isa)) or 'no AVX2/AVX-512/AMX'}"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def log_tail(path: Path, lines: int = 25) -> str:
    """The last non-blank lines of a log, or nothing when it cannot be read."""
    try:
        text = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return "\n".join(text[-lines:])


@contextmanager
def start(
    argv: Sequence[str],
    *,
    name: str,
    port: int,
    health_path: str,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600.0,
) -> Iterator[PeerServer]:
    """Run ARGV (which must listen on `port`); yield once `health_path` answers 200, stop it
    when the block exits."""
    started = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            list(argv),
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd="/",
        )
    base = f"http://127.0.0.1:{port}"
    try:
        while not _answers(base + health_path):
            if proc.poll() is not None:
                raise PeerUnavailable(
                    f"{name} exited with {proc.returncode} on {cpu_flags()}:\n{log_tail(log_path)}"
                )
            if time.monotonic() - started > timeout_s:
                raise PeerUnavailable(
                    f"{name} not healthy after {timeout_s:.0f}s on {cpu_flags()}:\n"
                    f"{log_tail(log_path)}"
                )
            time.sleep(0.5)
        yield PeerServer(base, proc, log_path, time.monotonic() - started)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
