"""Server settings: one object, filled from CLI flags, then environment variables, then defaults.

Every field is a flag `--field-name` and an environment variable (`ENV` metadata). Flags win
over the environment. Bad values raise `ConfigError` naming the flag and the variable.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from reranker_contract import (
    ATTN_IMPLEMENTATIONS,
    CPU_BF16_MIN_SPEEDUP,
    DEFAULT_INSTRUCTION,
    DEFAULTS,
    DTYPES,
    FAMILIES,
    LONG_DOCUMENT_MODES,
    PORT,
    QUANTIZATIONS,
    Env,
)
from reranker_contract.score_check import BuiltinCheck, ScoreCheckEnv


class ConfigError(ValueError):
    """A setting has an invalid value; the message names the flag and its environment variable."""


def _opt(
    default: Any,
    env: str,
    help: str,
    choices: Sequence[str] | None = None,
    minimum: int | None = None,
    secret: bool = False,
):
    meta = {"env": env, "help": help, "choices": choices, "min": minimum, "secret": secret}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Everything `reranker-server serve` needs."""

    model: str | None = _opt(
        None, Env.MODEL_NAME, "hub id or local directory of the model (required)"
    )
    revision: str | None = _opt(None, Env.MODEL_REVISION, "hub revision (branch, tag or commit)")
    served_model_name: str | None = _opt(
        None,
        Env.SERVED_MODEL_NAME,
        "name in responses; when set, a request whose `model` differs gets 404 (default: the model id)",
    )
    model_family: str = _opt("auto", Env.MODEL_FAMILY, "model family", choices=("auto", *FAMILIES))
    default_instruction: str = _opt(
        DEFAULT_INSTRUCTION,
        Env.DEFAULT_INSTRUCTION,
        "instruction for causal rerankers when a request has none",
    )
    max_sequence_length: int = _opt(
        DEFAULTS.max_sequence_length,
        Env.MAX_SEQUENCE_LENGTH,
        "max tokens per (query, document) sequence; longer documents are truncated. At most the "
        "model's limit; the default caps long-context models so one sequence fits the default "
        "batch budget the warm-up reserves memory for",
        minimum=8,
    )
    dtype: str = _opt(
        "auto",
        Env.DTYPE,
        "weights dtype; auto: on CUDA bfloat16 (compute capability >= 8.0) else float16; on CPU "
        "bfloat16 where the CPU computes it natively (AVX512-BF16/AMX) and a start-up matmul "
        f"check measures it >= {CPU_BF16_MIN_SPEEDUP}x float32, else float32 (logged with the "
        "reason)",
        choices=DTYPES,
    )
    device: str = _opt("auto", Env.DEVICE, "device", choices=("auto", "cpu", "cuda"))
    attn_implementation: str = _opt(
        ATTN_IMPLEMENTATIONS[0],
        Env.ATTN_IMPLEMENTATION,
        "attention kernel (flash_attention_2 needs flash-attn and CUDA)",
        choices=ATTN_IMPLEMENTATIONS,
    )
    compile_kernels: bool = _opt(
        False,
        Env.COMPILE_KERNELS,
        "compile the CPU packed decoder's norms, rotary, SwiGLU and attention merge into fused "
        "kernels with torch.compile (causal rerankers on CPU; needs a C++ compiler; seconds of "
        "compiling during warm-up, cached under the model cache)",
    )
    quantization: str = _opt(
        "none",
        Env.QUANTIZATION,
        "bitsandbytes quantization (needs bitsandbytes and CUDA)",
        choices=QUANTIZATIONS,
    )
    batch_size: int = _opt(
        DEFAULTS.max_batch_size,
        Env.BATCH_SIZE,
        "max sequences per forward pass (engine max_batch_size)",
        minimum=1,
    )
    max_batch_tokens: int = _opt(
        DEFAULTS.max_batch_tokens,
        Env.MAX_BATCH_TOKENS,
        "max padded tokens per forward pass",
        minimum=1,
    )
    max_client_batch_size: int = _opt(
        DEFAULTS.max_client_batch_size,
        Env.MAX_CLIENT_BATCH_SIZE,
        "max documents in one request (more gets 413)",
        minimum=1,
    )
    max_concurrent_requests: int = _opt(
        DEFAULTS.max_concurrent_requests,
        Env.MAX_CONCURRENT_REQUESTS,
        "requests queued or running before 429",
        minimum=1,
    )
    max_request_bytes: int = _opt(
        DEFAULTS.max_request_bytes,
        Env.MAX_REQUEST_BYTES,
        "largest request body, in bytes, on the scoring routes (more gets 413 before it is read)",
        minimum=1024,
    )
    max_request_tokens: int = _opt(
        DEFAULTS.max_request_tokens,
        Env.MAX_REQUEST_TOKENS,
        "most tokens one request may score, after truncation (more gets 413 before scoring)",
        minimum=1,
    )
    max_queued_tokens: int = _opt(
        DEFAULTS.max_queued_tokens,
        Env.MAX_QUEUED_TOKENS,
        "most tokens waiting to be scored in the pod, every request together; a request that "
        "would go beyond gets 429 (one alone always fits)",
        minimum=1,
    )
    long_documents: str = _opt(
        DEFAULTS.long_documents,
        Env.LONG_DOCUMENTS,
        "documents longer than the max sequence length: truncate (cut to fit) or chunk (split "
        "into overlapping windows that fit, the document scoring the max over its windows); a "
        "request's long_documents overrides it",
        choices=LONG_DOCUMENT_MODES,
    )
    chunk_overlap_tokens: int = _opt(
        DEFAULTS.chunk_overlap_tokens,
        Env.CHUNK_OVERLAP_TOKENS,
        "tokens consecutive windows of a chunked document share (at most a quarter window)",
        minimum=0,
    )
    max_chunks_per_document: int = _opt(
        DEFAULTS.max_chunks_per_document,
        Env.MAX_CHUNKS_PER_DOCUMENT,
        "most windows one chunked document may become (more gets 413)",
        minimum=1,
    )
    max_chunks_per_request: int = _opt(
        DEFAULTS.max_chunks_per_request,
        Env.MAX_CHUNKS_PER_REQUEST,
        "most windows of chunked documents one request may hold (more gets 413)",
        minimum=1,
    )
    header_timeout_seconds: int = _opt(
        DEFAULTS.header_timeout_seconds,
        Env.HEADER_TIMEOUT_SECONDS,
        "seconds a connection has to send a request's line and headers before it is closed",
        minimum=1,
    )
    body_timeout_seconds: int = _opt(
        DEFAULTS.body_timeout_seconds,
        Env.BODY_TIMEOUT_SECONDS,
        "seconds a client has to send a request's body (408 after it)",
        minimum=1,
    )
    score_cache_size: int = _opt(
        0, Env.SCORE_CACHE_SIZE, "LRU cache of pair scores (0 = off)", minimum=0
    )
    prefix_cache: bool = _opt(
        True, Env.PREFIX_CACHE, "reuse the shared prompt prefix's KV cache (causal models)"
    )
    model_workers: int = _opt(
        0,
        Env.MODEL_WORKERS,
        "threads running forward passes (0 = auto: 2 on a multi-core CPU, 1 on GPU)",
        minimum=0,
    )
    torch_threads: int = _opt(
        0,
        Env.TORCH_THREADS,
        "torch intra-op threads per model worker (0 = auto: cores / workers)",
        minimum=0,
    )
    api_key: str | None = _opt(
        None, Env.API_KEY, "require `Authorization: Bearer <key>` on scoring routes", secret=True
    )
    api_keys_file: str | None = _opt(
        None,
        Env.API_KEYS_FILE,
        "file (one key per line) or mounted Secret (one key per data key) of API keys, reloaded "
        "when it changes",
    )
    jwt_jwks_file: str | None = _opt(
        None, Env.JWT_JWKS_FILE, "JWKS file: accept JWT bearer tokens signed by its keys"
    )
    jwt_issuer: str | None = _opt(None, Env.JWT_ISSUER, "required `iss` of JWTs")
    jwt_audience: str | None = _opt(None, Env.JWT_AUDIENCE, "required `aud` of JWTs")
    jwt_algorithms: str = _opt(
        "RS256,ES256", Env.JWT_ALGORITHMS, "accepted JWT algorithms (asymmetric only)"
    )
    jwt_leeway_seconds: int = _opt(
        30, Env.JWT_LEEWAY_SECONDS, "clock skew allowed on exp/nbf", minimum=0
    )
    jwt_required_scope: str | None = _opt(
        None, Env.JWT_REQUIRED_SCOPE, "scope a JWT must carry to score (403 otherwise)"
    )
    rate_limit_requests_per_minute: int = _opt(
        0,
        Env.RATE_LIMIT_REQUESTS_PER_MINUTE,
        "per-client requests per minute (0 = no limit)",
        minimum=0,
    )
    rate_limit_pairs_per_minute: int = _opt(
        0,
        Env.RATE_LIMIT_PAIRS_PER_MINUTE,
        "per-client (query, document) pairs per minute (0 = no limit)",
        minimum=0,
    )
    rate_limit_tokens_per_minute: int = _opt(
        0,
        Env.RATE_LIMIT_TOKENS_PER_MINUTE,
        "per-client tokens the model computes per minute, counted after tokenizing (0 = no limit)",
        minimum=0,
    )
    trusted_proxies: str = _opt(
        "",
        Env.TRUSTED_PROXIES,
        "comma-separated addresses/CIDRs whose X-Forwarded-For names the client",
    )
    auth_failures_per_minute: int = _opt(
        DEFAULTS.auth_failures_per_minute,
        Env.AUTH_FAILURES_PER_MINUTE,
        "failed authentications per minute per client address; past them its requests get 429 "
        "without their credentials being checked (0 = no back-off)",
        minimum=0,
    )
    metrics_port: int = _opt(
        0,
        Env.METRICS_PORT,
        "serve /metrics on this port instead of the main one (0 = main)",
        minimum=0,
    )
    host: str = _opt("0.0.0.0", Env.HOST, "listen address")
    port: int = _opt(PORT, Env.PORT, "listen port", minimum=1)
    log_level: str = _opt(
        DEFAULTS.log_level,
        Env.LOG_LEVEL,
        "log level",
        choices=("critical", "error", "warning", "info", "debug"),
    )
    cache_dir: str | None = _opt(
        None,
        Env.CACHE_DIR,
        "model cache directory (unset: huggingface_hub's default, which honours HF_HOME and HF_HUB_CACHE)",
    )
    drain_seconds: int = _opt(
        DEFAULTS.drain_seconds,
        Env.DRAIN_SECONDS,
        "after SIGTERM, seconds to keep serving (every request, /ready 503) before the listener "
        "closes; then the requests in flight finish and the server exits",
        minimum=0,
    )
    request_timeout_seconds: int = _opt(
        DEFAULTS.request_timeout_seconds,
        Env.REQUEST_TIMEOUT_SECONDS,
        "longest a rerank request may run (queue + scoring); 504 after it. Bounds the drain "
        "after SIGTERM (the pod's grace period is sized from it)",
        minimum=1,
    )
    trust_remote_code: bool = _opt(False, Env.TRUST_REMOTE_CODE, "allow model repos' custom code")
    playground: bool = _opt(True, Env.PLAYGROUND, "serve the browser playground at /playground")
    warmup: bool = _opt(
        True,
        Env.WARMUP,
        "score one request at the batch budget before /ready (first forwards, shortcut checks, "
        "GPU memory reserved)",
    )
    score_check: bool = _opt(
        True,
        ScoreCheckEnv.SCORE_CHECK,
        "score the probe set before /ready answers 200 (on/off; off: /ready does not wait)",
    )
    score_check_builtins: str = _opt(
        ",".join(BuiltinCheck),
        ScoreCheckEnv.SCORE_CHECK_BUILTINS,
        "comma list of the built-in checks to run (random-weight test models: leave relevance out)",
    )
    score_probes_file: str | None = _opt(
        None,
        ScoreCheckEnv.SCORE_PROBES_FILE,
        "JSON files of the resource's probes, comma-separated",
    )
    score_record_file: str | None = _opt(
        None,
        ScoreCheckEnv.SCORE_RECORD_FILE,
        "JSON record of a Ready revision's scores, for parity (may not exist)",
    )
    score_parity_tolerances: str | None = _opt(
        None,
        ScoreCheckEnv.SCORE_PARITY_TOLERANCES,
        "JSON {change kind: tolerance} overriding the parity tolerances",
    )
    server_image: str | None = _opt(
        None, ScoreCheckEnv.SERVER_IMAGE, "the image this pod runs (parity: an image change)"
    )

    engine_url: str | None = _opt(
        None,
        Env.ENGINE_URL,
        "score through the vLLM engine process at this URL (e.g. http://127.0.0.1:8001): the "
        "server is its front (tokenizer from --model; /ready waits for vLLM's /health; "
        "/metrics relays vLLM's own vllm:* series; MODEL_WORKERS bounds the calls in flight, "
        "BATCH_SIZE the pairs per call; the calls keep arrival order)",
    )

    def public(self) -> dict[str, Any]:
        """Every setting by field name, secrets (the API key) left out: what `/info` reports."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.metadata["secret"]}

    def engine_config(self):
        """The engine's EngineConfig built from these settings."""
        from reranker_server.contracts import Chunking
        from reranker_server.engine.config import EngineConfig

        workers = self.model_workers
        if self.engine_url and not workers:  # the vLLM front: a worker is a call in flight
            from reranker_server.models.remote_vllm import DEFAULT_CALLS

            workers = DEFAULT_CALLS
        return EngineConfig(
            max_batch_tokens=self.max_batch_tokens,
            max_batch_size=self.batch_size,
            max_concurrent_requests=self.max_concurrent_requests,
            max_request_tokens=self.max_request_tokens,
            max_queued_tokens=self.max_queued_tokens,
            long_documents=self.long_documents,
            chunking=Chunking(
                overlap_tokens=self.chunk_overlap_tokens,
                max_per_document=self.max_chunks_per_document,
                max_per_request=self.max_chunks_per_request,
            ),
            score_cache_size=self.score_cache_size,
            prefix_cache=self.prefix_cache,
            model_workers=workers,
            torch_threads=self.torch_threads,
        )


