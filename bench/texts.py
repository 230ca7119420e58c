"""Seeded random request texts, sized in tokens of the model's own tokenizer.

Every server in a run gets exactly the same requests: the texts depend only on the seed and
the tokenizer used to size them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# Common English words; with a tiny BPE some split into several tokens, which is fine because
# every text is sized by counting tokens, not words.
WORDS = (
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "it",
    "this",
    "be",
    "are",
    "or",
    "an",
    "which",
    "query",
    "document",
    "search",
    "answer",
    "relevant",
    "passage",
    "capital",
    "city",
    "river",
    "country",
    "people",
    "world",
    "paris",
    "france",
    "london",
    "england",
    "germany",
    "berlin",
    "water",
    "ocean",
    "mountain",
    "forest",
    "desert",
    "island",
    "learning",
    "machine",
    "model",
    "neural",
    "network",
    "python",
    "kubernetes",
    "operator",
    "server",
    "cluster",
    "pod",
    "score",
    "batch",
    "token",
    "memory",
    "cache",
    "prefix",
    "health",
    "ready",
    "metrics",
    "request",
    "response",
    "latency",
    "apple",
    "banana",
    "orange",
    "fruit",
    "tree",
    "green",
    "blue",
    "red",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "number",
    "one",
    "two",
    "three",
    "four",
    "five",
    "ten",
    "hundred",
    "thousand",
    "year",
    "day",
    "time",
    "history",
    "science",
    "energy",
    "light",
    "sound",
    "music",
    "film",
    "book",
    "author",
    "language",
    "market",
    "price",
    "trade",
    "company",
)

INSTRUCTION_HEAD = "Given a web search query, retrieve relevant passages that answer the query"

CountTokens = Callable[[str], int]


@dataclass(frozen=True)
class BenchRequest:
    """One rerank request of the load."""

    query: str
    documents: tuple[str, ...]
    instruction: str | None


def sized_text(rng: random.Random, target_tokens: int, count: CountTokens, head: str = "") -> str:
    """`head` followed by random words, grown until `count(text)` reaches `target_tokens`."""
    if target_tokens < 1:
        raise ValueError(f"target_tokens must be >= 1, got {target_tokens}")
    words = head.split()
    while (deficit := target_tokens - (tokens := count(" ".join(words)))) > 0:
        # Add ~90% of the missing words at the tokens-per-word rate seen so far (a few counts).
        per_word = max(1.0, tokens / len(words)) if words else 2.0
        words.extend(rng.choice(WORDS) for _ in range(max(1, int(0.9 * deficit / per_word))))
    keep = len(head.split()) + 1
    while len(words) > keep and count(" ".join(words[:-1])) >= target_tokens:
        words.pop()  # drop an overshoot while the target is still reached
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def make_requests(
    n: int,
    *,
    docs_per_request: int,
    doc_tokens: tuple[int, int],
    query_tokens: int,
    instruction_tokens: int,
    count: CountTokens,
    seed: int = 0,
    distinct: int = 64,
) -> list[BenchRequest]:
    """`n` requests cycling through `distinct` seeded ones (a request pool keeps sizing cheap).

    Queries have about `query_tokens` tokens; with `instruction_tokens > 0` each request also
    carries an instruction of about that many tokens (causal rerankers); documents have a
    uniformly drawn length in `doc_tokens` (inclusive).
    """
    low, high = doc_tokens
    if not 1 <= low <= high:
        raise ValueError(f"doc_tokens must be 1 <= low <= high, got {doc_tokens}")
    if n < 1 or docs_per_request < 1 or distinct < 1:
        raise ValueError("n, docs_per_request and distinct must be >= 1")
    rng = random.Random(seed)
    pool = []
    for _ in range(min(n, distinct)):
        instruction = (
            sized_text(rng, instruction_tokens, count, INSTRUCTION_HEAD)
            if instruction_tokens > 0
            else None
        )
        query = sized_text(rng, query_tokens, count)
        docs = tuple(
            sized_text(rng, rng.randint(low, high), count) for _ in range(docs_per_request)
        )
        pool.append(BenchRequest(query=query, documents=docs, instruction=instruction))
    return [pool[i % len(pool)] for i in range(n)]
