"""The server's own figures, read from its Prometheus `/metrics` before and after a run."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from reranker_contract import Metric

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
# The series whose totals the report uses (summed over their labels).
WATCHED = (
    f"{Metric.QUEUE_TIME}_sum",
    f"{Metric.QUEUE_TIME}_count",
    f"{Metric.TOKENS_PER_REQUEST}_sum",
    f"{Metric.TOKENS_PER_REQUEST}_count",
    f"{Metric.DOCUMENTS_PER_REQUEST}_sum",
    str(Metric.RERANK_REQUESTS_TOTAL),
)


def parse_totals(text: str, names: tuple[str, ...] = WATCHED) -> dict[str, float]:
    """{series name: sum over its label sets} for `names` in a Prometheus text exposition."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1) in names:
            try:
                totals[match.group(1)] = totals.get(match.group(1), 0.0) + float(match.group(3))
            except ValueError:
                continue
    return totals


_LE = re.compile(r'le="([^"]+)"')


def parse_buckets(text: str, histogram: str) -> dict[float, float]:
    """{upper bound: cumulative count} of a histogram, summed over its other labels."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) != f"{histogram}_bucket":
            continue
        le = _LE.search(match.group(2) or "")
        if le:
            bound = float("inf") if le.group(1) == "+Inf" else float(le.group(1))
            buckets[bound] = buckets.get(bound, 0.0) + float(match.group(3))
    return buckets


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' estimate: linear interpolation inside the bucket holding the q-quantile."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = bound, count
    return lower


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
    totals = parse_totals(text)
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
