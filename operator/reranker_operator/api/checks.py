"""The checks of a spec that no CRD schema or CEL rule here can state, so only the operator
makes them: quantity comparisons, durations, label and annotation syntax, the size of the
score-check probes, and each engine's checks of its settings (Engine.settings_problems; vLLM:
the extraArgs its parser accepts).

The API server accepts a spec that fails one of these; the operator then reports InvalidSpec
naming the field and creates nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from reranker_operator.api.fieldtypes import DNS1123_SUBDOMAIN, DURATION
from reranker_operator.api.quantity import parse_quantity
from reranker_operator.api.score_check import probes_too_large
from reranker_operator.engines import registered

if TYPE_CHECKING:
    from reranker_operator.api.spec import RerankerServiceSpec

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DURATION_RE = re.compile(DURATION)


def duration_seconds(value: str) -> float:
    """Seconds in a Prometheus-style duration such as `1m30s` or `500ms`."""
    match = _DURATION_RE.fullmatch(value)
    if not value or not match:
        raise ValueError(f"{value!r} is not a duration (e.g. 30s, 1m, 1m30s, 500ms)")
    h, m, s, ms = (int(match.group(i) or 0) for i in (2, 4, 6, 8))
    return h * 3600 + m * 60 + s + ms / 1000


def check_key(key: str, what: str = "label") -> None:
    """Raise ValueError unless `key` is a qualified name (`[prefix/]name`) as labels and
    annotations require."""
    prefix, slash, name = key.rpartition("/")
    if not name or len(name) > 63 or not LABEL_NAME_PART.fullmatch(name):
        raise ValueError(f"{what} key {key!r} is not a valid {what} name")
    if slash and (not prefix or len(prefix) > 253 or not re.fullmatch(DNS1123_SUBDOMAIN, prefix)):
        raise ValueError(f"{what} key {key!r} has an invalid prefix")


def check_labels(labels: Mapping[str, str]) -> None:
    """Raise ValueError unless every key and value is valid Kubernetes label syntax."""
    for key, value in labels.items():
        check_key(key)
        if len(value) > 63 or not LABEL_VALUE.fullmatch(value):
            raise ValueError(f"label value {value!r} of {key!r} is not a valid label value")


def _quantities(spec: RerankerServiceSpec) -> Iterator[tuple[str, str]]:
    a = spec.autoscaling
    if a.enabled:
        for name, value in (
            ("requestsPerSecond", a.requests_per_second),
            ("p95LatencySeconds", a.p95_latency_seconds),
        ):
            if value is not None and parse_quantity(value) <= 0:
                yield f"autoscaling.{name}", "must be > 0"
    size = spec.model_cache.size
    if size is not None and parse_quantity(size) <= 0:
        yield "modelCache.size", "must be > 0"
    for kind in ("cpu", "memory"):
        req = getattr(spec.resources.requests, kind)
        lim = getattr(spec.resources.limits, kind)
        if req is not None and lim is not None and parse_quantity(lim) < parse_quantity(req):
            yield f"resources.limits.{kind}", f"limit {lim} is below the request {req}"


def _durations(spec: RerankerServiceSpec) -> Iterator[tuple[str, str]]:
    sm = spec.metrics.service_monitor
    if duration_seconds(sm.scrape_timeout) > duration_seconds(sm.interval):
        yield (
            "metrics.serviceMonitor.scrapeTimeout",
            f"{sm.scrape_timeout} is longer than the interval {sm.interval}",
        )


def _metadata_maps(spec: RerankerServiceSpec) -> Iterator[tuple[str, str]]:
    labels = (
        ("podLabels", spec.pod_labels),
        ("nodeSelector", spec.node_selector),
        ("metrics.serviceMonitor.labels", spec.metrics.service_monitor.labels),
        ("metrics.prometheusRule.labels", spec.metrics.prometheus_rule.labels),
        ("metrics.dashboard.labels", spec.metrics.dashboard.labels),
    )
    for path, mapping in labels:
        try:
            check_labels(mapping)
        except ValueError as exc:
            yield path, str(exc)
    annotations = (
        ("podAnnotations", spec.pod_annotations),
        ("service.annotations", spec.service.annotations),
        ("ingress.annotations", spec.ingress.annotations),
    )
    for path, mapping in annotations:
        try:
            for key in mapping:
                check_key(key, "annotation")
        except ValueError as exc:
            yield path, str(exc)


def _score_probes(spec: RerankerServiceSpec) -> Iterator[tuple[str, str]]:
    problem = probes_too_large(spec.score_check)
    if problem is not None:
        yield "scoreCheck.probes", problem


def unexpressible_problems(spec: RerankerServiceSpec) -> Iterator[tuple[str, str]]:
    """(field, message) of every problem of these kinds in `spec`."""
    for engine in registered():  # each engine's settings, whichever engine runs
        yield from engine.settings_problems(spec)
    yield from _quantities(spec)
    yield from _durations(spec)
    yield from _metadata_maps(spec)
    yield from _score_probes(spec)
