"""A toy third engine for tests/operator/engines/test_engine_registry.py: every hook of
reranker_operator.engines.base.Engine answers with something recognisable, so the test can see
where each one ends up. Registered only for the duration of a test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reranker_contract import PORT, PORT_NAME, QUEUE_WINDOW, AdapterRule
from reranker_operator.engines.base import (
    AlertRule,
    CheckPlace,
    Engine,
    EngineCheck,
    MakeAlert,
    Panel,
)
from reranker_operator.render import promql
from reranker_operator.render.apis import CONFIG_MAP, Child
from reranker_operator.render.containers import (
    ContainerParams,
    ProbeParams,
    ServingContainer,
    base_mounts,
    pre_stop,
    resources,
    user_env,
    user_env_from,
)
from reranker_operator.render.labels import object_meta

NAME = "toy"
IMAGE = "registry.example/toy-reranker:1.0"
METRICS_PORT = 9400
QUEUE_SERIES = "toy_pairs_waiting"
QUEUE_METRIC = "toy_pairs_waiting_per_pod"
CONFIG_FILE = "toy.conf"


@dataclass(frozen=True)
class ToyConfigParams:
    metadata: dict[str, Any]
    data: dict[str, str]


def config_map_name(instance: str) -> str:
    return f"{instance}-toy-config"


def config_text(spec: Any) -> str:
    return f"model={spec.model.name}\n"


def toy_config_params(svc: Any) -> ToyConfigParams | None:
    if svc.spec.engine != NAME:
        return None
    return ToyConfigParams(
        object_meta(svc, "toy-config", name=config_map_name(svc.name)),
        {CONFIG_FILE: config_text(svc.spec)},
    )


class ToyEngine(Engine):
    name = NAME
    summary = "a toy engine (tests only)"
    checks = (
        EngineCheck(
            CheckPlace.RESOURCES,
            "!has(self.resources) || !has(self.resources.gpus) || self.resources.gpus == 0",
            "engine toy runs on CPUs only",
            lambda s: s.resources.gpus == 0,
            field_path=".resources.gpus",
        ),
    )
    # the template of vLLM's score template is a plain ConfigMap of `data`: the toy reuses it
    children = (Child("toy-config", CONFIG_MAP, "vllm-template.yaml.j2", toy_config_params),)
    adapter_rules = (
        AdapterRule(
            QUEUE_METRIC,
            QUEUE_SERIES,
            f"avg(avg_over_time(<<.Series>>{{<<.LabelMatchers>>}}[{QUEUE_WINDOW}])) "
            "by (<<.GroupBy>>)",
            "the toy's waiting pairs",
        ),
    )
    queued_pairs_metric = QUEUE_METRIC

    def serving_container(self, svc: Any) -> ServingContainer:
        spec = svc.spec
        mounts = [*base_mounts(), {"name": "toy-config", "mountPath": "/etc/toy"}]
        volumes = [{"name": "toy-config", "configMap": {"name": config_map_name(svc.name)}}]
        container = ContainerParams(
            image=IMAGE,
            pull_policy="IfNotPresent",
            command=["toy-serve"],
            args=[f"--model={spec.model.name}", "--config=/etc/toy/" + CONFIG_FILE],
            ports=[
                {"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"},
                {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
            ],
            env=user_env(spec, [{"name": "TOY_MODE", "value": "rerank"}]),
            env_from=user_env_from(spec),
            resources=resources(spec, gpus=False),
            probes=ProbeParams("/toy/ready", "/toy/live", PORT_NAME, startup_failures=12),
            mounts=mounts,
            lifecycle=pre_stop(spec),
        )
        return ServingContainer(container, volumes)

    def restart_inputs(self, spec: Any) -> Any:
        return config_text(spec)

    def metrics_port(self, spec: Any) -> int | None:
        return METRICS_PORT

    def prefix_reuse(self, spec: Any) -> bool:
        return False

    def alerts(
        self, name: str, namespace: str, thresholds: Any, make: MakeAlert, *, prefix_reuse: bool
    ) -> list[AlertRule]:
        sel = promql.server(name, namespace)
        return [
            make(
                "ToyQueueLong",
                f"max({QUEUE_SERIES}{sel}) > 100",
                "warning",
                "toy queue long",
                "the toy holds many pairs",
            )
        ]

    def panels(self, name: str, namespace: str) -> list[Panel]:
        sel = promql.server(name, namespace)
        return [
            (
                "Toy pairs waiting",
                "short",
                "Pairs the toy holds.",
                [(f"sum by (pod) ({QUEUE_SERIES}{sel})", "{{pod}}")],
            )
        ]


ENGINE = ToyEngine()
