"""Scoring routes: /v1/rerank, /v2/rerank (Cohere/Jina/vLLM), /rerank (TEI or simple), /v1/rank."""

from __future__ import annotations

import math
import uuid
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from reranker_server.api import schemas
from reranker_server.api.access import authenticate
from reranker_server.api.errors import APIError
from reranker_server.api.json_body import json_object, validated
from reranker_server.api.service import document_texts, get_state, score

router = APIRouter(dependencies=[Depends(authenticate)])

Body = TypeVar("Body", bound=BaseModel)


def _documented(*models: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that parses its own JSON (`json_body`)."""
    schema = (
        models[0].model_json_schema()
        if len(models) == 1
        else {"oneOf": [m.model_json_schema() for m in models]}
    )
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}}


async def _body(request: Request, model: type[Body]) -> Body:
    """The request's JSON body as `model` (400/422 naming the field otherwise)."""
    return validated(model, json_object(await request.body()))


async def _cohere(
    request: Request, body: schemas.CohereRerankRequest, version: str
) -> dict[str, Any]:
    state = get_state(request)
    docs = document_texts(body.documents, "documents", allow_objects=True)
    scored = await score(
        state,
        query=body.query,
        documents=docs,
        documents_field="documents",
        identity=request.state.identity,
        model=body.model,
        instruction=body.instruction,
        max_tokens_per_doc=body.max_tokens_per_doc,
        long_documents=body.long_documents,
        chunk_aggregate=body.chunk_aggregate,
    )
    ranking = scored.ranking()
    if body.top_n is not None:
        ranking = ranking[: body.top_n]
    results = []
    for index, value in ranking:
        item: dict[str, Any] = {"index": index, "relevance_score": value}
        if body.return_documents:
            item["document"] = {"text": docs[index]}
        results.append(item)
    tokens = scored.output.prompt_tokens
    return {
        "id": str(uuid.uuid4()),
        "model": state.served_name,
        "results": results,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "meta": {
            "api_version": {"version": version},
            "billed_units": {"search_units": max(1, math.ceil(len(docs) / 100))},
            "tokens": {"input_tokens": tokens, "output_tokens": 0},
            "long_documents": scored.long_documents(),
        },
    }


_COHERE = _documented(schemas.CohereRerankRequest)


@router.post(
    "/v1/rerank",
    response_model=schemas.CohereRerankResponse,
    response_model_exclude_none=True,
    openapi_extra=_COHERE,
)
async def rerank_v1(request: Request) -> dict[str, Any]:
    """Cohere v1 / Jina / vLLM rerank: results sorted by relevance_score."""
    return await _cohere(request, await _body(request, schemas.CohereRerankRequest), "1")


@router.post(
    "/v2/rerank",
    response_model=schemas.CohereRerankResponse,
    response_model_exclude_none=True,
    openapi_extra=_COHERE,
)
async def rerank_v2(request: Request) -> dict[str, Any]:
    """Cohere v2 rerank (also what LiteLLM's cohere provider calls)."""
    return await _cohere(request, await _body(request, schemas.CohereRerankRequest), "2")


@router.post(
    "/rerank", openapi_extra=_documented(schemas.TEIRerankRequest, schemas.SimpleRerankRequest)
)
async def rerank_tei_or_simple(request: Request) -> Any:
    """TEI body `{query, texts, ...}` -> `[{index, score, text?}]`; simple body `{query, documents, ...}`
    -> `{scores, ranked_indices, ranked_documents, processing_time}`."""
    data = json_object(await request.body())
    state = get_state(request)
    if "texts" in data:
        tei = validated(schemas.TEIRerankRequest, data)
    elif "documents" in data:
        simple = validated(schemas.SimpleRerankRequest, data)
    else:
        raise APIError(
            422,
            "texts: field required (TEI body) or 'documents' (simple body)",
            field="texts",
            type="missing",
        )
    if "texts" in data:
        texts = document_texts(tei.texts, "texts")
        scored = await score(
            state,
            query=tei.query,
            documents=texts,
            documents_field="texts",
            identity=request.state.identity,
            truncate=tei.truncate,
            truncation_direction=tei.truncation_direction,
            long_documents=tei.long_documents,
            chunk_aggregate=tei.chunk_aggregate,
        )
        out = []
        for index, value in scored.ranking(raw=tei.raw_scores):
            item: dict[str, Any] = {"index": index, "score": value}
            if tei.return_text:
                item["text"] = texts[index]
            out.append(item)
        return out
    docs = document_texts(simple.documents, "documents")
    scored = await score(
        state,
        query=simple.query,
        documents=docs,
        documents_field="documents",
        identity=request.state.identity,
        instruction=simple.instruction,
        long_documents=simple.long_documents,
        chunk_aggregate=simple.chunk_aggregate,
    )
    ranking = scored.ranking()
    if simple.top_k is not None:
        ranking = ranking[: simple.top_k]
    return {
        "scores": [v for _, v in ranking],
        "ranked_indices": [i for i, _ in ranking],
        "ranked_documents": [docs[i] for i, _ in ranking],
        "processing_time": scored.elapsed_s,
        "long_documents": scored.long_documents(),
    }


@router.post(
    "/v1/rank", response_model=schemas.RankResponse, openapi_extra=_documented(schemas.RankRequest)
)
async def rank(request: Request) -> dict[str, Any]:
    """`{query, docs, instruction?}` -> `{results: [{doc, score, rank}]}`, best first, rank from 1."""
    body = await _body(request, schemas.RankRequest)
    docs = document_texts(body.docs, "docs")
    scored = await score(
        get_state(request),
        query=body.query,
        documents=docs,
        documents_field="docs",
        identity=request.state.identity,
        instruction=body.instruction,
        long_documents=body.long_documents,
        chunk_aggregate=body.chunk_aggregate,
    )
    return {
        "long_documents": scored.long_documents(),
        "results": [
            {"doc": docs[i], "score": v, "rank": r}
            for r, (i, v) in enumerate(scored.ranking(), start=1)
        ],
    }
