"""`engine: transformers`: the bundled server (reranker_server), the operator's default engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reranker_contract import ADAPTER_RULES, HpaMetric
from reranker_operator.engines.base import AlertRule, Engine, MakeAlert, Panel
from reranker_operator.engines.transformers.container import ENGINE_NAME, server_container
from reranker_operator.engines.transformers.monitoring import server_alerts, server_panels

if TYPE_CHECKING:
    from reranker_operator.api.spec import PrometheusRuleSpec, RerankerServiceSpec
    from reranker_operator.render.containers import ServingContainer
    from reranker_operator.render.service import ParsedService


class TransformersEngine(Engine):
    """The bundled server: every rerank API shape, its own metrics port, all spec features."""

    name = ENGINE_NAME
    summary = (
        "the bundled server (every rerank API shape, shared-prefix batching, auth, playground)"
    )
    score_check = True
    adapter_rules = ADAPTER_RULES
    queued_pairs_metric = HpaMetric.QUEUED_PAIRS

    def serving_container(self, svc: ParsedService) -> ServingContainer:
        return server_container(svc.name, svc.spec)

    def metrics_port(self, spec: RerankerServiceSpec) -> int | None:
        return spec.server.metrics_port

    def prefix_reuse(self, spec: RerankerServiceSpec) -> bool:
        return spec.model.is_causal()

    def alerts(
        self,
        name: str,
        namespace: str,
        thresholds: PrometheusRuleSpec,
        make: MakeAlert,
        *,
        prefix_reuse: bool,
    ) -> list[AlertRule]:
        return server_alerts(name, namespace, thresholds, make, prefix_reuse=prefix_reuse)

    def panels(self, name: str, namespace: str) -> list[Panel]:
        return server_panels(name, namespace)


ENGINE = TransformersEngine()
