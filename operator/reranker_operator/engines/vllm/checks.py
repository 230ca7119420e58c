"""What a RerankerService with `engine: vllm` must satisfy: GPUs, none of the bundled server's
model-loading options, none of its request features when vLLM runs bare (vllm.front false; the
front has them all), and vLLM settings that agree with the rest of the spec. Each check becomes a rule
of the spec (its CEL guarded by the engine; reranker_operator.engines.base.Engine.rules)."""

from __future__ import annotations

from reranker_operator.api.cel_terms import AUTOSCALING, CUDA, GPU
from reranker_operator.engines.base import CheckPlace, EngineCheck

# vLLM without our server in front (vllm.front false; the default is true)
BARE = "(has(self.vllm) && has(self.vllm.front) && !self.vllm.front)"

VLLM_CHECKS: tuple[EngineCheck, ...] = (
    EngineCheck(
        CheckPlace.RESOURCES,
        CUDA,
        "engine vllm needs a GPU (resources.gpus, mig, sharedGpu or dra)",
        lambda s: s.resources.on_gpu(),
        field_path=".resources.gpus",
        explain="engine vllm needs a GPU (resources.gpus, mig, sharedGpu or dra): the vLLM "
        "image runs on CUDA",
    ),
    EngineCheck(
        CheckPlace.SETTINGS,
        "!has(self.resources) || !has(self.resources.sharedGpu)"
        " || (has(self.vllm) && has(self.vllm.gpuMemoryUtilization))",
        "engine vllm on a shared GPU needs vllm.gpuMemoryUtilization: vLLM takes that share "
        "of the whole GPU's memory (0.9 by default), leaving the GPU's other sharers none; "
        "set it to this pod's share (e.g. 0.2 with 4 sharers)",
        lambda s: s.resources.shared_gpu is None or s.vllm.gpu_memory_utilization is not None,
        field_path=".vllm.gpuMemoryUtilization",
    ),
    EngineCheck(
        CheckPlace.FEATURES,
        f"!{BARE} || !has(self.server) || !has(self.server.scoreCache)"
        " || !has(self.server.scoreCache.enabled) || !self.server.scoreCache.enabled",
        "server.scoreCache needs the front (vllm.front true): bare vLLM has no score cache",
        lambda s: s.vllm.front or not s.server.score_cache.enabled,
        field_path=".server.scoreCache.enabled",
    ),
    EngineCheck(
        CheckPlace.FEATURES,
        "!has(self.server) || !has(self.server.compileKernels) || !self.server.compileKernels",
        "server.compileKernels compiles the bundled server's CPU decoder (engine transformers); "
        "vLLM compiles its own model (vllm.extraArgs --compilation-config)",
        lambda s: not s.server.compile_kernels,
        field_path=".server.compileKernels",
    ),
    EngineCheck(
        CheckPlace.FEATURES,
        "!has(self.model.attentionImplementation)",
        "model.attentionImplementation is the bundled server's (engine transformers); vLLM "
        "picks its own attention backend (vllm.extraArgs --attention-backend)",
        lambda s: s.model.attention_implementation is None,
        field_path=".model.attentionImplementation",
    ),
    EngineCheck(
        CheckPlace.SETTINGS,
        "!has(self.model.quantization) || self.model.quantization == 'none'",
        "model.quantization (bitsandbytes) is for engine transformers; with vllm, serve a "
        "quantized checkpoint or pass --quantization in vllm.extraArgs",
        lambda s: s.model.quantization == "none",
        field_path=".model.quantization",
    ),
    EngineCheck(
        CheckPlace.SETTINGS,
        f"!has(self.vllm) || !has(self.vllm.tensorParallelSize) || ({GPU}"
        " && self.vllm.tensorParallelSize <= self.resources.gpus"
        " && self.resources.gpus % self.vllm.tensorParallelSize == 0)",
        "vllm.tensorParallelSize must divide resources.gpus (and so be at most it)",
        lambda s: (
            s.vllm.tensor_parallel_size is None
            or (s.resources.gpus >= 1 and s.resources.gpus % s.vllm.tensor_parallel_size == 0)
        ),
        field_path=".vllm.tensorParallelSize",
        explain=lambda s: (
            f"{s.vllm.tensor_parallel_size} does not divide resources.gpus ({s.resources.gpus})"
        ),
    ),
    EngineCheck(
        CheckPlace.SETTINGS,
        "!has(self.vllm) || !has(self.vllm.maxNumBatchedTokens)"
        " || has(self.vllm.maxModelLen) || !has(self.model.maxLength)"
        " || self.vllm.maxNumBatchedTokens >= self.model.maxLength",
        "vllm.maxNumBatchedTokens must be at least the model length (vllm.maxModelLen, else "
        "model.maxLength; with neither, vLLM itself refuses to start an encoder whose own "
        "limit is longer)",
        lambda s: (
            s.vllm.max_num_batched_tokens is None
            or s.vllm.max_model_len is not None
            or s.model.max_length is None
            or s.vllm.max_num_batched_tokens >= s.model.max_length
        ),
        field_path=".vllm.maxNumBatchedTokens",
    ),
    EngineCheck(
        CheckPlace.SETTINGS,
        f"!{BARE} || !{AUTOSCALING} || !(has(self.autoscaling.queuedTokensPerPod)"
        " || has(self.autoscaling.requestsPerSecond) || has(self.autoscaling.p95LatencySeconds))",
        "bare vLLM (vllm.front false) scales on queuedPairsPerPod (vLLM's waiting requests) or "
        "CPU/memory; queuedTokensPerPod, requestsPerSecond and p95LatencySeconds read the "
        "front's metrics",
        lambda s: (
            s.vllm.front
            or not s.autoscaling.enabled
            or (
                s.autoscaling.queued_tokens_per_pod is None
                and s.autoscaling.requests_per_second is None
                and s.autoscaling.p95_latency_seconds is None
            )
        ),
        field_path=".autoscaling",
    ),
    EngineCheck(
        CheckPlace.SETTINGS,
        f"!{BARE} || !has(self.server) || !has(self.server.auth)"
        " || (!has(self.server.auth.apiKeysSecret) && !has(self.server.auth.jwt)"
        " && (!has(self.server.auth.rateLimit) || ("
        "(!has(self.server.auth.rateLimit.requestsPerMinute)"
        " || self.server.auth.rateLimit.requestsPerMinute == 0)"
        " && (!has(self.server.auth.rateLimit.pairsPerMinute)"
        " || self.server.auth.rateLimit.pairsPerMinute == 0)"
        " && (!has(self.server.auth.rateLimit.tokensPerMinute)"
        " || self.server.auth.rateLimit.tokensPerMinute == 0))))",
        "bare vLLM (vllm.front false) takes one API key (server.apiKeySecret); several keys, "
        "JWT and rate limits need the front",
        lambda s: (
            s.vllm.front
            or (
                s.server.auth.api_keys_secret is None
                and s.server.auth.jwt is None
                and s.server.auth.rate_limit.requests_per_minute == 0
                and s.server.auth.rate_limit.pairs_per_minute == 0
                and s.server.auth.rate_limit.tokens_per_minute == 0
            )
        ),
        field_path=".server.auth",
    ),
    EngineCheck(
        CheckPlace.FEATURES,
        f"!{BARE} || !has(self.server) || !has(self.server.longDocuments)"
        " || self.server.longDocuments == 'truncate'",
        "server.longDocuments chunk needs the front (vllm.front true): bare vLLM refuses a "
        "document longer than its max length",
        lambda s: s.vllm.front or s.server.long_documents == "truncate",
        field_path=".server.longDocuments",
    ),
)
