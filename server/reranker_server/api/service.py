"""The path every scoring route shares: validate, check the model, call the engine, record metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from reranker_server import metrics
from reranker_server.api.errors import APIError
from reranker_server.api.state import ServerState
from reranker_server.auth.authenticator import Identity
from reranker_server.contracts import (
    LongDocuments,
    QueueFullError,
    RerankError,
    RerankInput,
    RerankOutput,
    TooManyChunksError,
    TooManyTokensError,
)


def get_state(request: Request) -> ServerState:
    return request.app.state.server


def document_texts(items: Sequence[Any], field: str, *, allow_objects: bool = False) -> list[str]:
    """Strings (or {text} objects where allowed) -> texts; anything else is a 422 naming the index."""
    texts: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            texts.append(item)
        elif allow_objects and isinstance(item, dict) and isinstance(item.get("text"), str):
            texts.append(item["text"])
        else:
            what = "a string or an object with a string 'text'" if allow_objects else "a string"
            raise APIError(
                422, f"{field}[{i}]: must be {what}", field=f"{field}[{i}]", type="type_error"
            )
    return texts


@dataclass(frozen=True)
class Ranked:
    """Engine output plus what the routes need to shape their answers."""

    output: RerankOutput
    elapsed_s: float
    long_documents_mode: str  # what became of documents too long to fit: truncate or chunk

    def long_documents(self) -> dict[str, int | str]:
        """What became of the documents too long to fit (among those scored, not cached): the
        counts the API shapes with room for them report."""
        out = self.output
        return {
            "mode": self.long_documents_mode,
            "truncated_documents": out.truncated_documents,
            "chunked_documents": out.chunked_documents,
            "chunk_windows": out.chunk_windows,
        }

    def ranking(self, *, raw: bool = False) -> list[tuple[int, float]]:
        """(index, score) sorted by score descending, ties by index."""
        values = self.output.raw_scores if raw else self.output.scores
        return sorted(enumerate(values), key=lambda t: (-t[1], t[0]))


async def score(
    state: ServerState,
    *,
    query: str,
    documents: list[str],
    documents_field: str,
    identity: Identity | None = None,
    model: str | None = None,
    instruction: str | None = None,
    max_tokens_per_doc: int | None = None,
    truncate: bool = True,
    truncation_direction: str = "right",
    long_documents: LongDocuments | None = None,
    chunk_aggregate: str = "max",
) -> Ranked:
    """Validate one request and score it through the engine."""
    settings = state.settings
    pinned = settings.served_model_name
    if model is not None and pinned and model != pinned:
        raise APIError(
            404,
            f"model: '{model}' is not served here (serving '{pinned}')",
            field="model",
            type="model_not_found",
        )
    if not query.strip():
        raise APIError(422, "query: must not be empty", field="query", type="value_error")
    if not documents:
        raise APIError(
            422, f"{documents_field}: must not be empty", field=documents_field, type="value_error"
        )
    if len(documents) > settings.max_client_batch_size:
        raise APIError(
            413,
            f"{documents_field}: {len(documents)} documents exceed max_client_batch_size "
            f"{settings.max_client_batch_size}",
            field=documents_field,
            type="too_many_documents",
        )
    engine = state.engine
    if engine is None:  # the model is not loaded (yet)
        reason = "model failed to load" if state.load_error else "model is loading"
        raise APIError(
            503, f"{reason}; retry later", type="unavailable", headers={"Retry-After": "5"}
        )
    # while draining (after SIGTERM) a request that reached the server is still served: it was
    # routed here before the endpoint removal propagated (reranker_server.app.make_uvicorn_server)
    if identity is not None:  # after every check of the body: a malformed one costs no allowance
        state.access.admit(identity, len(documents), documents_field)
    inp = RerankInput(
        query=query,
        documents=documents,
        instruction=instruction,
        max_tokens_per_doc=max_tokens_per_doc,
        truncate=truncate,
        truncation_direction=truncation_direction.lower(),  # type: ignore[arg-type]
        long_documents=long_documents,
        chunk_aggregate=chunk_aggregate,  # type: ignore[arg-type]
        client=identity.key if identity is not None else None,
        charge_tokens=(
            state.access.tokens_charge(identity, documents_field) if identity is not None else None
        ),
    )
    start = time.perf_counter()
    timeout = settings.request_timeout_seconds
    try:
        output = await asyncio.wait_for(engine.rerank(inp), timeout)
    except TimeoutError:
        metrics.RERANK_REQUESTS.labels(status="error").inc()
        raise APIError(
            504,
            f"the request ran longer than {timeout} s (REQUEST_TIMEOUT_SECONDS)",
            type="timeout",
        ) from None
    except RerankError as exc:
        exc.documents_field = documents_field  # the API shape's name, in field and message
        if isinstance(exc, TooManyTokensError):
            metrics.REQUESTS_REFUSED.labels(limit="max_request_tokens").inc()
        elif isinstance(exc, TooManyChunksError):
            metrics.REQUESTS_REFUSED.labels(limit=exc.setting).inc()
        elif isinstance(exc, QueueFullError) and exc.limit:
            metrics.REQUESTS_REFUSED.labels(limit=exc.limit).inc()
        metrics.RERANK_REQUESTS.labels(
            status="rejected" if exc.status_code in (429, 503) else "invalid"
        ).inc()
        raise
    except APIError:  # the client's tokens allowance refused it (charge_tokens)
        metrics.RERANK_REQUESTS.labels(status="rejected").inc()
        raise
    except Exception:
        metrics.RERANK_REQUESTS.labels(status="error").inc()
        raise
    elapsed = time.perf_counter() - start
    metrics.RERANK_REQUESTS.labels(status="ok").inc()
    metrics.INFERENCE_DURATION.labels(model_name=state.served_name).observe(elapsed)
    metrics.DOCUMENTS_PER_REQUEST.observe(len(documents))
    metrics.TOKENS_PER_REQUEST.observe(output.prompt_tokens)
    metrics.TRUNCATED_DOCUMENTS.inc(output.truncated_documents)
    metrics.CHUNKED_DOCUMENTS.inc(output.chunked_documents)
    metrics.CHUNK_WINDOWS.inc(output.chunk_windows)
    mode = long_documents or settings.long_documents
    return Ranked(output=output, elapsed_s=elapsed, long_documents_mode=mode)
