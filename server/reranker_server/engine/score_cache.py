"""A bounded LRU of raw scores keyed by everything that determines a pair's score."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass

from reranker_server.contracts import RerankInput


@dataclass(frozen=True)
class CachedScore:
    raw_score: float
    prompt_tokens: int  # tokens this pair cost (prefix + pair)


def score_key(model: str, inp: RerankInput, document: str) -> str:
    """sha256 of (model, instruction, query, document, truncation and chunking settings)."""
    payload = json.dumps(
        [
            model,
            inp.instruction,
            inp.query,
            document,
            inp.max_tokens_per_doc,
            inp.truncate,
            inp.truncation_direction,
            inp.long_documents,
            inp.chunk_aggregate,
        ],
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ScoreCache:
    """Least-recently-used map key -> CachedScore holding at most `capacity` entries."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"score cache capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._data: OrderedDict[str, CachedScore] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> CachedScore | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: str, value: CachedScore) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)
