"""Seeded synthetic rerank requests in every API shape the server speaks."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

ApiShape = Literal["v1", "v2", "tei", "rank"]
API_PATHS: dict[str, str] = {
    "v1": "/v1/rerank",
    "v2": "/v2/rerank",
    "tei": "/rerank",
    "rank": "/v1/rank",
}

# Plain English words: about 1.2-1.5 tokens each for the Qwen3 and BERT tokenizers.
WORDS = (
    "the of and to in is was for on that with as by at from it this be are or an which query "
    "document search answer relevant passage capital city river country people world paris "
    "france london england germany berlin water ocean mountain forest desert island learning "
    "machine model neural network python kubernetes operator server cluster score batch token "
    "memory cache prefix health metrics request response latency apple banana orange fruit tree "
    "green blue red quick brown fox jumps over lazy dog number one two three year day time "
    "history science energy light sound music film book author language market price company"
).split()


@dataclass(frozen=True)
class Workload:
    """What each request carries. Sizes are in words (each about 1.2-1.5 tokens)."""

    documents: int = 32
    doc_words: tuple[int, int] = (30, 150)  # each document's length, uniform in [lo, hi]
    query_words: int = 12
    instruction_words: int = 0  # 0: no instruction (the server's default applies)
    api: ApiShape = "v1"
    seed: int = 0

    def __post_init__(self) -> None:
        lo, hi = self.doc_words
        if self.documents < 1:
            raise ValueError("documents: must be >= 1")
        if not 1 <= lo <= hi:
            raise ValueError(f"doc_words: need 1 <= min <= max, got {lo}-{hi}")
        if self.query_words < 1 or self.instruction_words < 0:
            raise ValueError("query_words must be >= 1 and instruction_words >= 0")
        if self.api not in API_PATHS:
            raise ValueError(f"api: one of {', '.join(API_PATHS)}, got {self.api!r}")

    @property
    def path(self) -> str:
        return API_PATHS[self.api]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def request_body(workload: Workload, index: int) -> dict[str, Any]:
    """The JSON body of request number `index` (the same for the same seed and index)."""
    rng = random.Random(f"{workload.seed}:{index}")
    query = _text(rng, workload.query_words)
    docs = [_text(rng, rng.randint(*workload.doc_words)) for _ in range(workload.documents)]
    instruction = _text(rng, workload.instruction_words) if workload.instruction_words else None
    if workload.api == "tei":
        return {"query": query, "texts": docs}
    if workload.api == "rank":
        body: dict[str, Any] = {"query": query, "docs": docs}
    else:
        body = {"query": query, "documents": docs}
    if instruction is not None:
        body["instruction"] = instruction
    return body
