"""Request and response bodies of every API shape (pydantic v2; documents are checked by hand)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_DOC_SCHEMA = {
    "items": {
        "anyOf": [
            {"type": "string"},
            {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        ]
    }
}
_STR_LIST_SCHEMA = {"items": {"type": "string"}}


class CohereRerankRequest(BaseModel):
    """Cohere / Jina / vLLM style body of POST /v1/rerank and /v2/rerank."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    query: str
    documents: list[Any] = Field(json_schema_extra=_DOC_SCHEMA)
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = False
    max_tokens_per_doc: int | None = Field(default=None, ge=1)
    instruction: str | None = None
    # documents longer than the max length: "truncate" or "chunk" (None: the server's setting)
    long_documents: Literal["truncate", "chunk"] | None = None
    chunk_aggregate: Literal["max", "mean"] = "max"  # a chunked document's score from its windows


class RerankDocument(BaseModel):
    text: str


class CohereRerankResult(BaseModel):
    index: int
    relevance_score: float
    document: RerankDocument | None = None


class CohereRerankResponse(BaseModel):
    id: str
    model: str
    results: list[CohereRerankResult]
    usage: dict[str, int]
    meta: dict[str, Any]


class TEIRerankRequest(BaseModel):
    """Text Embeddings Inference body of POST /rerank (has `texts`)."""

    model_config = ConfigDict(extra="ignore")

    query: str
    texts: list[Any] = Field(json_schema_extra=_STR_LIST_SCHEMA)
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool = True
    truncation_direction: Literal["right", "left", "Right", "Left"] = "right"
    # documents longer than the max length: "truncate" or "chunk" (None: the server's setting)
    long_documents: Literal["truncate", "chunk"] | None = None
    chunk_aggregate: Literal["max", "mean"] = "max"  # a chunked document's score from its windows


class SimpleRerankRequest(BaseModel):
    """The simple body of POST /rerank (has `documents`)."""

    model_config = ConfigDict(extra="ignore")

    query: str
    documents: list[Any] = Field(json_schema_extra=_STR_LIST_SCHEMA)
    instruction: str | None = None
    top_k: int | None = Field(default=None, ge=1)
    # documents longer than the max length: "truncate" or "chunk" (None: the server's setting)
    long_documents: Literal["truncate", "chunk"] | None = None
    chunk_aggregate: Literal["max", "mean"] = "max"  # a chunked document's score from its windows


class RankRequest(BaseModel):
    """Body of POST /v1/rank."""

    model_config = ConfigDict(extra="ignore")

    query: str
    docs: list[Any] = Field(json_schema_extra=_STR_LIST_SCHEMA)
    instruction: str | None = None
    # documents longer than the max length: "truncate" or "chunk" (None: the server's setting)
    long_documents: Literal["truncate", "chunk"] | None = None
    chunk_aggregate: Literal["max", "mean"] = "max"  # a chunked document's score from its windows


class RankResult(BaseModel):
    doc: str
    score: float
    rank: int


class LongDocumentsReport(BaseModel):
    """What became of the documents too long to fit (among those scored, not from the cache)."""

    mode: Literal["truncate", "chunk"]
    truncated_documents: int
    chunked_documents: int
    chunk_windows: int


class RankResponse(BaseModel):
    results: list[RankResult]
    long_documents: LongDocumentsReport | None = None
