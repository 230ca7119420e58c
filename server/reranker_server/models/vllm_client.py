"""HTTP calls to a vLLM engine process on the same pod: health, version, the served model, /score.

Blocking (httpx's thread-safe client): the engine calls `score` on its model worker threads,
several at once. Errors become `RerankError`s the HTTP layer answers with: 503 while vLLM does
not answer, 502 when it refuses pairs the front already checked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from reranker_server.contracts import RerankError

log = logging.getLogger(__name__)


class EngineUnavailableError(RerankError):
    """vLLM did not answer (HTTP 503: another replica may)."""

    status_code = 503


class EngineRefusedError(RerankError):
    """vLLM answered a scoring call with an error (HTTP 502: the front let the request through,
    so the refusal is the engine's, not the client's)."""

    status_code = 502


@dataclass(frozen=True)
class ServedModel:
    """The model a vLLM instance serves, as its /v1/models lists it."""

    name: str  # the name requests must send (its --served-model-name)
    root: str  # what it loaded (a hub id or a path)
    max_model_len: int | None


class VllmClient:
    """One vLLM's API at `base_url` (e.g. http://127.0.0.1:8001)."""

    def __init__(self, base_url: str, *, timeout_s: float, connections: int) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    def close(self) -> None:
        self._http.close()

    def healthy(self) -> bool:
        """Whether vLLM's /health answers 200 now."""
        try:
            return self._http.get("/health", timeout=5.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_until_healthy(self, timeout_s: float, poll_s: float = 1.0) -> None:
        """Return once /health answers 200; EngineUnavailableError after `timeout_s`."""
        started = last_log = time.monotonic()
        while not self.healthy():
            now = time.monotonic()
            if now - started > timeout_s:
                raise EngineUnavailableError(
                    f"vLLM at {self.base_url} did not turn healthy within {timeout_s:.0f}s"
                )
            if now - last_log > 30:
                log.info("waiting for vLLM at %s (%.0fs)", self.base_url, now - started)
                last_log = now
            time.sleep(poll_s)

    def metrics_text(self, timeout_s: float = 5.0) -> str:
        """vLLM's /metrics (Prometheus text); raises httpx's error when it does not answer 200."""
        answer = self._http.get("/metrics", timeout=timeout_s)
        answer.raise_for_status()
        return answer.text

    def version(self) -> str:
        """vLLM's version (GET /version)."""
        return str(self._get("/version").get("version", "unknown"))

    def served_model(self) -> ServedModel:
        """The (first) model vLLM serves, with its max_model_len."""
        models = self._get("/v1/models").get("data") or []
        if not models:
            raise EngineUnavailableError(f"vLLM at {self.base_url} serves no model")
        first = models[0]
        limit = first.get("max_model_len")
        return ServedModel(
            name=str(first["id"]),
            root=str(first.get("root") or first["id"]),
            max_model_len=int(limit) if limit else None,
        )

    def score(
        self,
        model: str,
        queries: Sequence[str],
        documents: Sequence[str],
        instruction: str | None = None,
    ) -> list[float]:
        """Raw scores (logits, no activation) of the pairs (queries[i], documents[i]), in order:
        one /score call, which vLLM batches with every other call in flight."""
        body: dict[str, Any] = {
            "model": model,
            "queries": list(queries),
            "documents": list(documents),
            "use_activation": False,
        }
        if instruction is not None:
            body["instruction"] = instruction
        answer = self._post("/score", body)
        data = sorted(answer.get("data") or [], key=lambda d: d["index"])
        if len(data) != len(documents):
            raise EngineRefusedError(f"vLLM returned {len(data)} scores for {len(documents)} pairs")
        return [float(d["score"]) for d in data]

    def _get(self, path: str) -> dict[str, Any]:
        try:
            answer = self._http.get(path)
        except httpx.HTTPError as exc:
            raise EngineUnavailableError(f"vLLM at {self.base_url}{path}: {exc!r}") from exc
        return self._json(path, answer)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise EngineUnavailableError(f"vLLM at {self.base_url}{path}: {exc!r}") from exc
        return self._json(path, answer)

    def _json(self, path: str, answer: httpx.Response) -> dict[str, Any]:
        if answer.status_code >= 500:
            raise EngineUnavailableError(
                f"vLLM {path} answered {answer.status_code}: {answer.text[:500]}"
            )
        if answer.status_code != 200:
            raise EngineRefusedError(
                f"vLLM {path} refused the call ({answer.status_code}): {answer.text[:500]}"
            )
        return answer.json()
