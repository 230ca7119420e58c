"""Figures of a run: throughput per request, pair and token, latency percentiles, status counts."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from reranker_operator.tools.loadtest.metrics import ServerFigures
from reranker_operator.tools.loadtest.runner import RunResult

PERCENTILES = (50, 90, 95, 99)


def percentile(values: list[float], p: float) -> float | None:
    """The p-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    concurrency: int
    wall_s: float
    requests: int  # sent and answered (any status) or failed
    ok: int  # answered 200
    rejected: int  # answered 429 (the server's queue was full)
    failed: int  # other statuses and connection errors
    by_status: dict[str, int]
    requests_per_s: float  # 200 answers per second
    pairs_per_s: float  # documents scored per second (200 answers)
    tokens_per_s: float | None  # prompt tokens per second (server-reported), if known
    latency_s: dict[str, float | None]  # p50/p90/p95/p99 of 200 answers
    interrupted: bool
    server: dict[str, Any] | None  # the server's own figures from /metrics
    errors: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(result: RunResult, server: ServerFigures | None = None) -> Summary:
    ok = [s for s in result.samples if s.status == 200]
    statuses = Counter("no answer" if s.status == 0 else str(s.status) for s in result.samples)
    wall = max(result.wall_s, 1e-9)
    reported = [s.tokens for s in ok if s.tokens is not None]
    if ok and len(reported) == len(ok):
        tokens_per_s: float | None = sum(reported) / wall
    elif server is not None and server.tokens > 0:
        tokens_per_s = server.tokens / wall
    else:
        tokens_per_s = None
    latencies = [s.latency_s for s in ok]
    return Summary(
        concurrency=result.concurrency,
        wall_s=result.wall_s,
        requests=len(result.samples),
        ok=len(ok),
        rejected=statuses.get("429", 0),
        failed=len(result.samples) - len(ok) - statuses.get("429", 0),
        by_status=dict(sorted(statuses.items())),
        requests_per_s=len(ok) / wall,
        pairs_per_s=sum(s.pairs for s in ok) / wall,
        tokens_per_s=tokens_per_s,
        latency_s={f"p{p}": percentile(latencies, p) for p in PERCENTILES},
        interrupted=result.interrupted,
        server=asdict(server) if server is not None else None,
        errors=sorted({s.error for s in result.samples if s.error})[:3],
    )


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}s"


def _gib(value: float) -> str:
    return f"{value / 2**30:,.2f} GiB"


def _device(device: dict[str, Any] | None) -> str:
    """The headroom line: what the replica left free on its device, or why it is unknown."""
    if device is None:
        return "no device memory reported (a CPU server): no GPU headroom to measure"
    return (
        f"{_gib(device['headroom_bytes'])} of {_gib(device['total_bytes'])} free "
        f"({device['headroom_share']:.0%} headroom; free before {_gib(device['free_before_bytes'])}"
        f", after {_gib(device['free_after_bytes'])})"
    )


def render_text(summary: Summary) -> str:
    """The human-readable report."""
    lat = summary.latency_s
    tokens = "n/a" if summary.tokens_per_s is None else f"{summary.tokens_per_s:,.0f}"
    lines = [
        (
            f"{'interrupted after' if summary.interrupted else 'ran'} {summary.wall_s:.1f}s at "
            f"concurrency {summary.concurrency}: {summary.requests} requests"
        ),
        (
            f"  throughput  {summary.requests_per_s:,.2f} requests/s   "
            f"{summary.pairs_per_s:,.1f} pairs/s   {tokens} tokens/s"
        ),
        "  latency     " + "   ".join(f"{k} {_seconds(v)}" for k, v in lat.items()),
        f"  answers     {summary.ok} ok, {summary.rejected} rejected (429), "
        f"{summary.failed} failed   "
        + ", ".join(f"{k}: {v}" for k, v in summary.by_status.items()),
    ]
    if summary.server is not None:
        srv = summary.server
        lines.append(
            f"  server      queue time per pair: mean {_seconds(srv['queue_time_mean_s'])}, "
            f"p95 ~{_seconds(srv['queue_time_p95_s'])} (histogram buckets); {srv['requests']:.0f} requests, "
            f"{srv['tokens']:,.0f} tokens scored (from its /metrics)"
        )
        lines.append("  device      " + _device(srv.get("device")))
    else:
        lines.append("  server      /metrics not readable: no server-side queue time")
    lines += [f"  error       {e}" for e in summary.errors]
    return "\n".join(lines)
