"""Start and stop the benchmarked servers as subprocesses on free local ports."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from loadgen import wait_ready
from reranker_contract import Env

BENCH_DIR = Path(__file__).resolve().parent

NAIVE_MODES = {"naive-qwen3": "qwen3", "naive-cross": "cross", "st-naive": "st-cross"}


def server_command(
    kind: str,
    model_dir: Path,
    port: int,
    extra: Sequence[str] = (),
    dtype: str = "float32",
    work: Path | None = None,
) -> list[str]:
    """The argv of one server: `this` (reranker-server serve), a naive mode, vLLM (`vllm`
    for the Qwen3 yes/no family with the operator's score template, `vllm-cross` native) or
    Infinity (`infinity`, cross-encoders only)."""
    if kind == "this":
        entry = "import sys; from reranker_server.cli import main; sys.exit(main())"
        return [
            sys.executable,
            "-c",
            entry,
            "serve",
            "--model",
            str(model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dtype",
            dtype,
            "--device",
            "cpu",
            "--drain-seconds",
            "0",
            "--log-level",
            "warning",
            # a saturated load's p95 reaches a minute on the 0.6B shapes: measure latency,
            # not the default 60 s request timeout's 504s
            "--request-timeout-seconds",
            "3600",
            *extra,
        ]
    if kind in NAIVE_MODES:
        return [
            sys.executable,
            str(BENCH_DIR / "naive_server.py"),
            "--mode",
            NAIVE_MODES[kind],
            "--model",
            str(model_dir),
            "--port",
            str(port),
            "--dtype",
            dtype,
        ]
    if kind in ("vllm", "vllm-cross"):
        from reranker_devtools import vllm

        args = [
            "--model",
            str(model_dir),
            "--runner",
            "pooling",
            "--dtype",
            dtype,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--served-model-name",
            model_dir.name,
        ]
        if kind == "vllm":  # a BERT encoder keeps its 512 positions and has no KV to cache
            from reranker_operator.engines.vllm.facts import VLLM_QWEN3_OVERRIDES
            from reranker_operator.engines.vllm.score_template import qwen3_score_template

            assert work is not None
            template = work / f"score-template-{port}.jinja"
            template.write_text(qwen3_score_template())
            args += [
                "--max-model-len",
                "2048",
                "--enable-prefix-caching",
                "--hf-overrides",
                json.dumps(VLLM_QWEN3_OVERRIDES),
                "--chat-template",
                str(template),
            ]
        return vllm.serve_argv(args)
    if kind == "infinity":
        from reranker_devtools import infinity

        return infinity.serve_argv(model_dir, port, dtype=dtype)
    raise ValueError(f"server kind: unknown {kind!r}")


def bench_env() -> dict[str, str]:
    """Offline, quiet environment shared by every server."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TRANSFORMERS_VERBOSITY="error",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        VLLM_CPU_KVCACHE_SPACE="2",
    )
    from reranker_contract.score_check import ScoreCheckEnv
    from reranker_devtools.tiny_models import UNTRAINED_BUILTINS

    # the score check without relevance: the bench models have random weights
    env.setdefault(ScoreCheckEnv.SCORE_CHECK_BUILTINS, UNTRAINED_BUILTINS)
    return env


def health_path(kind: str) -> str:
    """Where a server says it is ready: ours `/ready`, vLLM's and Infinity's `/health`."""
    if kind.startswith("vllm"):
        return "/health"
    if kind == "infinity":
        from reranker_devtools import infinity

        return infinity.HEALTH_PATH
    return "/ready"


@dataclass
class RunningServer:
    """A benchmarked server: its URL, and SIGSTOP/SIGCONT of its whole process group so an
    idle server (vLLM's engine loop polls) takes no CPU while another is measured."""

    url: str
    proc: subprocess.Popen
    # processes paused and resumed with it (the vLLM behind a `front`)
    companions: tuple[subprocess.Popen, ...] = ()

    def pause(self) -> None:
        for proc in (self.proc, *self.companions):
            os.killpg(proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        for proc in (*self.companions, self.proc):
            os.killpg(proc.pid, signal.SIGCONT)


FRONT = "vllm-front"  # our server in front of its own vLLM (Qwen3 loads): the front's cost
# vLLM's CPU worker by default binds its model to all cores but one and reserves that one for
# its busy-polling scheduler: on 2 vCPUs the model runs on ONE core while this server's uses
# both. `vllm-allcores` (and `vllm-cross-allcores`) is the same vLLM with
# VLLM_CPU_NUM_OF_RESERVED_CPU=0, its model on every core, beside the default
ALL_CORES = "-allcores"
# `this-compiled`: this server with COMPILE_KERNELS (its CPU decoder's elementwise chains as
# torch.compile's fused kernels), beside the default one
COMPILED = "this-compiled"


@contextmanager
def running_server(
    kind: str,
    model_dir: Path,
    log_path: Path,
    extra: Sequence[str] = (),
    ready_timeout_s: float = 600.0,
    dtype: str = "float32",
    extra_env: dict[str, str] | None = None,
    cpus: str | None = None,
) -> Iterator[RunningServer]:
    """Run one server until the block exits; yields it once it answers `health_path(kind)`.
    `vllm-front`: a vLLM of its own, and this server in front of it (ENGINE_URL), paused and
    resumed together. `cpus` (a `taskset -c` list such as "1" or "2-7"): the only CPUs the
    server and every thread it starts may run on."""
    if kind == FRONT:
        engine_log = log_path.with_name(f"{log_path.stem}-engine{log_path.suffix}")
        with running_server(
            "vllm", model_dir, engine_log, (), ready_timeout_s, dtype, cpus=cpus
        ) as engine:
            env = {str(Env.ENGINE_URL): engine.url}
            with running_server(
                "this", model_dir, log_path, extra, ready_timeout_s, dtype, env, cpus
            ) as front:
                yield RunningServer(front.url, front.proc, (engine.proc,))
        return
    from reranker_devtools.ports import free_port

    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**bench_env(), **(extra_env or {})}
    if kind.endswith(ALL_CORES):
        kind = kind.removesuffix(ALL_CORES)
        env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
    if kind == COMPILED:
        kind, extra = "this", (*extra, "--compile-kernels")
        env["TORCHINDUCTOR_CACHE_DIR"] = str(log_path.parent / "torchinductor")
    argv = server_command(kind, model_dir, port, extra, dtype=dtype, work=log_path.parent)
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    if kind == "infinity":
        from reranker_devtools import infinity

        env.update(infinity.env(log_path.parent))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            try:
                asyncio.run(
                    wait_ready(
                        base_url,
                        ready_timeout_s,
                        lambda: proc.poll() is None,
                        path=health_path(kind),
                    )
                )
            except RuntimeError as exc:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{kind}: {exc}\n--- log tail ({log_path}) ---\n{tail}") from exc
            yield RunningServer(base_url, proc)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGCONT)
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
