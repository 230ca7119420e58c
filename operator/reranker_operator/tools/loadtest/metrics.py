"""The server's own figures, read from its Prometheus `/metrics` before and after a run: the
totals the report uses and the memory its device has left (the headroom a replica leaves)."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from reranker_contract import Metric
from reranker_operator.tools.promtext import (
    histogram_quantile,
    parse_buckets,
    parse_by_label,
    parse_totals,
)

# The series whose totals the report uses (summed over their labels).
WATCHED = (
    f"{Metric.QUEUE_TIME}_sum",
    f"{Metric.QUEUE_TIME}_count",
    f"{Metric.TOKENS_PER_REQUEST}_sum",
    f"{Metric.TOKENS_PER_REQUEST}_count",
    f"{Metric.DOCUMENTS_PER_REQUEST}_sum",
    str(Metric.RERANK_REQUESTS_TOTAL),
)


@dataclass(frozen=True)
class Scrape:
    totals: dict[str, float]
    queue_buckets: dict[float, float]
    device_memory: dict[str, float]  # reranker_device_memory_bytes by kind; empty: none (CPU)


def scrape(base_url: str, timeout_s: float = 5.0) -> Scrape | None:
    """The watched totals and the queue-time histogram of `base_url/metrics`, or None when it
    cannot be read (another server, or /metrics not reachable)."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/metrics", timeout=timeout_s) as r:
            text = r.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    totals = parse_totals(text, WATCHED)
    if f"{Metric.QUEUE_TIME}_count" not in totals:
        return None  # not this server's metrics
    return Scrape(
        totals,
        parse_buckets(text, str(Metric.QUEUE_TIME)),
        parse_by_label(text, str(Metric.DEVICE_MEMORY), "kind"),
    )


@dataclass(frozen=True)
class DeviceHeadroom:
    """The server's device memory around a run, as the CUDA driver reported it. The caching
    allocator keeps what the run's largest batches took, so the free memory after the run is
    what the replica leaves at its peak; the headroom is the lower of before and after."""

    total_bytes: float
    free_before_bytes: float
    free_after_bytes: float
    headroom_bytes: float
    headroom_share: float  # of the device's total


def headroom(before: Scrape | None, after: Scrape | None) -> DeviceHeadroom | None:
    """The device headroom between two scrapes; None when the server reports no device memory
    (a CPU server, or one without reranker_device_memory_bytes)."""
    if before is None or after is None:
        return None
    total = after.device_memory.get("total")
    free_after = after.device_memory.get("free")
    free_before = before.device_memory.get("free", free_after)
    if not total or free_after is None or free_before is None:
        return None
    room = min(free_before, free_after)
    return DeviceHeadroom(total, free_before, free_after, room, room / total)


@dataclass(frozen=True)
class ServerFigures:
    """What the server says happened between two scrapes."""

    requests: float
    tokens: float
    documents: float
    queue_time_mean_s: float | None  # mean wait of a pair before its forward pass
    queue_time_p95_s: float | None
    device: DeviceHeadroom | None = None  # None: no device memory reported (a CPU server)


def delta(before: Scrape | None, after: Scrape | None) -> ServerFigures | None:
    """What happened between two scrapes of one server."""
    if before is None or after is None:
        return None

    def d(name: str) -> float:
        return after.totals.get(name, 0.0) - before.totals.get(name, 0.0)

    buckets = {b: c - before.queue_buckets.get(b, 0.0) for b, c in after.queue_buckets.items()}

    pairs = d(f"{Metric.QUEUE_TIME}_count")
    waited = d(f"{Metric.QUEUE_TIME}_sum")
    return ServerFigures(
        requests=d(f"{Metric.TOKENS_PER_REQUEST}_count"),
        tokens=d(f"{Metric.TOKENS_PER_REQUEST}_sum"),
        documents=d(f"{Metric.DOCUMENTS_PER_REQUEST}_sum"),
        queue_time_mean_s=waited / pairs if pairs > 0 else None,
        queue_time_p95_s=histogram_quantile(0.95, buckets) if pairs > 0 else None,
        device=headroom(before, after),
    )
