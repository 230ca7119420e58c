"""The server's own figures, read from its Prometheus `/metrics` before and after a run."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from reranker_contract import Metric
from reranker_operator.tools.promtext import histogram_quantile, parse_buckets, parse_totals

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
    return Scrape(totals, parse_buckets(text, str(Metric.QUEUE_TIME)))


@dataclass(frozen=True)
class ServerFigures:
    """What the server says happened between two scrapes."""

    requests: float
    tokens: float
    documents: float
    queue_time_mean_s: float | None  # mean wait of a pair before its forward pass
    queue_time_p95_s: float | None


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
    )
