"""Loading a backend turns the tokenizers library's own thread pool off (the engine tokenizes on
threads of its own, with their own priorities), unless the environment already chose."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from reranker_server.contracts import RerankInput
    from reranker_server.models import LoadOptions, load_backend

    backend = load_backend(LoadOptions(model=sys.argv[1], device="cpu", dtype="float32"))
    backend.encode(RerankInput(query="q", documents=["a river flows " * 40] * 256))
    print(os.environ.get("TOKENIZERS_PARALLELISM"), len(os.listdir("/proc/self/task")))
    """
)


def _run(model: str, **env: str) -> tuple[str, int]:
    """(TOKENIZERS_PARALLELISM after loading, the process's threads after a batch encode)."""
    clean = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, model],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.split()
    return out[-2], int(out[-1])


def test_loading_turns_the_tokenizer_pool_off_unless_the_env_chose(tiny_qwen3_path) -> None:
    setting, threads = _run(str(tiny_qwen3_path))
    assert setting == "false"
    chosen, pooled = _run(str(tiny_qwen3_path), TOKENIZERS_PARALLELISM="true")
    assert chosen == "true"
    assert threads < pooled  # the library's pool threads: what the default avoids
