"""What the diagnosis reads: rates and shares over a window, from two scrapes or Prometheus."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from reranker_contract import DEFAULTS, FAMILIES, Metric, ModelFamily
from reranker_contract.score_check import ScoringEngine
from reranker_operator.api.families import FAMILY_TRAITS
from reranker_operator.engines.vllm.facts import VllmMetric
from reranker_operator.tools.promtext import (
    histogram_quantile,
    parse_buckets,
    parse_by_label,
    parse_totals,
)


def family_is_causal(family: str | None) -> bool | None:
    """Whether the family a server reports (or --family names) is a yes/no causal one, whose
    documents should reuse the request's prompt prefix; None when no family is known."""
    if family is None:
        return None
    return family in FAMILIES and FAMILY_TRAITS[ModelFamily(family)].yes_no_causal


@dataclass(frozen=True)
class Signals:
    source: str
    window_s: float
    requests_per_s: float  # rerank requests answered
    rejected_per_s: float  # refused because the queue was full (429)
    rate_limited_per_s: float  # refused by a per-client rate limit (429)
    documents_per_s: float
    documents_per_request: float | None
    latency_p95_s: float | None  # engine submission to scores, per request
    queue_time_p95_s: float | None  # per pair, before its forward pass
    tokenization_busy: float  # seconds spent tokenizing per second (~ cores kept busy)
    inference_busy: float  # seconds the model ran per second, per model worker
    batch_size_mean: float | None  # sequences per forward pass
    padding_ratio_mean: float | None
    # scored pairs that reused a shared prefix KV cache; behind the front of vLLM, the share of
    # prompt tokens vLLM's prefix cache served (its series, relayed by the front)
    prefix_reuse_share: float | None
    truncated_share: float | None  # documents cut to fit
    max_batch_size: int
    model_workers: int
    causal: bool | None  # a yes/no causal (Qwen3-style) model (None: unknown)
    # the engine that scores: the server's own, or vLLM behind it as its front (whose "model"
    # stage is the call to vLLM); None: unknown
    engine: ScoringEngine | None = None

    @property
    def fronts_vllm(self) -> bool:
        return self.engine == ScoringEngine.VLLM

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


COUNTERS = (
    f"{Metric.DOCUMENTS_PER_REQUEST}_sum",
    f"{Metric.DOCUMENTS_PER_REQUEST}_count",
    f"{Metric.TOKENIZATION_DURATION}_sum",
    f"{Metric.INFERENCE_DURATION_STAGE}_sum",
    f"{Metric.BATCH_SIZE}_sum",
    f"{Metric.BATCH_SIZE}_count",
    f"{Metric.PADDING_RATIO}_sum",
    f"{Metric.PADDING_RATIO}_count",
    str(Metric.PREFIX_CACHE_REUSE_TOTAL),
    str(Metric.TRUNCATED_DOCUMENTS_TOTAL),
    str(Metric.RATE_LIMITED_TOTAL),
    str(VllmMetric.PREFIX_CACHE_HITS_TOTAL),  # relayed by the front of vLLM
    str(VllmMetric.PREFIX_CACHE_QUERIES_TOTAL),
)


@dataclass
class _Scrape:
    at: float
    totals: dict[str, float]
    statuses: dict[str, float]
    queue: dict[float, float]
    latency: dict[float, float]


