"""Closed-loop load generator: N concurrent asyncio clients posting rerank requests with httpx."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from texts import BenchRequest


@dataclass
class LoadResult:
    """What one measured phase produced."""

    completed: int = 0  # requests answered 200
    errors: int = 0  # requests answered otherwise or failed
    pairs: int = 0  # documents scored in completed requests
    tokens: int = 0  # non-padding tokens of completed requests (from the caller's count)
    flops: float = 0.0  # model FLOPs the server computed for them (see bench/run.py)
    prefix_tokens_reused: int = 0  # prompt tokens the server did not recompute (its counters)
    wall_s: float = 0.0  # first send to last answer
    latencies_s: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)


def merge_results(parts: Sequence[LoadResult]) -> LoadResult:
    """One result for several measured phases (wall times add up)."""
    merged = LoadResult()
    for part in parts:
        merged.completed += part.completed
        merged.errors += part.errors
        merged.pairs += part.pairs
        merged.tokens += part.tokens
        merged.flops += part.flops
        merged.prefix_tokens_reused += part.prefix_tokens_reused
        merged.wall_s += part.wall_s
        merged.latencies_s.extend(part.latencies_s)
        merged.error_samples.extend(part.error_samples[: max(0, 3 - len(merged.error_samples))])
    return merged


def payload(req: BenchRequest, top_n: int | None = None) -> dict:
    """The Cohere-shaped JSON body of a request."""
    body: dict = {"query": req.query, "documents": list(req.documents)}
    if req.instruction is not None:
        body["instruction"] = req.instruction
    if top_n is not None:
        body["top_n"] = top_n
    return body


async def run_load(
    base_url: str,
    requests: Sequence[BenchRequest],
    tokens: Sequence[int],
    *,
    concurrency: int,
    duration_s: float,
    timeout_s: float = 600.0,
    flops: Sequence[float] | None = None,
) -> LoadResult:
    """Send `requests` in order from `concurrency` clients until all are sent or `duration_s`
    has passed (requests already in flight then still finish and count)."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    result = LoadResult()
    next_index = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits) as client:
        start = time.perf_counter()
        deadline = start + duration_s
        last_done = start

        async def worker() -> None:
            nonlocal next_index, last_done
            while next_index < len(requests) and time.perf_counter() < deadline:
                i = next_index
                next_index += 1
                sent = time.perf_counter()
                try:
                    resp = await client.post("/v1/rerank", json=payload(requests[i]))
                    ok = resp.status_code == 200 and len(resp.json()["results"]) == len(
                        requests[i].documents
                    )
                    detail = f"HTTP {resp.status_code}: {resp.text[:200]}"
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    ok, detail = False, f"{type(exc).__name__}: {exc}"
                done = time.perf_counter()
                last_done = max(last_done, done)
                if ok:
                    result.completed += 1
                    result.pairs += len(requests[i].documents)
                    result.tokens += tokens[i]
                    result.flops += flops[i] if flops is not None else 0.0
                    result.latencies_s.append(done - sent)
                else:
                    result.errors += 1
                    if len(result.error_samples) < 3:
                        result.error_samples.append(detail)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.wall_s = last_done - start
    return result


async def fetch_scores(base_url: str, requests: Sequence[BenchRequest]) -> list[list[float]]:
    """Scores in document order for each request, sent one at a time (agreement checks)."""
    out = []
    async with httpx.AsyncClient(base_url=base_url, timeout=600.0) as client:
        for req in requests:
            resp = await client.post("/v1/rerank", json=payload(req))
            resp.raise_for_status()
            results = resp.json()["results"]
            scores = [float("nan")] * len(req.documents)
            for item in results:
                scores[item["index"]] = float(item["relevance_score"])
            out.append(scores)
    return out


async def wait_ready(base_url: str, timeout_s: float, alive, path: str = "/ready") -> None:
    """Poll `path` until 200; `alive()` False (process died) or timeout raises RuntimeError."""
    deadline = time.perf_counter() + timeout_s
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0) as client:
        while time.perf_counter() < deadline:
            if not alive():
                raise RuntimeError(f"server at {base_url} exited before it was ready")
            try:
                if (await client.get(path)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.25)
    raise RuntimeError(f"server at {base_url} not ready after {timeout_s:.0f}s")
