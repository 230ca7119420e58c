"""Read the Prometheus text exposition format: totals of series, histogram buckets, and the
quantile estimate Prometheus itself computes (histogram_quantile)."""

from __future__ import annotations

import re
from collections.abc import Mapping

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_totals(text: str, names: tuple[str, ...]) -> dict[str, float]:
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


def parse_by_label(text: str, name: str, label: str) -> dict[str, float]:
    """{value of `label`: sum of `name`'s samples with it} (other labels summed over)."""
    pattern = re.compile(label + r'="([^"]*)"')
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1) == name:
            value = pattern.search(match.group(2) or "")
            key = value.group(1) if value else ""
            out[key] = out.get(key, 0.0) + float(match.group(3))
    return out


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
