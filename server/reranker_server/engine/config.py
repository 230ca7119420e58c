"""Knobs of the throughput engine (see docs/engine.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from reranker_contract import DEFAULTS, LONG_DOCUMENT_MODES
from reranker_server.contracts import Chunking
from reranker_server.engine.sub_batches import DEFAULT_OVERHEAD_TOKENS


@dataclass(frozen=True)
class EngineConfig:
    """Scheduler and cache settings; every field has a safe default."""

    max_batch_tokens: int = (
        DEFAULTS.max_batch_tokens
    )  # padded tokens per forward: batch size x longest sequence
    max_batch_size: int = DEFAULTS.max_batch_size  # sequences per forward
    max_concurrent_requests: int = (
        DEFAULTS.max_concurrent_requests
    )  # admitted requests in flight; more -> QueueFullError
    # tokens (after truncation) one request may score: more -> TooManyTokensError (413)
    max_request_tokens: int = DEFAULTS.max_request_tokens
    # tokens queued in the engine, every request together: a request that would go beyond
    # waits for nothing and gets QueueFullError (429); one alone in an empty queue always fits
    max_queued_tokens: int = DEFAULTS.max_queued_tokens
    # documents that do not fit, when a request does not say (long_documents): "truncate" them,
    # or "chunk" them into windows (`chunking`) scored whole (models/chunking.py)
    long_documents: str = DEFAULTS.long_documents
    chunking: Chunking = Chunking()
    score_cache_size: int = (
        0  # LRU entries of (model, instruction, query, doc, truncation) -> score
    )
    prefix_cache: bool = True  # use the backend's shared-prefix KV path when it supports one
    prefix_min_pairs: int = 3  # pending pairs with one prefix key needed to take the prefix path
    schedule_window: int = 256  # oldest pending pairs considered when packing a full batch
    retry_after_s: float = 1.0  # Retry-After hint carried by QueueFullError
    max_inflight_batches: int = 2  # batches handed to the model thread at once (plan ahead)
    # a request of more tokens than one forward holds (max_batch_tokens) is large: it yields
    # to smaller ones until it has waited this long, and while small ones arrive (one within
    # this long) takes at most all model workers but one (engine/scheduler.py, `fair_order`)
    large_request_patience_s: float = 2.0
    # while small requests arrive (one within large_request_patience_s), a batch holding a large
    # request's pairs takes at most this many tokens (max_batch_tokens otherwise): it ends soon,
    # so the next small request does not wait long for its worker, and a large request whose
    # client left stops soon (a forward stops between layers)
    large_slice_tokens: int = 2048
    encode_workers: int = 2  # threads that tokenize requests
    # requests with more characters of text than this tokenize one at a time on a low-priority
    # thread (engine/bulk.py); 0: every request on the encode threads
    bulk_tokenize_chars: int = 131072
    model_workers: int = 0  # threads running forwards (0 = auto: 2 on a >= 2-core CPU, else 1)
    torch_threads: int = 0  # torch intra-op threads per model worker (0 = auto: cores / workers)
    # one more forward's cost in token equivalents (None: 32 on CPU, 512 on an accelerator,
    # where a forward is a series of kernel launches and small batches leave it idle)
    forward_overhead_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "max_batch_tokens",
            "max_batch_size",
            "max_concurrent_requests",
            "max_request_tokens",
            "max_queued_tokens",
            "prefix_min_pairs",
            "schedule_window",
            "max_inflight_batches",
            "encode_workers",
            "large_slice_tokens",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"EngineConfig.{name} must be a positive integer, got {value!r}")
        if self.forward_overhead_tokens is not None:
            value = self.forward_overhead_tokens
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(
                    f"EngineConfig.forward_overhead_tokens must be >= 0, got {value!r}"
                )
        patience = self.large_request_patience_s
        if not isinstance(patience, int | float) or isinstance(patience, bool) or patience < 0:
            raise ValueError(
                f"EngineConfig.large_request_patience_s must be >= 0, got {patience!r}"
            )
        for name in ("model_workers", "torch_threads", "bulk_tokenize_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"EngineConfig.{name} must be an integer >= 0, got {value!r}")
        if self.long_documents not in LONG_DOCUMENT_MODES:
            raise ValueError(
                f"EngineConfig.long_documents must be one of {LONG_DOCUMENT_MODES}, "
                f"got {self.long_documents!r}"
            )
        size = self.score_cache_size
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"EngineConfig.score_cache_size must be an integer >= 0, got {size!r}")
        wait = self.retry_after_s
        if not isinstance(wait, (int, float)) or isinstance(wait, bool) or not wait > 0:
            raise ValueError(f"EngineConfig.retry_after_s must be a number > 0, got {wait!r}")


def available_cpus() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


GPU_OVERHEAD_TOKENS = 512


def on_cpu(device: str) -> bool:
    """Whether DEVICE ("cpu", "cuda:0", ...) is the CPU: the engine sizes its workers, planner
    overhead and warm-up differently there."""
    return str(device).startswith("cpu")


def resolve_overhead(config: EngineConfig, device: str) -> int:
    """The per-forward overhead the planner cuts sub-batches with (see forward_overhead_tokens)."""
    if config.forward_overhead_tokens is not None:
        return config.forward_overhead_tokens
    return DEFAULT_OVERHEAD_TOKENS if on_cpu(device) else GPU_OVERHEAD_TOKENS


def resolve_workers(config: EngineConfig, device: str, cpus: int) -> tuple[int, int | None]:
    """(model worker threads, torch threads per worker or None to leave torch's setting).

    Auto on CPU: two workers with cores // 2 intra-op threads each when there are >= 2 cores
    (two single-threaded forwards side by side beat one two-threaded forward on small batches);
    one worker otherwise. On an accelerator: one worker, torch's thread setting untouched.
    """
    cpu = on_cpu(device)
    workers = config.model_workers or (2 if cpu and cpus >= 2 else 1)
    if config.torch_threads:
        return workers, config.torch_threads
    if not cpu:
        return workers, None
    return workers, max(1, cpus // workers)
