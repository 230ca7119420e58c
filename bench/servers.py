"""Start and stop the benchmarked servers as subprocesses on free local ports."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from loadgen import wait_ready

BENCH_DIR = Path(__file__).resolve().parent

NAIVE_MODES = {"naive-qwen3": "qwen3", "naive-cross": "cross", "st-naive": "st-cross"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(kind: str, model_dir: Path, port: int, extra: Sequence[str] = ()) -> list[str]:
    """The argv of one server: `this` (reranker-server serve) or a naive mode."""
    if kind == "this":
        entry = "import sys; from reranker_server.cli import main; sys.exit(main())"
        return [sys.executable, "-c", entry, "serve", "--model", str(model_dir),
                "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--device", "cpu",
                "--drain-seconds", "0", "--log-level", "warning", *extra]
    if kind in NAIVE_MODES:
        return [sys.executable, str(BENCH_DIR / "naive_server.py"), "--mode", NAIVE_MODES[kind],
                "--model", str(model_dir), "--port", str(port)]
    raise ValueError(f"server kind: unknown {kind!r}")


def bench_env() -> dict[str, str]:
    """Offline, quiet environment shared by every server.

    PYTHONSAFEPATH keeps the working directory off sys.path, so the repository's `operator/`
    folder can never shadow the standard library inside a server.
    """
    env = dict(os.environ)
    env.update(PYTHONSAFEPATH="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TRANSFORMERS_VERBOSITY="error", TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1")
    return env


@contextmanager
def running_server(kind: str, model_dir: Path, log_path: Path, extra: Sequence[str] = (),
                   ready_timeout_s: float = 300.0) -> Iterator[str]:
    """Run one server until the block exits; yields its base URL once `/ready` answers 200."""
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(server_command(kind, model_dir, port, extra), stdout=log,
                                stderr=subprocess.STDOUT, env=bench_env())
        try:
            base_url = f"http://127.0.0.1:{port}"
            try:
                asyncio.run(wait_ready(base_url, ready_timeout_s, lambda: proc.poll() is None))
            except RuntimeError as exc:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{kind}: {exc}\n--- log tail ({log_path}) ---\n{tail}") from exc
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
