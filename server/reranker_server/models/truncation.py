"""Small token-list helpers shared by the backends."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from reranker_server.contracts import EncodeBudget

Encoded = TypeVar("Encoded")

# Documents tokenized at once. A request's documents are tokenized whole before they are cut to
# fit, so this bounds the full-length encodings alive at a time: a request of long documents
# truncated to a few tokens holds a chunk of them, not all (a 20 MB request once held 1.3 GB).
ENCODE_CHUNK = 32


def cut(ids: Sequence[int], keep: int, direction: str) -> list[int]:
    """Keep `keep` tokens: the head for direction 'right' (cut the right end), the tail for 'left'."""
    if direction not in ("right", "left"):
        raise ValueError(f"truncation_direction: must be 'right' or 'left', got {direction!r}")
    if keep <= 0:
        return []
    ids = list(ids)
    return ids[:keep] if direction == "right" else ids[-keep:]


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def tokenized_in_chunks(
    encode_batch: Callable[[list[str]], Sequence[Encoded]],
    texts: Sequence[str],
    budget: EncodeBudget | None = None,
    chunk: int = ENCODE_CHUNK,
) -> Iterator[Encoded]:
    """`encode_batch(texts)`'s results one by one, `chunk` texts encoded at a time: the caller
    keeps what it needs of each (the cut tokens, spent from `budget`) before the next chunk is
    encoded; a cancelled budget stops before the next chunk."""
    for start in range(0, len(texts), chunk):
        if budget is not None:
            budget.check()
        yield from encode_batch(list(texts[start : start + chunk]))
