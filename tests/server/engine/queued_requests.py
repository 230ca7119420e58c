"""Requests queued on a paused engine: the engine tests' one way to line up a batch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from reranker_server.contracts import RerankInput


async def queue_while_paused(
    engine: Any, requests: Sequence[RerankInput], wait_for: Callable[..., Awaitable[Any]]
) -> list[asyncio.Task]:
    """Start `requests` (in this order) on a paused engine and wait until all their pairs are
    queued; the caller resumes the engine."""
    tasks = [asyncio.create_task(engine.rerank(r)) for r in requests]
    total = sum(len(r.documents) for r in requests)
    await wait_for(lambda: engine.pending_pairs == total, what=f"{total} pairs queued")
    return tasks