def _scrape(url: str) -> _Scrape:
    with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=10) as answer:
        text = answer.read().decode("utf-8", "replace")
    return _Scrape(
        time.monotonic(),
        parse_totals(text, COUNTERS),
        parse_by_label(text, str(Metric.RERANK_REQUESTS_TOTAL), "status"),
        parse_buckets(text, str(Metric.QUEUE_TIME)),
        parse_buckets(text, str(Metric.INFERENCE_DURATION)),
    )


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def from_server(url: str, *, interval_s: float = 10.0, api_key: str | None = None) -> Signals:
    """Scrape `url`'s /metrics twice, `interval_s` apart, and read its /info (with `api_key`,
    the whole of it where the server requires credentials)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        request = urllib.request.Request(url.rstrip("/") + "/info", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as answer:
            info = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError):
        info = {}
    before = _scrape(url)
    time.sleep(interval_s)
    after = _scrape(url)
    wall = after.at - before.at

    def d(name: str) -> float:
        return after.totals.get(name, 0.0) - before.totals.get(name, 0.0)

    def status(name: str) -> float:
        return after.statuses.get(name, 0.0) - before.statuses.get(name, 0.0)

    def quantile(a: Mapping[float, float], b: Mapping[float, float]) -> float | None:
        delta = {k: v - b.get(k, 0.0) for k, v in a.items()}
        return histogram_quantile(0.95, delta)

    limits = info.get("limits") or {}
    engine = info.get("engine") or {}
    family = info.get("family")
    docs = d(f"{Metric.DOCUMENTS_PER_REQUEST}_sum")
    scoring = _scoring_engine(engine.get("engine"), known=bool(info))
    reuse = (
        _ratio(
            d(str(VllmMetric.PREFIX_CACHE_HITS_TOTAL)),
            d(str(VllmMetric.PREFIX_CACHE_QUERIES_TOTAL)),
        )
        if scoring == ScoringEngine.VLLM
        else _ratio(d(str(Metric.PREFIX_CACHE_REUSE_TOTAL)), docs)
    )
    return Signals(
        source=url,
        window_s=wall,
        requests_per_s=status("ok") / wall,
        rejected_per_s=status("rejected") / wall,
        rate_limited_per_s=d(str(Metric.RATE_LIMITED_TOTAL)) / wall,
        documents_per_s=docs / wall,
        documents_per_request=_ratio(docs, d(f"{Metric.DOCUMENTS_PER_REQUEST}_count")),
        latency_p95_s=quantile(after.latency, before.latency),
        queue_time_p95_s=quantile(after.queue, before.queue),
        tokenization_busy=d(f"{Metric.TOKENIZATION_DURATION}_sum") / wall,
        inference_busy=d(f"{Metric.INFERENCE_DURATION_STAGE}_sum")
        / wall
        / max(1, int(engine.get("model_workers") or 1)),
        batch_size_mean=_ratio(d(f"{Metric.BATCH_SIZE}_sum"), d(f"{Metric.BATCH_SIZE}_count")),
        padding_ratio_mean=_ratio(
            d(f"{Metric.PADDING_RATIO}_sum"), d(f"{Metric.PADDING_RATIO}_count")
        ),
        prefix_reuse_share=reuse,
        truncated_share=_ratio(d(str(Metric.TRUNCATED_DOCUMENTS_TOTAL)), docs),
        max_batch_size=int(limits.get("max_batch_size") or DEFAULTS.max_batch_size),
        model_workers=max(1, int(engine.get("model_workers") or 1)),
        causal=family_is_causal(family),
        engine=scoring,
    )


def _scoring_engine(name: str | None, *, known: bool) -> ScoringEngine | None:
    """The engine /info names (the front of vLLM says "vllm"; the bundled server names none)."""
    if name in tuple(ScoringEngine):
        return ScoringEngine(name)
    return ScoringEngine.TRANSFORMERS if known else None


def _query(prometheus: str, expr: str) -> float | None:
    url = prometheus.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=15) as answer:
        data = json.loads(answer.read())
    if data.get("status") != "success":
        raise ValueError(f"Prometheus refused {expr}: {data.get('error')}")
    result = data["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN: no observations


def from_prometheus(
    prometheus: str,
    name: str,
    namespace: str,
    *,
    window: str = "5m",
    max_batch_size: int = DEFAULTS.max_batch_size,
    model_workers: int = 1,
    causal: bool | None = None,
) -> Signals:
    """The same signals as `from_server`, over the last `window`, for every pod of the service."""
    sel = f'namespace="{namespace}",job="{name}"'

    def rate(series: str, extra: str = "") -> float:
        matchers = f"{sel},{extra}" if extra else sel
        return _query(prometheus, f"sum(rate({series}{{{matchers}}}[{window}]))") or 0.0

    def share(num: str, den: str) -> float | None:
        d = rate(den)
        return rate(num) / d if d > 0 else None

    def p95(histogram: str) -> float | None:
        return _query(
            prometheus,
            f"histogram_quantile(0.95, sum by (le) (rate({histogram}_bucket{{{sel}}}[{window}])))",
        )

    pods = _query(prometheus, f"count(up{{{sel}}})") or 1.0
    docs = f"{Metric.DOCUMENTS_PER_REQUEST}_sum"
    # the front of vLLM exports whether vLLM's own series were relayed; the bundled server not
    fronted = _query(prometheus, f"count({Metric.ENGINE_METRICS_UP}{{{sel}}})") is not None
    reuse = (
        share(str(VllmMetric.PREFIX_CACHE_HITS_TOTAL), str(VllmMetric.PREFIX_CACHE_QUERIES_TOTAL))
        if fronted
        else share(str(Metric.PREFIX_CACHE_REUSE_TOTAL), docs)
    )
    seconds = {"s": 1, "m": 60, "h": 3600}[window[-1]] * float(window[:-1])
    return Signals(
        source=prometheus,
        window_s=seconds,
        requests_per_s=rate(Metric.RERANK_REQUESTS_TOTAL, 'status="ok"'),
        rejected_per_s=rate(Metric.RERANK_REQUESTS_TOTAL, 'status="rejected"'),
        rate_limited_per_s=rate(Metric.RATE_LIMITED_TOTAL),
        documents_per_s=rate(docs),
        documents_per_request=share(docs, f"{Metric.DOCUMENTS_PER_REQUEST}_count"),
        latency_p95_s=p95(Metric.INFERENCE_DURATION),
        queue_time_p95_s=p95(Metric.QUEUE_TIME),
        tokenization_busy=rate(f"{Metric.TOKENIZATION_DURATION}_sum") / pods,
        inference_busy=rate(f"{Metric.INFERENCE_DURATION_STAGE}_sum")
        / pods
        / max(1, model_workers),
        batch_size_mean=share(f"{Metric.BATCH_SIZE}_sum", f"{Metric.BATCH_SIZE}_count"),
        padding_ratio_mean=share(f"{Metric.PADDING_RATIO}_sum", f"{Metric.PADDING_RATIO}_count"),
        prefix_reuse_share=reuse,
        truncated_share=share(str(Metric.TRUNCATED_DOCUMENTS_TOTAL), docs),
        max_batch_size=max_batch_size,
        model_workers=max(1, model_workers),
        causal=causal,
        engine=ScoringEngine.VLLM if fronted else ScoringEngine.TRANSFORMERS,
    )
