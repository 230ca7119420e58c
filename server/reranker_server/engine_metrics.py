"""The engine's own series, relayed through the front's /metrics.

Behind the front vLLM listens on localhost only (nothing outside the pod can reach it, whether
or not the cluster enforces NetworkPolicies), so Prometheus cannot scrape it. The front reads
vLLM's /metrics at scrape time and exports the engine's families (`vllm:*`: KV cache, prefix
cache, tokens, queue) beside its own, unchanged: names, labels, values. Only the engine's own
prefix is relayed; the process, Python and HTTP families vLLM also exports would collide with the
front's. `reranker_engine_metrics_up` says whether the last read answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.core import Metric as MetricFamily
from prometheus_client.parser import text_string_to_metric_families

from reranker_contract import Metric

log = logging.getLogger(__name__)

ReadMetrics = Callable[[], str]  # the engine's /metrics text (raises when it does not answer)


class EngineMetricsRelay:
    """A prometheus_client collector of an engine's families whose names start with `prefix`,
    read by `read` at every scrape; nothing (not even the up gauge) until `read` is set."""

    def __init__(self) -> None:
        self.read: ReadMetrics | None = None
        self.prefix = ""

    def attach(self, read: ReadMetrics, prefix: str) -> None:
        """Relay the families named `prefix`* of what `read` returns."""
        self.read, self.prefix = read, prefix

    def describe(self) -> list[MetricFamily]:
        return []

    def collect(self) -> Iterator[MetricFamily]:
        read = self.read
        if read is None:
            return
        up = GaugeMetricFamily(
            Metric.ENGINE_METRICS_UP,
            "1: the engine behind the front answered its /metrics at this scrape; 0: it did not",
        )
        try:
            families = [
                f for f in text_string_to_metric_families(read()) if f.name.startswith(self.prefix)
            ]
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the engine did
            log.warning("the engine's /metrics could not be relayed: %s", exc)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families
