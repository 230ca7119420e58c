"""What autoscaling scales on, as the HPA and as KEDA see it: one list of targets from the spec,
and the PromQL of a KEDA trigger expanded from the same Prometheus Adapter rule as the HPA's
metric (each engine's Engine.adapter_rules), so both read one series the same way."""

from __future__ import annotations

from dataclasses import dataclass

from reranker_contract import DEFAULT_QUEUED_PAIRS_PER_POD, AdapterRule, HpaMetric
from reranker_operator.api.spec import RerankerServiceSpec
from reranker_operator.engines import engine, registered


def adapter_rules() -> tuple[AdapterRule, ...]:
    """Every registered engine's Prometheus Adapter rules, in the registry's order."""
    return tuple(rule for engine in registered() for rule in engine.adapter_rules)


@dataclass(frozen=True)
class CustomTarget:
    """A per-pod target on a custom metric: its HPA metric name and the average it aims at."""

    metric: str  # an HpaMetric or an engine's (Engine.queued_pairs_metric)
    value: str  # a quantity
    average: bool  # True: a per-pod average (HPA AverageValue); False: a per-pod maximum

    @property
    def rule(self) -> AdapterRule:
        return next(rule for rule in adapter_rules() if rule.name == self.metric)


def custom_targets(spec: RerankerServiceSpec) -> list[CustomTarget]:
    """The custom-metric targets the resource scales on; queued pairs when it names none and
    runs on GPUs or KEDA (a CPU model with no target keeps the CPU/memory ones it names)."""
    a = spec.autoscaling
    pairs = engine(spec.engine).serving(spec).queued_pairs_metric
    out = []
    if a.queued_pairs_per_pod is not None:
        out.append(CustomTarget(pairs, a.queued_pairs_per_pod, True))
    if a.queued_tokens_per_pod is not None:
        out.append(CustomTarget(HpaMetric.QUEUED_TOKENS, a.queued_tokens_per_pod, True))
    if a.requests_per_second is not None:
        out.append(CustomTarget(HpaMetric.REQUESTS_PER_SECOND, a.requests_per_second, True))
    if a.p95_latency_seconds is not None:
        out.append(CustomTarget(HpaMetric.P95_LATENCY_SECONDS, a.p95_latency_seconds, False))
    if not a.named_targets() and (spec.resources.on_gpu() or a.keda.enabled):
        out.append(CustomTarget(pairs, str(DEFAULT_QUEUED_PAIRS_PER_POD), True))
    return out


def expand(rule: AdapterRule, matchers: str, group_by: str = "pod") -> str:
    """The adapter rule's query as Prometheus Adapter runs it for these label matchers."""
    return (
        rule.metrics_query.replace("<<.Series>>", rule.series)
        .replace("<<.LabelMatchers>>", matchers)
        .replace("<<.GroupBy>>", group_by)
    )


def keda_query(target: CustomTarget, name: str, namespace: str) -> str:
    """The trigger's PromQL: the per-pod values the HPA would read, summed (KEDA divides an
    AverageValue target's total by the replicas) or, for a maximum target, their maximum."""
    per_pod = expand(target.rule, f'namespace="{namespace}",job="{name}"')
    return f"{'sum' if target.average else 'max'}({per_pod})"
