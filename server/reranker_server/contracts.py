"""The interfaces between the server's three layers: HTTP API -> engine -> model backend.

The HTTP layer (`reranker_server.api`) turns every API shape into one `RerankInput` and awaits
`RerankEngine.rerank`. The engine (`reranker_server.engine`) tokenizes through the backend,
packs pairs from concurrent requests into micro-batches and calls the backend's forward
methods off the event loop. The model backend (`reranker_server.models`) owns tokenization,
prompt formatting, truncation and the forward passes.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol

from reranker_contract import DEFAULTS, ModelFamily


class RerankError(Exception):
    """Base of the errors the HTTP layer maps to 4xx answers.

    An error about one document carries its index (`document`) and a `detail` without the field
    name: the HTTP layer sets `documents_field` to what its API shape calls the documents
    (`documents`, `texts`, `docs`) once, and `field` and `message` name `texts[3]` alike.
    """

    status_code: int = 400

    def __init__(
        self, message: str, *, field: str | None = None, document: int | None = None
    ) -> None:
        super().__init__(message)
        self.detail = message
        self.document = document
        self.documents_field = "documents"
        self._field = field

    def renumbered(self, index_of: Sequence[int]) -> RerankError:
        """This error about document `index_of[self.document]` (a sub-request's index mapped
        back to the caller's)."""
        if self.document is not None and self.document < len(index_of):
            self.document = index_of[self.document]
        return self

    @property
    def field(self) -> str | None:
        if self.document is not None:
            return f"{self.documents_field}[{self.document}]"
        return self._field

    @property
    def message(self) -> str:
        return f"{self.field}: {self.detail}" if self.document is not None else self.detail


class InputTooLongError(RerankError):
    """A request cannot fit the model's max length without truncating what must stay (HTTP 413)."""

    status_code = 413

    def __init__(
        self,
        message: str,
        *,
        tokens: int,
        limit: int,
        field: str | None = None,
        document: int | None = None,
    ) -> None:
        super().__init__(message, field=field, document=document)
        self.tokens = tokens
        self.limit = limit


class TooManyChunksError(RerankError):
    """A document (or a request) would become more windows than `setting` allows (HTTP 413).

    Per document it names the document (`documents[3]`); per request, the documents field."""

    status_code = 413

    def __init__(
        self, message: str, *, setting: str, chunks: int, limit: int, document: int | None = None
    ) -> None:
        super().__init__(message, document=document)
        self.setting, self.chunks, self.limit = setting, chunks, limit

    @property
    def field(self) -> str | None:
        return super().field if self.document is not None else self.documents_field

    @property
    def message(self) -> str:
        return f"{self.field}: {self.detail}"


class QueueFullError(RerankError):
    """The engine's bounded queue is full (HTTP 429 with Retry-After); `limit` names the setting
    that bounds it."""

    status_code = 429

    def __init__(self, message: str, *, retry_after_s: float = 1.0, limit: str = "") -> None:
        super().__init__(message)
        self.retry_after_s, self.limit = retry_after_s, limit


class TooManyTokensError(RerankError):
    """A request whose tokens, after truncation, exceed what one request may score (HTTP 413).

    It names the documents field, whatever the API shape calls it."""

    status_code = 413

    def __init__(self, message: str, *, tokens: int, limit: int) -> None:
        super().__init__(message)
        self.tokens, self.limit = tokens, limit

    @property
    def field(self) -> str | None:
        return self.documents_field

    @property
    def message(self) -> str:
        return f"{self.documents_field}: {self.detail}"


class EncodeCancelled(Exception):
    """Tokenization stopped because the request's client left (nobody reads the result)."""


class EncodeBudget:
    """What a backend's `encode` may spend on one request, checked as it goes (it tokenizes in
    chunks): the tokens its sequences take after truncation, counted as they are produced
    (TooManyTokensError once past `max_tokens`, before the rest is tokenized), and whether the
    request was cancelled (EncodeCancelled at the next chunk). Shared between the event loop,
    which cancels, and the tokenizing thread."""

    def __init__(self, max_tokens: int | None = None) -> None:
        self.max_tokens = max_tokens
        self.spent = 0
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    def check(self) -> None:
        """EncodeCancelled once the request is cancelled."""
        if self._cancelled.is_set():
            raise EncodeCancelled

    def spend(self, tokens: int) -> None:
        """Count one sequence's tokens; TooManyTokensError past `max_tokens`."""
        self.spent += tokens
        if self.max_tokens is not None and self.spent > self.max_tokens:
            raise TooManyTokensError(
                f"more than {self.max_tokens} tokens after truncation (max_request_tokens; "
                f"counted {self.spent} when tokenizing stopped); send fewer or shorter documents "
                "(or max_tokens_per_doc)",
                tokens=self.spent,
                limit=self.max_tokens,
            )


class ForwardCancelled(Exception):
    """A forward stopped between two layers: every request of its batch was cancelled."""


class ForwardStop:
    """Asks the forwards of one batch to stop: set from the event loop when the last request
    waiting for the batch is cancelled, read on the model thread at each layer boundary
    (`forward_checkpoint`) of a model whose backend installed the checkpoints."""

    def __init__(self) -> None:
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()


_forward_scope = threading.local()


@contextmanager
def stoppable_forwards(stop: ForwardStop) -> Iterator[None]:
    """On this (model) thread, forwards run inside the block stop once `stop` is set."""
    previous = getattr(_forward_scope, "stop", None)
    _forward_scope.stop = stop
    try:
        yield
    finally:
        _forward_scope.stop = previous


def forward_checkpoint() -> None:
    """ForwardCancelled if this thread's current batch was asked to stop; cheap otherwise.
    Backends call it between layers (reranker_server.models.cancel_points)."""
    stop = getattr(_forward_scope, "stop", None)
    if stop is not None and stop.stopped:
        raise ForwardCancelled


LongDocuments = Literal["truncate", "chunk"]
ChunkAggregate = Literal["max", "mean"]


@dataclass(frozen=True)
class Chunking:
    """How a backend's `encode` splits a document whose tokens do not fit (long_documents chunk):
    into windows of the room left after the query/prompt, consecutive ones sharing
    `overlap_tokens` (at most a quarter window), at most `max_per_document` windows per document
    and `max_per_request` per request (TooManyChunksError beyond)."""

    overlap_tokens: int = DEFAULTS.chunk_overlap_tokens
    max_per_document: int = DEFAULTS.max_chunks_per_document
    max_per_request: int = DEFAULTS.max_chunks_per_request


class TokenCharge(Protocol):
    """Takes a request's tokens from its client's allowance, always: they were tokenized, so a
    refusal must not make them free (more than is left leaves the allowance in debt).
    Refusable: then raises when they were more than was left. Not refusable (the client left
    while its request was tokenized, or max_request_tokens refused it): takes them only; called
    from the tokenizing thread once it stops, so it must be thread-safe."""

    def __call__(self, tokens: int, *, refusable: bool = True) -> None: ...


@dataclass(frozen=True)
class RerankInput:
    """One request's scoring work, independent of the API shape it arrived in."""

    query: str
    documents: Sequence[str]
    instruction: str | None = None  # None: the model's default instruction
    max_tokens_per_doc: int | None = None  # cap on each document's tokens (truncated)
    truncate: bool = True  # False: a pair that does not fit raises InputTooLongError
    truncation_direction: Literal["right", "left"] = "right"  # which end of a document is cut
    long_documents: LongDocuments | None = None  # None: the server's setting (LONG_DOCUMENTS)
    chunk_aggregate: ChunkAggregate = "max"  # a chunked document's score from its windows'
    # set by the engine when chunking is in force: `encode` splits documents that do not fit
    chunking: Chunking | None = None
    # who asked (an identity's key): the engine shares the model fairly between clients; None:
    # one anonymous client
    client: Hashable | None = None
    # the client's tokens allowance (reranker_server.api.access): charged once the request is
    # tokenized, before it is queued, or with what was tokenized when its client leaves first
    charge_tokens: TokenCharge | None = field(default=None, compare=False)


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
    # per document, the consecutive pairs it became (> 1: chunked into windows); empty: one each
    windows: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class RerankOutput:
    """Scores in the order of the input documents."""

    raw_scores: list[float]  # logit (cross-encoder) or logit(yes) - logit(no) (causal)
    scores: list[float]  # relevance in [0, 1]: sigmoid(raw) == softmax([no, yes])[yes]
    prompt_tokens: int
    truncated_documents: int = 0  # documents cut to fit (among those scored, not cached)
    chunked_documents: int = 0  # documents split into windows (among those scored, not cached)
    chunk_windows: int = 0  # the windows those documents became


ForwardPath = Literal["prefix", "continuation", "full"]


@dataclass(frozen=True)
class ForwardPass:
    """One call of the model's layer stack, as it ran."""

    path: ForwardPath  # prefix: the shared prefix alone; continuation: documents on its KV cache;
    #             full: whole sequences
    sequences: int
    real_tokens: int  # tokens that are not padding
    padded_tokens: int  # sequences x the longest (what the kernels process)
    flops: float  # model FLOPs spent on the real tokens (estimated from the architecture)


@dataclass(frozen=True)
class BackendReport:
    """What a backend call did: its forward passes and the shortcuts actually used."""

    forwards: tuple[ForwardPass, ...]
    prefix_kv: bool = False  # continuations were scored on one KV cache of the prefix
    prefix_tokens_reused: int = 0  # prefix tokens not recomputed thanks to that cache
    last_layer_shortcut: bool = False  # the last layer ran for the scored row only


@dataclass(frozen=True)
class Scored:
    """Raw scores (in the order of the pairs given) and the report of how they were computed."""

    raw_scores: list[float]
    report: BackendReport


@dataclass(frozen=True)
class Shortcut:
    """A computation shortcut a backend may take, and whether it is in force (else why not)."""

    # "segmentwise_tokens" | "word_floor" | "prefix_kv" | "last_token" | "packed_decoder" |
    # "compiled_kernels" | "cls_only"
    name: str
    in_force: bool
    reason: str | None = None


class ModelBackend(Protocol):
    """A loaded reranker model. Forward methods are blocking; callers run them off the loop."""

    model_name: str  # served name
    family: ModelFamily
    max_length: int  # tokens per full sequence
    device: str
    dtype: str
    dtype_reason: str | None  # why this dtype (set by reranker_server.models.load_backend)

    @property
    def prefix_cache_in_force(self) -> bool:
        """Whether `score` reuses a KV cache of the prefix (False once the path turned itself
        off for this model, or for encoders)."""
        ...

    def encode(self, inp: RerankInput, budget: EncodeBudget | None = None) -> EncodedRequest:
        """Tokenize, format and truncate (with `inp.chunking`, split each document that does not
        fit into windows, one pair each: `EncodedRequest.windows`); raises InputTooLongError /
        TooManyChunksError / RerankError naming the document by index. With a `budget`, each
        sequence's tokens are spent as produced and the budget is checked between chunks of
        documents."""
        ...

    def score(
        self,
        prefix_ids: Sequence[int],
        pairs: Sequence[PairTokens],
        sub_batches: Sequence[Sequence[int]],
    ) -> Scored:
        """Raw scores of `prefix + pair` for each pair, one forward per sub-batch (positions into
        `pairs`, covering each once) on one KV cache of the prefix computed once; where the
        prefix path is not in force each sub-batch recomputes its whole sequences."""
        ...

    def score_mixed(self, prefixes: Sequence[Sequence[int]], pairs: Sequence[PairTokens]) -> Scored:
        """Raw scores of `prefixes[i] + pairs[i]` (prefixes may differ): one padded forward."""
        ...

    def shortcuts(self) -> tuple[Shortcut, ...]:
        """The shortcuts this backend knows and whether each is in force now."""
        ...


class RerankEngine(Protocol):
    """Schedules requests onto a backend."""

    backend: ModelBackend

    @property
    def prefix_enabled(self) -> bool:
        """Whether batches are grouped by prefix: configured, and still in force for the model."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def rerank(self, inp: RerankInput) -> RerankOutput:
        """Score one request; raises QueueFullError when the bounded queue is full."""
        ...
