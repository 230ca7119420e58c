"""`engine: vllm` behind the bundled server (spec.vllm.front, the default): the pod runs our
server as the serving container (the Service, probes, NetworkPolicy and autoscaling target it,
as with engine transformers) and vLLM beside it, listening on localhost only: the front calls
it there (ENGINE_URL) and relays its /metrics (the engine's own panels) through its own, so
nothing outside the pod reaches vLLM.

One set of request alerts and panels and one queued-pairs signal for both engines: the front's
series (the bundled server's), plus the alerts and panels on vLLM's engine (KV cache, prefix
cache) in vLLM's series. The GPU memory panel and alert of the bundled server are left out: the
front holds no GPU, and vLLM reserves its share of the GPU's memory at start, so its KV-cache
usage is the reading that moves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reranker_contract import HpaMetric
from reranker_operator.engines.base import AlertRule, Engine, MakeAlert, Panel
from reranker_operator.engines.transformers.container import FrontOf, server_container
from reranker_operator.engines.transformers.monitoring import server_alerts, server_panels
from reranker_operator.engines.vllm import serve
from reranker_operator.engines.vllm.container import VLLM_STARTUP_FAILURES, vllm_container
from reranker_operator.engines.vllm.facts import ENGINE_NAME
from reranker_operator.engines.vllm.monitoring import vllm_engine_alerts, vllm_engine_panels
from reranker_operator.render.containers import ServingContainer

if TYPE_CHECKING:
    from reranker_operator.api.spec import PrometheusRuleSpec, RerankerServiceSpec
    from reranker_operator.render.service import ParsedService

# The front's own requests and limits (the GPU and spec.resources stay on vLLM's container):
# it loads no weights, only the tokenizer, and tokenizes and plans batches on a CPU; 1 CPU and
# 1 GiB requested (a Python process with transformers' tokenizer; measured 0.03 cores and
# 300 MiB RSS at 85 pairs/s, ~1.3 us of CPU per token: bench/runs/*-amx-front-vs-vllm.md), a
# 4 GiB limit for the tokenizer's peak on a request of the largest accepted body. No CPU limit:
# a throttled front would slow every request on a GPU that waits.
FRONT_RESOURCES = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}
# the front waits for vLLM's start (VLLM_STARTUP_FAILURES) and then runs the score check
FRONT_STARTUP_FAILURES = VLLM_STARTUP_FAILURES + 30


class VllmFrontEngine(Engine):
    """vLLM with our server in front (reached through VllmEngine.serving, never registered)."""

    name = ENGINE_NAME
    summary = "vLLM behind the bundled server (spec.vllm.front)"
    score_check = True  # the front runs it, scoring through vLLM
    queued_pairs_metric = HpaMetric.QUEUED_PAIRS  # the front's queue, as engine transformers

    def serving_container(self, svc: ParsedService) -> ServingContainer:
        spec = svc.spec
        engine = vllm_container(svc)
        front_of = FrontOf(serve.engine_url(spec), FRONT_RESOURCES, FRONT_STARTUP_FAILURES)
        front = server_container(svc.name, spec, front_of)
        return ServingContainer(
            front.container, [*front.volumes, *engine.volumes], engine_container=engine.container
        )

    def restart_inputs(self, spec: RerankerServiceSpec) -> Any:
        return serve.score_template(spec)  # the mounted template: a new one restarts the pods

    def metrics_port(self, spec: RerankerServiceSpec) -> int | None:
        return spec.server.metrics_port  # the front's, as engine transformers'

    def prefix_reuse(self, spec: RerankerServiceSpec) -> bool:
        return serve.prefix_caching(spec)  # vLLM's prefix cache; the front batches no prefixes

    def alerts(
        self,
        name: str,
        namespace: str,
        thresholds: PrometheusRuleSpec,
        make: MakeAlert,
        *,
        prefix_reuse: bool,
    ) -> list[AlertRule]:
        return [
            *server_alerts(
                name, namespace, thresholds, make, prefix_reuse=False, holds_device=False
            ),
            *vllm_engine_alerts(name, namespace, thresholds, make, prefix_caching=prefix_reuse),
        ]

    def panels(self, name: str, namespace: str) -> list[Panel]:
        return [
            *server_panels(name, namespace, holds_device=False),
            *vllm_engine_panels(name, namespace),
        ]


FRONTED = VllmFrontEngine()