def flag_name(name: str) -> str:
    """`--max-batch-tokens` for field `max_batch_tokens`."""
    return "--" + name.replace("_", "-")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(f, value: Any, source: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    label = f"{flag_name(f.name)} / {f.metadata['env']} ({source})"
    if value is None:
        return None
    if kind.startswith("bool"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{label}: expected true/false, got {value!r}")
    if kind.startswith("int"):
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ConfigError(f"{label}: expected an integer, got {value!r}") from None
        minimum = f.metadata.get("min")
        if minimum is not None and number < minimum:
            raise ConfigError(f"{label}: must be >= {minimum}, got {number}")
        return number
    text = str(value)
    choices = f.metadata.get("choices")
    if choices:
        text = text.strip().lower()
        if text not in choices:
            raise ConfigError(f"{label}: must be one of {', '.join(choices)}; got {value!r}")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; defaults are None so unset flags fall back to the environment."""
    for f in fields(Settings):
        env = f.metadata["env"]
        choices = f.metadata.get("choices")
        one_of = f" (one of: {', '.join(choices)})" if choices else ""
        help_text = f"{f.metadata['help']}{one_of} [env {env}; default {f.default!r}]"
        kind = f.type if isinstance(f.type, str) else str(f.type)
        if kind.startswith("bool"):
            parser.add_argument(
                flag_name(f.name),
                dest=f.name,
                default=None,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
        else:
            parser.add_argument(flag_name(f.name), dest=f.name, default=None, help=help_text)


def load_settings(
    args: Mapping[str, Any] | argparse.Namespace | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Resolve each setting: explicit flag value, else environment variable, else default."""
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    environ = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if given.get(f.name) is not None:
            values[f.name] = _convert(f, given[f.name], "flag")
        elif environ.get(f.metadata["env"]) not in (None, ""):
            values[f.name] = _convert(f, environ[f.metadata["env"]], "env")
        else:
            values[f.name] = f.default if f.default is not MISSING else None
    return Settings(**values)
