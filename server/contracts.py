"""The interfaces between the server's three layers: HTTP API -> engine -> model backend.

The HTTP layer (`reranker_server.api`) turns every API shape into one `RerankInput` and awaits
`RerankEngine.rerank`. The engine (`reranker_server.engine`) tokenizes through the backend,
packs pairs from concurrent requests into micro-batches and calls the backend's forward
methods off the event loop. The model backend (`reranker_server.models`) owns tokenization,
prompt formatting, truncation and the forward passes.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol


class RerankError(Exception):
    """Base of the errors the HTTP layer maps to 4xx answers."""

    status_code: int = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InputTooLongError(RerankError):
    """A request cannot fit the model's max length without truncating what must stay (HTTP 413)."""

    status_code = 413

    def __init__(self, message: str, *, field: str, tokens: int, limit: int) -> None:
        super().__init__(message, field=field)
        self.tokens = tokens
        self.limit = limit


class QueueFullError(RerankError):
    """The engine's bounded queue is full (HTTP 429 with Retry-After)."""

    status_code = 429

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RerankInput:
    """One request's scoring work, independent of the API shape it arrived in."""

    query: str
    documents: Sequence[str]
    instruction: str | None = None  # None: the model's default instruction
    max_tokens_per_doc: int | None = None  # cap on each document's tokens (truncated)
    truncate: bool = True  # False: a pair that does not fit raises InputTooLongError
    truncation_direction: Literal["right", "left"] = "right"  # which end of a document is cut


@dataclass(frozen=True)
class PairTokens:
    """The tokens of one (query, document) pair after the shared prefix."""

    input_ids: list[int]
    token_type_ids: list[int] | None = None  # cross-encoders with segment embeddings (BERT)


@dataclass(frozen=True)
class EncodedRequest:
    """A request tokenized for scoring: sequence i is `prefix_ids + pairs[i].input_ids`.

    Causal (Qwen3-style) rerankers put the system prompt, instruction, query and
    "\\n<Document>:" in `prefix_ids` so the engine can compute its KV cache once; cross-encoders
    leave `prefix_ids` empty and carry whole pairs. `prefix_key` identifies the prefix group:
    two requests share a prefix computation only if their keys are equal (it includes the model
    and the prefix tokens, so different instructions or models never mix).
    """

    prefix_ids: tuple[int, ...]
    pairs: list[PairTokens]
    prefix_key: Hashable
    prompt_tokens: int  # tokens this request costs: sum over pairs of len(prefix) + len(pair)
    truncated: list[bool] = field(default_factory=list)  # per document, whether it was cut


@dataclass(frozen=True)
class RerankOutput:
    """Scores in the order of the input documents."""

    raw_scores: list[float]  # logit (cross-encoder) or logit(yes) - logit(no) (causal)
    scores: list[float]  # relevance in [0, 1]: sigmoid(raw) == softmax([no, yes])[yes]
    prompt_tokens: int


class ModelBackend(Protocol):
    """A loaded reranker model. Forward methods are blocking; callers run them off the loop."""

    model_name: str  # served name
    family: str  # "qwen3-causal" | "cross-encoder"
    max_length: int  # tokens per full sequence
    device: str
    dtype: str
    supports_prefix_cache: bool  # True when score_with_prefix reuses a KV cache

    def encode(self, inp: RerankInput) -> EncodedRequest:
        """Tokenize, format and truncate; raises InputTooLongError / RerankError naming the field."""
        ...

    def score_full(self, prefix_ids: Sequence[int], pairs: Sequence[PairTokens]) -> list[float]:
        """Raw scores of `prefix + pair` for each pair, recomputing everything (one padded batch)."""
        ...

    def score_with_prefix(self, prefix_ids: Sequence[int], pairs: Sequence[PairTokens]) -> list[float]:
        """Raw scores computed from one KV cache of the prefix; equal to score_full within 1e-4."""
        ...


class RerankEngine(Protocol):
    """Schedules requests onto a backend."""

    backend: ModelBackend

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def rerank(self, inp: RerankInput) -> RerankOutput:
        """Score one request; raises QueueFullError when the bounded queue is full."""
        ...
