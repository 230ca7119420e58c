"""The `vllm serve` container of `engine: vllm` and the ConfigMap of its score template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from reranker_contract import CONTAINER_NAME, PORT_NAME
from reranker_operator.engines.vllm import serve
from reranker_operator.engines.vllm.facts import (
    ENGINE_NAME,
    VLLM_CONTAINER_NAME,
    VLLM_HEALTH_PATH,
    VLLM_PROBE_COMMAND,
    VLLM_TEMPLATE_DIR,
    VLLM_TEMPLATE_FILE,
)
from reranker_operator.render.containers import (
    ContainerParams,
    JsonObject,
    ProbeParams,
    ServingContainer,
    base_mounts,
    image_ref,
    pre_stop,
    resources,
    user_env,
    user_env_from,
)
from reranker_operator.render.labels import object_meta

if TYPE_CHECKING:
    from reranker_operator.api.spec import RerankerServiceSpec
    from reranker_operator.render.service import ParsedService


# x 10 s: loading (and compiling CUDA graphs for) a large model takes minutes: 15 min budget
VLLM_STARTUP_FAILURES = 90


@dataclass(frozen=True)
class TemplateConfigMapParams:
    """The ConfigMap of vLLM's score template."""

    metadata: JsonObject
    data: dict[str, str]


def vllm_template_config_map_name(instance: str) -> str:
    return f"{instance}-vllm-template"


def vllm_container(svc: ParsedService) -> ServingContainer:
    """vLLM's container and the volumes only it needs: shared memory for tensor parallelism
    and, for Qwen3 models, the score template. Bare (vllm.front false) it is the serving
    container, probed over HTTP on the Service's port. Behind the front it is its own
    container listening on localhost only, with no port to declare, and its probes run
    `VLLM_PROBE_COMMAND` against its /health inside the container (the front's /ready already
    needs vLLM's /health, but the liveness probe restarts a hung vLLM, and policy scanners and
    admission policies, checkov CKV_K8S_8/9 and Kyverno's require-probes, want probes on
    every container)."""
    spec = svc.spec
    fronted = spec.vllm.front
    port = {"name": PORT_NAME, "containerPort": serve.listen_port(spec), "protocol": "TCP"}
    probes = (
        ProbeParams(
            VLLM_HEALTH_PATH,
            VLLM_HEALTH_PATH,
            None,
            startup_failures=VLLM_STARTUP_FAILURES,
            exec_command=[*VLLM_PROBE_COMMAND, serve.health_url(spec)],
        )
        if fronted
        else ProbeParams(
            VLLM_HEALTH_PATH, VLLM_HEALTH_PATH, PORT_NAME, startup_failures=VLLM_STARTUP_FAILURES
        )
    )
    mounts = [*base_mounts(), {"name": "dshm", "mountPath": "/dev/shm"}]
    volumes: list[JsonObject] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    if serve.score_template(spec) is not None:
        mounts.append({"name": "vllm-template", "mountPath": VLLM_TEMPLATE_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "vllm-template",
                "configMap": {"name": vllm_template_config_map_name(svc.name)},
            }
        )
    container = ContainerParams(
        image=image_ref(spec.vllm.image.repository, spec.vllm.image.tag),
        pull_policy=spec.vllm.image.pull_policy,
        command=["vllm", "serve"],
        args=serve.serve_args(spec),
        ports=[] if fronted else [port],
        env=user_env(spec, serve.serve_env(spec)),
        env_from=user_env_from(spec),
        resources=resources(spec, gpus=True),
        probes=probes,
        mounts=mounts,
        lifecycle=_front_outlived(spec) if fronted else pre_stop(spec),
        name=VLLM_CONTAINER_NAME if fronted else CONTAINER_NAME,
    )
    return ServingContainer(container, volumes)


def _front_outlived(spec: RerankerServiceSpec) -> JsonObject:
    """Behind the front, vLLM's preStop sleeps until the front is done (its preStop, its drain,
    then its longest request), so nothing the front still sends finds vLLM stopping; the grace
    period (api.termination) covers that and a margin."""
    t = spec.termination
    seconds = t.pre_stop_seconds + t.drain_seconds + spec.server.request_timeout_seconds
    return {"preStop": {"sleep": {"seconds": seconds}}}


def vllm_template_params(svc: ParsedService) -> TemplateConfigMapParams | None:
    """The score template's ConfigMap: for a Qwen3 model served by vLLM, else None."""
    spec = svc.spec
    text = serve.score_template(spec) if spec.engine == ENGINE_NAME else None
    if text is None:
        return None
    # one more newline than the prompt needs: jinja drops a template's final newline
    return TemplateConfigMapParams(
        metadata=object_meta(svc, "vllm-template", name=vllm_template_config_map_name(svc.name)),
        data={VLLM_TEMPLATE_FILE: text + "\n"},
    )
