"""Long documents scored whole: a document's tokens split into overlapping windows that fit.

Both backends call `document_windows` where they would truncate: each window becomes one more
pair of the same request (the query/prompt around it unchanged), so windows batch with the rest
of the request through the same engine queue and planner. The engine maps the windows' scores
back to their document (`aggregate`): the max by default, because a reranker's relevance asks
"does this document contain an answer to the query", which one window containing it settles
whatever the other windows hold; the mean (of the raw logits) is offered for "how much of the
document is about the query".

Windows are `size` tokens (the room left after the query/prompt) starting every
`size - overlap` tokens, the last one ending at the document's end. The overlap
(CHUNK_OVERLAP_TOKENS, 64 by default: a passage that answers a query is a sentence or two, so one
up to 64 tokens long lies whole in some window) is capped at a quarter window, so a document's
windows hold at most 4/3 of its tokens plus one window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from reranker_server.contracts import Chunking, TooManyChunksError


def effective_overlap(size: int, overlap: int) -> int:
    """The overlap used for windows of `size` tokens: the setting, at most a quarter window."""
    return max(0, min(overlap, size // 4))


def window_count(length: int, size: int, overlap: int) -> int:
    """How many windows `window_spans` cuts a document of `length` tokens into."""
    if length <= size:
        return 1
    step = size - effective_overlap(size, overlap)
    return math.ceil((length - size) / step) + 1


def window_spans(length: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, stop) of each window: `size` tokens every `size - overlap` tokens, the last one
    ending at `length` (a document that fits is its own one window)."""
    if size < 1:
        raise ValueError(f"window size must be >= 1, got {size}")
    if length <= size:
        return [(0, length)]
    step = size - effective_overlap(size, overlap)
    starts = [*range(0, length - size, step), length - size]
    return [(start, start + size) for start in starts]


class WindowLedger:
    """Counts one request's windows as `encode` produces them: TooManyChunksError naming
    max_chunks_per_document (and the document) or max_chunks_per_request once past a bound,
    before the windows are built."""

    def __init__(self, chunking: Chunking) -> None:
        self.chunking = chunking
        self.total = 0

    def spans(self, document: int, length: int, size: int) -> list[tuple[int, int]]:
        """The windows of document `document` (`length` tokens, windows of `size`), counted."""
        policy = self.chunking
        count = window_count(length, size, policy.overlap_tokens)
        if count > policy.max_per_document:
            raise TooManyChunksError(
                f"{length} tokens make {count} windows of {size} tokens, more than "
                f"max_chunks_per_document {policy.max_per_document}; send a shorter document "
                "(or long_documents 'truncate')",
                setting="max_chunks_per_document",
                chunks=count,
                limit=policy.max_per_document,
                document=document,
            )
        self.total += count
        if self.total > policy.max_per_request:
            raise TooManyChunksError(
                f"more than max_chunks_per_request {policy.max_per_request} windows (counted "
                f"{self.total} at document {document}); send fewer or shorter documents "
                "(or long_documents 'truncate')",
                setting="max_chunks_per_request",
                chunks=self.total,
                limit=policy.max_per_request,
            )
        return window_spans(length, size, policy.overlap_tokens)


def aggregate(raw_scores: Sequence[float], how: str) -> float:
    """One document's raw score from its windows' raw scores: 'max' or 'mean'."""
    if how == "max":
        return max(raw_scores)
    if how == "mean":
        return sum(raw_scores) / len(raw_scores)
    raise ValueError(f"chunk_aggregate: must be 'max' or 'mean', got {how!r}")
