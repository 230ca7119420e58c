"""`spec.vllm`: the settings of vLLM's OpenAI server when spec.engine is vllm."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from reranker_operator.api.base import SpecModel
from reranker_operator.api.cel_rules import Rule
from reranker_operator.engines.vllm.facts import VLLM_IMAGE, VLLM_OWNED_FLAGS, VLLM_VERSION


def owned_flag(arg: str) -> str | None:
    """The operator-set `vllm serve` flag `arg` names (`--dtype` or `--dtype=half`), else None."""
    name = arg.split("=", 1)[0]
    return name if name in VLLM_OWNED_FLAGS else None


# vLLM's own --gpu-memory-utilization default, rendered when vllm.gpuMemoryUtilization is unset
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
_OWNED_CEL = "[" + ", ".join(f"'{flag}'" for flag in VLLM_OWNED_FLAGS) + "]"


class VllmImageSpec(SpecModel):
    """The vLLM image (its OpenAI server entrypoint)."""

    repository: str = Field(
        VLLM_IMAGE, min_length=1, max_length=512, description="Image repository."
    )
    tag: str = Field(
        f"v{VLLM_VERSION}",
        min_length=1,
        max_length=128,
        description=f"Image tag or sha256:... digest; v{VLLM_VERSION} is the version the "
        "operator's arguments, alerts and dashboard are checked against.",
    )
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Image pull policy."
    )


class VllmSpec(SpecModel):
    """vLLM's OpenAI server (engine: vllm) with the pooling runner. Qwen3 yes/no rerankers get
    the sequence-classification overrides and a score template with the model card's prompt
    (spec.model.instruction its default; a request's instruction through
    chat_template_kwargs); cross-encoders are served natively. With model.family auto, a model
    name containing Qwen3-Reranker is taken for the yes/no family. Unset numbers are sized from
    the resource: tensorParallelSize = resources.gpus, maxModelLen = model.maxLength (else
    unset: vLLM takes the model's own limit), maxNumBatchedTokens = max(maxModelLen,
    server.maxBatchTokens) (with no length: server.maxBatchTokens for Qwen3, whose long
    sequences run in chunks; vLLM's own default for an encoder). vLLM refuses a request with a
    document longer than maxModelLen (400) unless the request asks it to truncate
    (max_tokens_per_doc; docs/engine.md)."""

    image: VllmImageSpec = Field(default_factory=VllmImageSpec)
    front: bool = Field(
        True,
        description="Run the bundled server (spec.image) in the pod as vLLM's front: the "
        "Service, probes, NetworkPolicy and autoscaling target it, it scores through vLLM over "
        "localhost and serves every API shape, API keys, the playground, long-document "
        "chunking, the score check and the queued-pairs signal. false keeps bare vLLM as the "
        "only container, without those (the table in docs/engine.md).",
    )
    tensor_parallel_size: int | None = Field(
        None,
        ge=1,
        le=16,
        description="GPUs one model replica spans (--tensor-parallel-size); resources.gpus "
        "must be a multiple (the rest run as data-parallel ranks).",
    )
    gpu_memory_utilization: float | None = Field(
        None,
        ge=0.05,
        le=1.0,
        description="Share of each GPU's memory vLLM may take (--gpu-memory-utilization); "
        f"unset: {DEFAULT_GPU_MEMORY_UTILIZATION}. Required on a shared GPU "
        "(resources.sharedGpu), where it is a share of the whole GPU's memory.",
    )

    @property
    def gpu_memory_share(self) -> float:
        """--gpu-memory-utilization: the setting, else vLLM's own default."""
        if self.gpu_memory_utilization is None:
            return DEFAULT_GPU_MEMORY_UTILIZATION
        return self.gpu_memory_utilization

    max_model_len: int | None = Field(
        None,
        ge=16,
        le=1048576,
        description="Longest query-document sequence (--max-model-len); unset: model.maxLength, "
        "else the model's own limit. A longer request gets 400 unless it asks vLLM to truncate.",
    )
    enable_prefix_caching: bool = Field(
        True,
        description="Reuse the KV cache of a shared prompt prefix (--enable-prefix-caching): "
        "the instruction and query shared by a request's documents. Causal (Qwen3) models "
        "only: encoders keep no KV cache and always run without it.",
    )
    max_num_seqs: int | None = Field(
        None, ge=1, le=65536, description="Sequences per scheduler step (--max-num-seqs)."
    )
    max_num_batched_tokens: int | None = Field(
        None,
        ge=16,
        le=16777216,
        description="Tokens per scheduler step (--max-num-batched-tokens); at least maxModelLen.",
    )
    extra_args: list[
        Annotated[str, Field(min_length=1, max_length=1024, description="One argument.")]
    ] = Field(
        default_factory=list,
        max_length=64,
        description="More `vllm serve` arguments (e.g. --quantization fp8); none may be a flag "
        "the operator sets from the resource, and with the pinned image (tag "
        f"v{VLLM_VERSION}) every flag must be one vLLM {VLLM_VERSION} has (its parser's list, "
        "recorded by `make generate`), else InvalidSpec; another tag's flags are not checked.",
    )

    def runs_pinned_image(self) -> bool:
        """Whether the pods run the vLLM release the operator's flag list was read from."""
        return self.image.tag == f"v{VLLM_VERSION}"

    rules = (
        Rule(
            "!has(self.extraArgs) || self.extraArgs.all(a, !(a in "
            f"{_OWNED_CEL}) && !{_OWNED_CEL}.exists(f, a.startsWith(f + '=')))",
            "extraArgs may not set a flag the operator sets from the resource",
            lambda v: all(owned_flag(a) is None for a in v.extra_args),
            field_path=".extraArgs",
            explain=lambda v: (
                f"{next(owned_flag(a) for a in v.extra_args if owned_flag(a))} is set by the "
                "operator from the resource; use the field for it instead"
            ),
        ),
        Rule(
            "!has(self.maxNumBatchedTokens) || !has(self.maxModelLen)"
            " || self.maxNumBatchedTokens >= self.maxModelLen",
            "maxNumBatchedTokens must be at least maxModelLen (a pooling model's sequence is "
            "never split)",
            lambda v: (
                v.max_num_batched_tokens is None
                or v.max_model_len is None
                or v.max_num_batched_tokens >= v.max_model_len
            ),
            field_path=".maxNumBatchedTokens",
        ),
    )
