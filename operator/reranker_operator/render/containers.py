"""The serving container's params and the pieces every engine builds it from (image reference,
resources, env merging, the base mounts, the preStop hook). Light: no spec parsing, so the
engines (reranker_operator.engines) import it while the spec imports them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reranker_contract import CONTAINER_NAME, MODEL_CACHE_PATH
from reranker_operator import __version__
from reranker_operator.api.gpu import CLAIM_NAME, WHOLE_GPU_RESOURCE

if TYPE_CHECKING:
    from reranker_operator.api.spec import RerankerServiceSpec

JsonObject = dict[str, Any]  # a Kubernetes API object or part of one, as JSON


@dataclass(frozen=True)
class ProbeParams:
    """The HTTP probes of a container."""

    ready_path: str | None  # None: no readiness probe, startup on the liveness path
    liveness_path: str
    port_name: str | None  # None: exec probes (`exec_command`)
    startup_failures: int  # x 10 s: the budget for loading the model after the download
    # set: every probe runs this command in the container instead of an HTTP GET (a process
    # listening on localhost only, which the kubelet's GETs to the pod's address cannot reach)
    exec_command: list[str] | None = None

    @property
    def handler(self) -> str:
        """The probes' handler field: `httpGet`, or `exec` with `exec_command`."""
        return "httpGet" if self.exec_command is None else "exec"

    def action(self, path: str) -> JsonObject:
        """The handler's value for a probe of `path` (an exec probe's command names its URL)."""
        if self.exec_command is not None:
            return {"command": self.exec_command}
        return {"path": path, "port": self.port_name}


@dataclass(frozen=True)
class ContainerParams:
    """The serving container, as the engine (spec.engine) runs it."""

    image: str
    pull_policy: str
    command: list[str] | None  # None: the image's entrypoint
    args: list[str] | None
    ports: list[JsonObject]
    env: list[JsonObject]
    env_from: list[JsonObject]
    resources: JsonObject
    probes: ProbeParams
    mounts: list[JsonObject]
    lifecycle: JsonObject | None = None  # the preStop hook (spec.termination.preStopSeconds)
    name: str = CONTAINER_NAME


@dataclass(frozen=True)
class ServingContainer:
    """An engine's serving container and the pod volumes only it mounts; `engine_container`:
    the engine process the serving container fronts in the same pod (vLLM behind our server),
    never reached through the Service."""

    container: ContainerParams
    volumes: list[JsonObject]
    engine_container: ContainerParams | None = None


def dump(model: Any) -> JsonObject:
    """A spec model as the Kubernetes API spells it (camelCase, unset fields left out)."""
    return model.model_dump(by_alias=True, exclude_none=True)


def image_ref(repository: str, tag: str) -> str:
    """`repository:tag`, or `repository@sha256:...` for a digest."""
    return f"{repository}@{tag}" if tag.startswith("sha256:") else f"{repository}:{tag}"


def merge_env(base: list[JsonObject], extra: list[JsonObject]) -> list[JsonObject]:
    """`base` with `extra` appended; an `extra` entry replaces a same-named `base` entry."""
    out = {e["name"]: e for e in base}
    for e in extra:
        out.pop(e["name"], None)
        out[e["name"]] = e
    return list(out.values())


def user_env(spec: RerankerServiceSpec, base: list[JsonObject]) -> list[JsonObject]:
    """The engine's env `base` with the resource's `env` merged over it."""
    return merge_env(base, [dump(e) for e in spec.env])


def user_env_from(spec: RerankerServiceSpec) -> list[JsonObject]:
    return [dump(e) for e in spec.env_from]


def gpu_extended_resource(spec: RerankerServiceSpec) -> tuple[str, int] | None:
    """(extended resource, count) the pod's GPU is asked as: whole GPUs, a MIG slice or a
    shared GPU; None for none or a DRA claim."""
    r = spec.resources
    if r.gpus > 0:
        return WHOLE_GPU_RESOURCE, r.gpus
    if r.mig is not None:
        return r.mig.resource_name(), 1
    if r.shared_gpu is not None:
        return r.shared_gpu.resource_name, 1
    return None


def resources(spec: RerankerServiceSpec, *, gpus: bool) -> JsonObject:
    """The container's requests and limits; `gpus`: with the pod's GPU (its extended resource
    in both, or its DRA claim)."""
    r = spec.resources
    requests = r.requests.model_dump(exclude_none=True)
    limits = r.limits.model_dump(exclude_none=True)
    extended = gpu_extended_resource(spec) if gpus else None
    if extended is not None:
        requests[extended[0]] = limits[extended[0]] = str(extended[1])
    out: JsonObject = {}
    if requests:
        out["requests"] = {k: str(v) for k, v in requests.items()}
    if limits:
        out["limits"] = {k: str(v) for k, v in limits.items()}
    if gpus and r.dra is not None:
        out["claims"] = [{"name": CLAIM_NAME}]
    return out


def base_mounts() -> list[JsonObject]:
    """The mounts every serving container has: the model cache and a writable /tmp."""
    return [
        {"name": "model-cache", "mountPath": MODEL_CACHE_PATH},
        {"name": "tmp", "mountPath": "/tmp"},
    ]


def pre_stop(spec: RerankerServiceSpec) -> JsonObject | None:
    """The serving container's lifecycle: a preStop sleep (Kubernetes' own sleep action, on by
    default since 1.30: no `sleep` binary needed in either image), None without one."""
    seconds = spec.termination.pre_stop_seconds
    return {"preStop": {"sleep": {"seconds": seconds}}} if seconds > 0 else None


def bundled_image(spec: RerankerServiceSpec) -> str:
    """The bundled server's image (spec.image; its tag defaults to the operator's version): the
    model-download init container's, whichever engine serves, and engine transformers'."""
    return image_ref(spec.image.repository, spec.image.tag or __version__)
