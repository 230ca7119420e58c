"""The closed loop: `concurrency` clients posting requests until the request count or the
duration is reached (always bounded), with a progress line, stoppable with Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp

from reranker_operator.tools.loadtest.workload import Workload, request_body

DEFAULT_REQUESTS = 200  # when neither --requests nor --duration is given


@dataclass(frozen=True)
class Sample:
    """One request's outcome."""

    status: int  # HTTP status, or 0 when no answer came (connection error, timeout)
    latency_s: float
    pairs: int  # documents sent
    tokens: int | None  # prompt tokens the server reported (v1/v2 `usage`), else None
    error: str | None = None


@dataclass
class RunResult:
    """Everything one run produced."""

    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    concurrency: int = 1
    interrupted: bool = False


@dataclass(frozen=True)
class Bounds:
    """Stop after `requests` sent or `duration_s` elapsed, whichever comes first."""

    requests: int | None = None
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if self.requests is not None and self.requests < 1:
            raise ValueError("requests: must be >= 1")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError("duration: must be > 0")

    @property
    def limit(self) -> int | None:
        """The request cap: the given one, or the default when there is no duration either."""
        if self.requests is None and self.duration_s is None:
            return DEFAULT_REQUESTS
        return self.requests


class Progress:
    """A one-line progress bar on `stream` (redrawn in place on a terminal)."""

    def __init__(self, stream: TextIO | None, bounds: Bounds, every_s: float = 0.5) -> None:
        self.stream, self.bounds, self.every_s = stream, bounds, every_s
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self._last = 0.0

    def update(self, result: RunResult, started: float, final: bool = False) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if not final and now - self._last < (self.every_s if self.tty else 5.0):
            return
        self._last = now
        done, elapsed = len(result.samples), now - started
        limit, duration = self.bounds.limit, self.bounds.duration_s
        share = max(done / limit if limit else 0.0, elapsed / duration if duration else 0.0)
        bar = "#" * int(30 * min(1.0, share))
        ok = sum(1 for s in result.samples if s.status == 200)
        busy = sum(1 for s in result.samples if s.status == 429)
        line = (
            f"[{bar:<30}] {done} requests, {done / max(elapsed, 1e-9):.1f}/s, "
            f"{ok} ok, {busy} x 429, {elapsed:.0f}s"
        )
        end = "\n" if final or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()


def _tokens(data: Any) -> int | None:
    if isinstance(data, dict):
        usage = data.get("usage") or {}
        value = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return int(value) if isinstance(value, (int, float)) else None
    return None


async def _one(
    session: aiohttp.ClientSession, url: str, body: dict, headers: dict, pairs: int
) -> Sample:
    start = time.perf_counter()
    try:
        async with session.post(url, json=body, headers=headers) as answer:
            data = await answer.json(content_type=None) if answer.status == 200 else None
            error = None if answer.status == 200 else (await answer.text())[:300]
            latency = time.perf_counter() - start
            return Sample(answer.status, latency, pairs, _tokens(data), error)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Sample(0, time.perf_counter() - start, pairs, None, f"{type(exc).__name__}: {exc}")


async def run(
    base_url: str,
    workload: Workload,
    *,
    concurrency: int,
    bounds: Bounds,
    api_key: str | None = None,
    timeout_s: float = 120.0,
    progress: TextIO | None = None,
    first_index: int = 0,
    on_sample: Callable[[Sample], None] | None = None,
) -> RunResult:
    """Run the closed loop and return every sample; Ctrl-C stops it and keeps what finished."""
    if concurrency < 1:
        raise ValueError("concurrency: must be >= 1")
    url = base_url.rstrip("/") + workload.path
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    result = RunResult(concurrency=concurrency)
    limit, duration = bounds.limit, bounds.duration_s
    counter = iter(range(first_index, first_index + limit) if limit else _forever(first_index))
    stop = asyncio.Event()
    bar = Progress(progress, bounds)
    started = time.monotonic()
    deadline = started + duration if duration else None

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return
            index = next(counter, None)
            if index is None:
                return
            sample = await _one(
                session, url, request_body(workload, index), headers, workload.documents
            )
            result.samples.append(sample)
            if on_sample is not None:
                on_sample(sample)
            bar.update(result, started)

    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
        handled = True
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
        handled = False
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(limit=concurrency)
    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            tasks = [asyncio.create_task(client(session)) for _ in range(concurrency)]
            stopper = asyncio.create_task(stop.wait())
            pending = set(tasks)
            while pending:
                _done, pending = await asyncio.wait(
                    pending | {stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(stopper)
                if stop.is_set():
                    result.interrupted = True
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    break
            stopper.cancel()
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)
    result.wall_s = time.monotonic() - started
    bar.update(result, started, final=True)
    return result


def _forever(start: int):
    i = start
    while True:
        yield i
        i += 1


def run_sync(*args: Any, **kwargs: Any) -> RunResult:
    """`run` in a fresh event loop (the CLI's entry)."""
    return asyncio.run(run(*args, **kwargs))
