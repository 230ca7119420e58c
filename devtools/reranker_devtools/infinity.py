"""A real Infinity (PyPI `infinity-emb`, torch engine, built by `make infinity-venv`): the
cross-encoder peer of the benchmark and of the agreement test.

Infinity serves a local model directory with dynamic batching (`--batch-size` pairs per
forward) and answers `POST /v1/rerank` (under `--url-prefix /v1`) with Cohere-shaped results.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reranker_devtools import REPO, peers

VENV = Path(os.environ.get("RERANKER_INFINITY_VENV", REPO / "build" / "infinity-venv"))
URL_PREFIX = "/v1"  # where our clients post: /v1/rerank
HEALTH_PATH = "/health"  # outside the prefix
DEFAULT_BATCH_SIZE = 32  # Infinity's own default


def env(home: Path) -> dict[str, str]:
    """Offline, no usage statistics, its cache (`.infinity_cache`) under HOME."""
    return {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "INFINITY_ANONYMOUS_USAGE_STATS": "0",
        "DO_NOT_TRACK": "1",
        "INFINITY_HOME": str(home),
        "COLUMNS": "160",
    }


def serve_argv(
    model_dir: Path, port: int, *, dtype: str = "float32", batch_size: int = DEFAULT_BATCH_SIZE
) -> list[str]:
    """`infinity_emb v2` on MODEL_DIR at 127.0.0.1:PORT on the CPU (torch engine)."""
    python = peers.venv_python(VENV, "infinity-venv")
    return [
        str(python),
        "-m",
        "infinity_emb.cli",
        "v2",
        "--model-id",
        str(model_dir),
        "--served-model-name",
        model_dir.name,
        "--engine",
        "torch",
        "--device",
        "cpu",
        "--dtype",
        dtype,
        "--batch-size",
        str(batch_size),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--url-prefix",
        URL_PREFIX,
        "--log-level",
        "warning",
    ]


@contextmanager
def start(
    model_dir: Path,
    *,
    port: int,
    log_path: Path,
    dtype: str = "float32",
    batch_size: int = DEFAULT_BATCH_SIZE,
    timeout_s: float = 600.0,
) -> Iterator[peers.PeerServer]:
    """Run Infinity on MODEL_DIR until the block exits; yields once it is healthy."""
    argv = serve_argv(model_dir, port, dtype=dtype, batch_size=batch_size)
    with peers.start(
        argv,
        name="Infinity",
        port=port,
        health_path=HEALTH_PATH,
        log_path=log_path,
        env=env(log_path.parent),
        timeout_s=timeout_s,
    ) as server:
        yield server
