"""What `engine: vllm` runs: the `vllm serve` arguments and environment of the server container,
from the parsed spec. The Deployment template places them; the tests start a real vLLM with
exactly these (paths mapped to their temp dirs)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reranker_contract import MODEL_CACHE_PATH, Env, served_model_name
from reranker_operator.engines.vllm.facts import (
    VLLM_FRONTED_PORT,
    VLLM_HEALTH_PATH,
    VLLM_PORT,
    VLLM_QWEN3_OVERRIDES,
    VLLM_TEMPLATE_DIR,
    VLLM_TEMPLATE_FILE,
)
from reranker_operator.engines.vllm.score_template import qwen3_score_template

if TYPE_CHECKING:
    from reranker_operator.api.spec import RerankerServiceSpec

LOCALHOST = "127.0.0.1"  # where vLLM listens behind the front, and where the front calls it

# Writable places vLLM and its libraries use, all under the pod's /tmp emptyDir (the root
# filesystem is read-only and the container runs as a non-root user).
_WRITABLE = {
    "HOME": "/tmp/home",
    "XDG_CACHE_HOME": "/tmp/cache",
    "VLLM_CACHE_ROOT": "/tmp/cache/vllm",
    "VLLM_CONFIG_ROOT": "/tmp/config/vllm",
    "TRITON_CACHE_DIR": "/tmp/cache/triton",
}


@dataclass(frozen=True)
class VllmSizing:
    """The numbers vLLM runs with, the spec's or the defaults sized from the resource."""

    tensor_parallel: int
    data_parallel: int
    max_model_len: int | None  # None: vLLM's own default, the model's limit
    max_num_batched_tokens: int | None  # None: vLLM's own default, at least the model's limit


def sizing(spec: RerankerServiceSpec) -> VllmSizing:
    """The spec's numbers, else: tensor parallel over every GPU; the model length the resource
    caps (vllm.maxModelLen, else model.maxLength), else none, so vLLM takes the model's own
    limit from its config (max_position_embeddings), which the operator cannot read; the
    batch budget at least that length (a pooling sequence is never split) and at least
    server.maxBatchTokens. With the length unknown, a causal model (chunked prefill, a long
    sequence runs in chunks) keeps server.maxBatchTokens; an encoder leaves it to vLLM, which
    takes max(model limit, its default)."""
    v = spec.vllm
    gpus = max(spec.resources.gpus, 1)
    tp = v.tensor_parallel_size or gpus
    max_len = v.max_model_len or spec.model.max_length
    batched = v.max_num_batched_tokens
    if batched is None and max_len is not None:
        batched = max(max_len, spec.server.max_batch_tokens)
    elif batched is None and spec.model.is_causal():
        batched = spec.server.max_batch_tokens
    return VllmSizing(tp, gpus // tp, max_len, batched)


def score_template(spec: RerankerServiceSpec) -> str | None:
    """The score template file's text (Qwen3 models), None for a cross-encoder."""
    return qwen3_score_template(spec.model.instruction) if spec.model.is_causal() else None


def prefix_caching(spec: RerankerServiceSpec) -> bool:
    """vLLM's prefix cache: for causal models (Qwen3) as `vllm.enablePrefixCaching` says; never
    for encoders, which keep no KV cache (vLLM 0.32 warns and its engine fails to start)."""
    return spec.vllm.enable_prefix_caching and spec.model.is_causal()


def listen_port(spec: RerankerServiceSpec) -> int:
    """Where vLLM listens: behind the front its own port, bare the Service's."""
    return VLLM_FRONTED_PORT if spec.vllm.front else VLLM_PORT


def listen_host(spec: RerankerServiceSpec) -> str:
    """Behind the front, localhost only: the front (same pod) is vLLM's one client, and no one
    else can reach vLLM's unauthenticated routes, whether or not the cluster enforces the
    NetworkPolicy (vLLM's --api-key guards only /v1, /v2, /inference and /cohere, not /score;
    its /metrics reaches Prometheus through the front, reranker_server.engine_metrics). Bare,
    every interface: it is the Service's endpoint."""
    return LOCALHOST if spec.vllm.front else "0.0.0.0"


def engine_url(spec: RerankerServiceSpec) -> str:
    """The front's ENGINE_URL: vLLM in the same pod, over localhost."""
    return f"http://{LOCALHOST}:{listen_port(spec)}"


def health_url(spec: RerankerServiceSpec) -> str:
    """vLLM's /health as a process in its pod reaches it."""
    return f"{engine_url(spec)}{VLLM_HEALTH_PATH}"


def template_path() -> str:
    return f"{VLLM_TEMPLATE_DIR}/{VLLM_TEMPLATE_FILE}"


def serve_args(spec: RerankerServiceSpec) -> list[str]:
    """The arguments of `vllm serve` (the image's entrypoint takes them after the model).

    Every value is one `--flag=value` item, so a value starting with `-` is never read as a flag.
    """
    m, v, size = spec.model, spec.vllm, sizing(spec)
    args = [
        f"--model={m.name}",
        f"--revision={m.revision}",
        f"--served-model-name={served_model_name(m.name, m.served_name)}",
        f"--host={listen_host(spec)}",
        f"--port={listen_port(spec)}",
        "--runner=pooling",
        f"--dtype={m.dtype}",
        f"--tensor-parallel-size={size.tensor_parallel}",
        f"--gpu-memory-utilization={v.gpu_memory_share}",
        "--enable-prefix-caching" if prefix_caching(spec) else "--no-enable-prefix-caching",
        # after SIGTERM (once the preStop sleep is over) the requests in flight finish (vLLM's
        # default, 0, aborts them)
        f"--shutdown-timeout={spec.server.request_timeout_seconds}",
    ]
    if size.max_model_len is not None:
        args.append(f"--max-model-len={size.max_model_len}")
    if size.max_num_batched_tokens is not None:
        args.append(f"--max-num-batched-tokens={size.max_num_batched_tokens}")
    if size.data_parallel > 1:
        args.append(f"--data-parallel-size={size.data_parallel}")
    if v.max_num_seqs is not None:
        args.append(f"--max-num-seqs={v.max_num_seqs}")
    if m.trust_remote_code:
        args.append("--trust-remote-code")
    if spec.model.is_causal():
        args += [
            f"--hf-overrides={json.dumps(VLLM_QWEN3_OVERRIDES, separators=(',', ':'))}",
            f"--chat-template={template_path()}",
        ]
    return [*args, *v.extra_args]


def serve_env(spec: RerankerServiceSpec) -> list[dict[str, Any]]:
    """The container's environment before the user's `env`: offline from the shared cache,
    no usage reporting, writable caches under /tmp, the API key from its Secret (bare vLLM:
    behind the front, the front holds the keys)."""
    env: list[dict[str, Any]] = [
        {"name": str(Env.HF_HOME), "value": MODEL_CACHE_PATH},
        # where `reranker-server download --cache-dir` wrote the snapshot (without it vLLM would
        # read HF_HOME/hub and, offline, find nothing)
        {"name": "HF_HUB_CACHE", "value": MODEL_CACHE_PATH},
        {"name": str(Env.HF_HUB_OFFLINE), "value": "1"},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
        *({"name": k, "value": val} for k, val in _WRITABLE.items()),
    ]
    key = spec.server.api_key_secret
    if key is not None and not spec.vllm.front:  # behind the front the front checks keys
        ref = {"name": key.name, "key": key.key}
        env.append({"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": ref}})
    return env
