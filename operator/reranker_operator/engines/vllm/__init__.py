"""`engine: vllm`: vLLM's OpenAI server with the pooling runner. Its facts (facts.py), settings
(spec.vllm, settings.py), spec checks, the `vllm serve` container and its flags, the score
template and its ConfigMap, and the alerts and panels in vLLM's series. This Engine is bare
vLLM (spec.vllm.front false); with the front, `serving` gives front.py's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from reranker_operator.engines.base import AlertRule, Engine, MakeAlert, Panel
from reranker_operator.engines.vllm import serve
from reranker_operator.engines.vllm.checks import VLLM_CHECKS
from reranker_operator.engines.vllm.container import vllm_container, vllm_template_params
from reranker_operator.engines.vllm.facts import ENGINE_NAME, VLLM_ADAPTER_RULES, VLLM_WAITING
from reranker_operator.engines.vllm.flags import owned_flag_problems, unknown_flag_problems
from reranker_operator.engines.vllm.front import FRONTED
from reranker_operator.engines.vllm.monitoring import vllm_alerts, vllm_panels
from reranker_operator.render.apis import CONFIG_MAP, Child

if TYPE_CHECKING:
    from reranker_operator.api.spec import PrometheusRuleSpec, RerankerServiceSpec
    from reranker_operator.render.containers import ServingContainer
    from reranker_operator.render.service import ParsedService


class VllmEngine(Engine):
    """vLLM: needs GPUs, reads spec.vllm, mounts a score template for Qwen3 models."""

    name = ENGINE_NAME
    summary = "vLLM's OpenAI server (spec.vllm)"
    checks = VLLM_CHECKS
    children = (Child("vllm-template", CONFIG_MAP, "vllm-template.yaml.j2", vllm_template_params),)
    adapter_rules = VLLM_ADAPTER_RULES
    queued_pairs_metric = VLLM_WAITING

    def settings_problems(self, spec: RerankerServiceSpec) -> Iterator[tuple[str, str]]:
        field = "vllm.extraArgs"
        yield from owned_flag_problems(spec.vllm.extra_args, field)
        if spec.vllm.runs_pinned_image():  # another vLLM release has other flags
            yield from unknown_flag_problems(spec.vllm.extra_args, field)

    def serving(self, spec: RerankerServiceSpec) -> Engine:
        return FRONTED if spec.vllm.front else self  # our server in front of vLLM, or bare

    def serving_container(self, svc: ParsedService) -> ServingContainer:
        return vllm_container(svc)

    def restart_inputs(self, spec: RerankerServiceSpec) -> Any:
        return serve.score_template(spec)  # the mounted template: a new one restarts the pods

    def metrics_port(self, spec: RerankerServiceSpec) -> int | None:
        return None  # vLLM serves /metrics on its http port

    def prefix_reuse(self, spec: RerankerServiceSpec) -> bool:
        return serve.prefix_caching(spec)

    def alerts(
        self,
        name: str,
        namespace: str,
        thresholds: PrometheusRuleSpec,
        make: MakeAlert,
        *,
        prefix_reuse: bool,
    ) -> list[AlertRule]:
        return vllm_alerts(name, namespace, thresholds, make, prefix_caching=prefix_reuse)

    def panels(self, name: str, namespace: str) -> list[Panel]:
        return vllm_panels(name, namespace)


ENGINE = VllmEngine()
