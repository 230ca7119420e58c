"""The values of each child's template, as typed data built from the parsed spec.

One small dataclass per child kind (DeploymentParams, ServiceParams, ...) and one builder each,
which returns None when the spec does not ask for that child. Values the Kubernetes API takes
verbatim (metadata, env entries, tolerations, affinity, HPA behavior) are JSON objects; every
other field is a typed scalar or a list/map of them. The templates place each value through the
`toyaml` filter, so no value can change the rendered structure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from reranker_contract import (
    API_KEYS_DIR,
    CONTAINER_NAME,
    JWKS_DIR,
    LIVENESS_PATH,
    METRICS_PATH,
    METRICS_PORT_NAME,
    MODEL_CACHE_PATH,
    PORT,
    PORT_NAME,
    READY_PATH,
    RUN_AS_UID,
    VLLM_HEALTH_PATH,
    VLLM_PORT,
    VLLM_TEMPLATE_DIR,
    VLLM_TEMPLATE_FILE,
    Env,
    served_model_name,
)

from reranker_operator import __version__

from reranker_operator.engines.vllm import serve as vllm_engine
from reranker_operator.api.constants import (
    CONFIG_HASH_ANNOTATION,
    GRAFANA_FOLDER_ANNOTATION,
    LABEL_COMPONENT,
    RETAINED_ANNOTATION,
)
from reranker_operator.render.labels import (
    child_labels,
    model_cache_claim_name,
    owner_reference,
    proxy_service_name,
    selector_labels,
)
from reranker_operator.render.monitoring import alert_rules, dashboard_config_map_name, dashboard_json
from reranker_operator.render.network import PolicyRules, policy_rules
from reranker_operator.render.service import ParsedService
from reranker_operator.render.scaling import custom_targets, keda_query
from reranker_operator.api.spec import RerankerServiceSpec
from reranker_operator.api.termination import grace_period_seconds

JsonObject = dict[str, Any]  # a Kubernetes API object or part of one, as JSON


@dataclass(frozen=True)
class PvcParams:
    """The model-cache claim."""

    metadata: JsonObject
    access_modes: list[str]
    storage_class_name: str | None
    size: str


@dataclass(frozen=True)
class DownloadParams:
    """The init container that fetches the model into the cache volume (the bundled server's
    image, whichever engine serves)."""

    image: str
    pull_policy: str
    args: list[str]
    env: list[JsonObject]
    resources: JsonObject
    cache_path: str = MODEL_CACHE_PATH


@dataclass(frozen=True)
class ProbeParams:
    """The HTTP probes of the serving container."""

    ready_path: str
    liveness_path: str
    port_name: str
    startup_failures: int  # x 10 s: the budget for loading the model after the download


@dataclass(frozen=True)
class ContainerParams:
    """The serving container: the bundled server or vLLM."""

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
class DeploymentParams:
    """The inference server's Deployment."""

    metadata: JsonObject
    replicas: int | None  # None: the HPA owns the replica count
    selector: dict[str, str]
    pod_labels: dict[str, str]
    pod_annotations: dict[str, str]
    pull_secrets: list[JsonObject]
    node_selector: dict[str, str]
    tolerations: list[JsonObject]
    affinity: JsonObject | None
    priority_class_name: str | None
    runtime_class_name: str | None
    download: DownloadParams | None  # None: the model is a local path, nothing to fetch
    container: ContainerParams
    volumes: list[JsonObject]
    termination_grace_period_seconds: int  # spec_termination.grace_period_seconds
    run_as_uid: int = RUN_AS_UID  # runAsUser, runAsGroup and fsGroup: the images' USER
    # Recreate, not a rolling update, when the pods mount one claim only one node can attach:
    # a surge pod scheduled on another node would wait for it forever (Multi-Attach)
    recreate: bool = False


@dataclass(frozen=True)
class ServiceParams:
    """The Service in front of the server pods: http, and metrics when it has its own port."""

    metadata: JsonObject
    type: str
    selector: dict[str, str]
    ports: list[JsonObject]


@dataclass(frozen=True)
class HpaParams:
    """The autoscaler of the Deployment; each metric is set or None."""

    metadata: JsonObject
    target: str  # the Deployment's name
    min_replicas: int
    max_replicas: int
    cpu_utilization: int | None
    memory_utilization: int | None
    pods_metrics: list[tuple[str, str]]  # (custom metric name, per-pod average target)
    behavior: JsonObject | None


@dataclass(frozen=True)
class ScaledObjectParams:
    """The KEDA ScaledObject replacing the HPA."""

    metadata: JsonObject
    target: str
    min_replicas: int
    max_replicas: int
    polling_interval: int
    cooldown_period: int
    behavior: JsonObject | None
    triggers: list[JsonObject]


@dataclass(frozen=True)
class RouteParams:
    """The KEDA HTTP add-on's route to the Service (InterceptorRoute or HTTPScaledObject)."""

    metadata: JsonObject
    target: str
    service: str
    hosts: list[str]
    target_concurrency: int
    readiness_timeout: str
    max_replicas: int
    cooldown_period: int
    port_name: str = PORT_NAME


@dataclass(frozen=True)
class ProxyServiceParams:
    """The name clients connect to when the Deployment may be at zero."""

    metadata: JsonObject
    external_name: str
    port: int
    port_name: str = PORT_NAME


@dataclass(frozen=True)
class NetworkPolicyParams:
    """The server pods' NetworkPolicy."""

    metadata: JsonObject
    selector: dict[str, str]
    rules: PolicyRules


@dataclass(frozen=True)
class TemplateConfigMapParams:
    """The ConfigMap of vLLM's score template."""

    metadata: JsonObject
    data: dict[str, str]


@dataclass(frozen=True)
class PdbParams:
    """The disruption budget: exactly one of min_available and max_unavailable is set."""

    metadata: JsonObject
    selector: dict[str, str]
    min_available: int | str | None
    max_unavailable: int | str | None


@dataclass(frozen=True)
class IngressParams:
    """The Ingress to the Service's http port."""

    metadata: JsonObject
    class_name: str | None
    host: str
    path: str
    path_type: str
    tls_secret_name: str | None
    service_name: str
    port_name: str = PORT_NAME


@dataclass(frozen=True)
class ServiceMonitorParams:
    """The Prometheus Operator scrape configuration of the Service."""

    metadata: JsonObject
    selector: dict[str, str]
    namespace: str
    interval: str
    scrape_timeout: str
    port_name: str
    path: str = METRICS_PATH


@dataclass(frozen=True)
class PrometheusRuleParams:
    """One group of alerts scoped to this Service's series."""

    metadata: JsonObject
    group: str
    rules: list[JsonObject]


@dataclass(frozen=True)
class DashboardParams:
    """The ConfigMap holding the Grafana dashboard for the dashboard sidecar."""

    metadata: JsonObject
    file_name: str
    json: str


def object_meta(svc: ParsedService, component: str, *, name: str | None = None,
                extra_labels: Mapping[str, str] | None = None,
                annotations: Mapping[str, str] | None = None,
                owned: bool = True) -> JsonObject:
    """A child's metadata: our labels win over `extra_labels`; the owner reference is set when
    the RerankerService has a uid and `owned`."""
    meta: JsonObject = {
        "name": name or svc.name,
        "namespace": svc.namespace,
        "labels": {**(extra_labels or {}), **child_labels(svc.name, component)},
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    if owned and svc.uid:
        meta["ownerReferences"] = [owner_reference(svc.name, svc.uid)]
    return meta


def _dump(model: Any) -> JsonObject:
    return model.model_dump(by_alias=True, exclude_none=True)


def _image(spec: RerankerServiceSpec) -> str:
    repo, tag = spec.image.repository, spec.image.tag or __version__
    return f"{repo}@{tag}" if tag.startswith("sha256:") else f"{repo}:{tag}"


def _vllm_image(spec: RerankerServiceSpec) -> str:
    repo, tag = spec.vllm.image.repository, spec.vllm.image.tag
    return f"{repo}@{tag}" if tag.startswith("sha256:") else f"{repo}:{tag}"


def _server_env(spec: RerankerServiceSpec) -> list[JsonObject]:
    """The bundled server's settings as container env (the user's `env` is merged later)."""
    m, s = spec.model, spec.server
    auth = s.auth
    values: list[tuple[Env, str]] = [
        (Env.MODEL_NAME, m.name),
        (Env.MODEL_REVISION, m.revision),
        (Env.SERVED_MODEL_NAME, served_model_name(m.name, m.served_name)),
        (Env.MODEL_FAMILY, m.family),
        (Env.DTYPE, m.dtype),
        (Env.QUANTIZATION, m.quantization),
        (Env.TRUST_REMOTE_CODE, "true" if m.trust_remote_code else "false"),
        (Env.DEVICE, "cuda" if spec.resources.gpus > 0 else "cpu"),
        (Env.MAX_BATCH_TOKENS, str(s.max_batch_tokens)),
        (Env.BATCH_SIZE, str(s.max_batch_size)),
        (Env.MAX_CLIENT_BATCH_SIZE, str(s.max_client_batch_size)),
        (Env.MAX_CONCURRENT_REQUESTS, str(s.max_concurrent_requests)),
        (Env.LOG_LEVEL, s.log_level),
        (Env.PORT, str(PORT)),
        (Env.HF_HOME, MODEL_CACHE_PATH),
        (Env.CACHE_DIR, MODEL_CACHE_PATH),  # where the init container downloaded
        (Env.HF_HUB_OFFLINE, "1"),
        (Env.PLAYGROUND, "true" if s.playground else "false"),
        (Env.DRAIN_SECONDS, str(spec.termination.drain_seconds)),
        (Env.REQUEST_TIMEOUT_SECONDS, str(s.request_timeout_seconds)),
    ]
    if m.max_length is not None:
        values.append((Env.MAX_SEQUENCE_LENGTH, str(m.max_length)))
    if m.attention_implementation is not None:
        values.append((Env.ATTN_IMPLEMENTATION, m.attention_implementation))
    if s.score_cache.enabled:
        values.append((Env.SCORE_CACHE_SIZE, str(s.score_cache.entries())))
    if m.instruction is not None:
        values.append((Env.DEFAULT_INSTRUCTION, m.instruction))
    if s.metrics_port is not None:
        values.append((Env.METRICS_PORT, str(s.metrics_port)))
    if auth.api_keys_secret is not None:
        values.append((Env.API_KEYS_FILE, API_KEYS_DIR))
    if auth.jwt is not None:
        jwt = auth.jwt
        values += [(Env.JWT_JWKS_FILE, f"{JWKS_DIR}/{jwt.jwks.key}"),
                   (Env.JWT_ALGORITHMS, ",".join(jwt.algorithms)),
                   (Env.JWT_LEEWAY_SECONDS, str(jwt.leeway_seconds))]  # fmt: skip
        values += [(name, value) for name, value in ((Env.JWT_ISSUER, jwt.issuer),
                   (Env.JWT_AUDIENCE, jwt.audience), (Env.JWT_REQUIRED_SCOPE, jwt.required_scope))
                   if value is not None]  # fmt: skip
    limits = auth.rate_limit
    if limits.requests_per_minute:
        values.append((Env.RATE_LIMIT_REQUESTS_PER_MINUTE, str(limits.requests_per_minute)))
    if limits.pairs_per_minute:
        values.append((Env.RATE_LIMIT_PAIRS_PER_MINUTE, str(limits.pairs_per_minute)))
    if limits.trusted_proxies:
        values.append((Env.TRUSTED_PROXIES, ",".join(limits.trusted_proxies)))
    env: list[JsonObject] = [{"name": str(name), "value": value} for name, value in values]
    if s.api_key_secret is not None:
        ref = {"name": s.api_key_secret.name, "key": s.api_key_secret.key}
        env.append({"name": str(Env.API_KEY), "valueFrom": {"secretKeyRef": ref}})
    return env


def _merge_env(base: list[JsonObject], extra: list[JsonObject]) -> list[JsonObject]:
    """`base` with `extra` appended; an `extra` entry replaces a same-named `base` entry."""
    out = {e["name"]: e for e in base}
    for e in extra:
        out.pop(e["name"], None)
        out[e["name"]] = e
    return list(out.values())


def _resources(spec: RerankerServiceSpec, *, gpus: bool) -> JsonObject:
    r = spec.resources
    requests = r.requests.model_dump(exclude_none=True)
    limits = r.limits.model_dump(exclude_none=True)
    if gpus and r.gpus > 0:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(r.gpus)
    out: JsonObject = {}
    if requests:
        out["requests"] = {k: str(v) for k, v in requests.items()}
    if limits:
        out["limits"] = {k: str(v) for k, v in limits.items()}
    return out


def _config_hash(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _claim_name(svc: ParsedService) -> str | None:
    """The one claim every replica mounts (mode Shared), or None."""
    cache = svc.spec.model_cache
    if not cache.is_shared():
        return None
    return cache.existing_claim or model_cache_claim_name(svc.name)


def _cache_volume(svc: ParsedService) -> JsonObject:
    """The model-cache volume: the shared claim, a claim per pod (a generic ephemeral volume:
    Kubernetes creates <pod>-model-cache, owned by the pod), or an emptyDir."""
    cache = svc.spec.model_cache
    claim = _claim_name(svc)
    if claim is not None:
        return {"name": "model-cache", "persistentVolumeClaim": {"claimName": claim}}
    if cache.is_per_pod() and cache.size is not None:
        spec: JsonObject = {"accessModes": list(cache.access_modes),
                            "resources": {"requests": {"storage": cache.size}}}
        if cache.storage_class_name is not None:
            spec["storageClassName"] = cache.storage_class_name
        # not the children's managed-by label: these claims belong to their pods, not to us
        labels = {**selector_labels(svc.name), LABEL_COMPONENT: "model-cache"}
        template = {"metadata": {"labels": labels}, "spec": spec}
        return {"name": "model-cache", "ephemeral": {"volumeClaimTemplate": template}}
    return {"name": "model-cache", "emptyDir": {}}


def downloads(spec: RerankerServiceSpec) -> bool:
    """Whether the model comes from the Hub (an init container fetches it) or a local path."""
    return not spec.model.name.startswith("/")


def vllm_template_config_map_name(instance: str) -> str:
    return f"{instance}-vllm-template"


def pvc_params(svc: ParsedService) -> PvcParams | None:
    cache = svc.spec.model_cache
    if not cache.is_shared() or cache.existing_claim is not None or cache.size is None:
        return None
    annotations = {RETAINED_ANNOTATION: "true"} if cache.retain_on_delete else None
    return PvcParams(
        metadata=object_meta(svc, "model-cache", name=model_cache_claim_name(svc.name),
                             annotations=annotations, owned=not cache.retain_on_delete),
        access_modes=list(cache.access_modes), storage_class_name=cache.storage_class_name,
        size=cache.size)


def _download(spec: RerankerServiceSpec) -> DownloadParams | None:
    if not downloads(spec):
        return None
    # `--opt=value` keeps a value that starts with "-" from being read as another option.
    args = [f"--model={spec.model.name}", f"--revision={spec.model.revision}",
            f"--cache-dir={MODEL_CACHE_PATH}"]
    env: list[JsonObject] = [{"name": str(Env.HF_HOME), "value": MODEL_CACHE_PATH}]
    if spec.hub_token_secret is not None:
        ref = {"name": spec.hub_token_secret.name, "key": spec.hub_token_secret.key}
        env.append({"name": str(Env.HF_TOKEN), "valueFrom": {"secretKeyRef": ref}})
    return DownloadParams(image=_image(spec), pull_policy=spec.image.pull_policy, args=args,
                          env=env, resources=_resources(spec, gpus=False))  # fmt: skip


def _base_mounts() -> list[JsonObject]:
    return [{"name": "model-cache", "mountPath": MODEL_CACHE_PATH},
            {"name": "tmp", "mountPath": "/tmp"}]  # fmt: skip


def pre_stop(spec: RerankerServiceSpec) -> JsonObject | None:
    """The serving container's lifecycle: a preStop sleep (Kubernetes' own sleep action, on by
    default since 1.30: no `sleep` binary needed in either image), None without one."""
    seconds = spec.termination.pre_stop_seconds
    return {"preStop": {"sleep": {"seconds": seconds}}} if seconds > 0 else None


def _server_container(spec: RerankerServiceSpec) -> tuple[ContainerParams, list[JsonObject]]:
    """The bundled server's container and the volumes only it needs."""
    ports: list[JsonObject] = [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}]
    if spec.server.metrics_port is not None:
        ports.append({"name": METRICS_PORT_NAME, "containerPort": spec.server.metrics_port,
                      "protocol": "TCP"})  # fmt: skip
    mounts, volumes = _base_mounts(), []
    auth = spec.server.auth
    if auth.api_keys_secret is not None:  # a directory, so updates arrive without a restart
        mounts.append({"name": "api-keys", "mountPath": API_KEYS_DIR, "readOnly": True})
        volumes.append({"name": "api-keys", "secret": {"secretName": auth.api_keys_secret.name}})
    if auth.jwt is not None:
        jwks = auth.jwt.jwks
        mounts.append({"name": "jwks", "mountPath": JWKS_DIR, "readOnly": True})
        source = ({"secret": {"secretName": jwks.secret_name}} if jwks.secret_name
                  else {"configMap": {"name": jwks.config_map_name}})  # fmt: skip
        volumes.append({"name": "jwks", **source})
    container = ContainerParams(
        image=_image(spec), pull_policy=spec.image.pull_policy, command=None, args=None,
        ports=ports, env=_merge_env(_server_env(spec), [_dump(e) for e in spec.env]),
        env_from=[_dump(e) for e in spec.env_from], resources=_resources(spec, gpus=True),
        probes=ProbeParams(READY_PATH, LIVENESS_PATH, PORT_NAME, startup_failures=60),
        mounts=mounts, lifecycle=pre_stop(spec))
    return container, volumes


def _vllm_container(svc: ParsedService) -> tuple[ContainerParams, list[JsonObject]]:
    """vLLM's container and the volumes only it needs: shared memory for tensor parallelism
    and, for Qwen3 models, the score template."""
    spec = svc.spec
    mounts = [*_base_mounts(), {"name": "dshm", "mountPath": "/dev/shm"}]
    volumes: list[JsonObject] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    if vllm_engine.score_template(spec) is not None:
        mounts.append({"name": "vllm-template", "mountPath": VLLM_TEMPLATE_DIR, "readOnly": True})
        volumes.append({"name": "vllm-template",
                        "configMap": {"name": vllm_template_config_map_name(svc.name)}})
    container = ContainerParams(
        image=_vllm_image(spec), pull_policy=spec.vllm.image.pull_policy,
        command=["vllm", "serve"], args=vllm_engine.serve_args(spec),
        ports=[{"name": PORT_NAME, "containerPort": VLLM_PORT, "protocol": "TCP"}],
        env=_merge_env(vllm_engine.serve_env(spec), [_dump(e) for e in spec.env]),
        env_from=[_dump(e) for e in spec.env_from], resources=_resources(spec, gpus=True),
        # loading (and compiling CUDA graphs for) a large model takes minutes: 15 min budget
        probes=ProbeParams(VLLM_HEALTH_PATH, VLLM_HEALTH_PATH, PORT_NAME, startup_failures=90),
        mounts=mounts, lifecycle=pre_stop(spec))
    return container, volumes


def deployment_params(svc: ParsedService) -> DeploymentParams:
    spec = svc.spec
    container, extra_volumes = (_vllm_container(svc) if spec.engine == "vllm"
                                else _server_container(spec))  # fmt: skip
    volumes = [_cache_volume(svc), {"name": "tmp", "emptyDir": {}}, *extra_volumes]
    download = _download(spec)
    template = vllm_engine.score_template(spec) if spec.engine == "vllm" else None
    config_hash = _config_hash(asdict(container), download and asdict(download), volumes, template)
    return DeploymentParams(
        metadata=object_meta(svc, "server"),
        replicas=None if spec.autoscaling.enabled else spec.replicas,
        selector=selector_labels(svc.name),
        pod_labels={**spec.pod_labels, **child_labels(svc.name, "server")},
        pod_annotations={**spec.pod_annotations, CONFIG_HASH_ANNOTATION: config_hash},
        pull_secrets=[{"name": s} for s in spec.image.pull_secrets],
        node_selector=dict(spec.node_selector),
        tolerations=[_dump(t) for t in spec.tolerations],
        affinity=spec.affinity,
        priority_class_name=spec.priority_class_name,
        runtime_class_name=spec.runtime_class_name,
        download=download,
        container=container,
        volumes=volumes,
        termination_grace_period_seconds=grace_period_seconds(
            spec.termination, spec.server.request_timeout_seconds),
        recreate=spec.model_cache.one_node_only(),
    )


def vllm_template_params(svc: ParsedService) -> TemplateConfigMapParams | None:
    spec = svc.spec
    text = vllm_engine.score_template(spec) if spec.engine == "vllm" else None
    if text is None:
        return None
    # one more newline than the prompt needs: jinja drops a template's final newline
    return TemplateConfigMapParams(
        metadata=object_meta(svc, "vllm-template", name=vllm_template_config_map_name(svc.name)),
        data={VLLM_TEMPLATE_FILE: text + "\n"})


def _metrics_port(spec: RerankerServiceSpec) -> int | None:
    return spec.server.metrics_port if spec.engine == "transformers" else None


def service_params(svc: ParsedService) -> ServiceParams:
    s = svc.spec.service
    ports: list[JsonObject] = [{"name": PORT_NAME, "port": s.port, "targetPort": PORT_NAME,
                                "protocol": "TCP"}]  # fmt: skip
    metrics_port = _metrics_port(svc.spec)
    if metrics_port is not None:
        ports.append({"name": METRICS_PORT_NAME, "port": metrics_port,
                      "targetPort": METRICS_PORT_NAME, "protocol": "TCP"})  # fmt: skip
    return ServiceParams(metadata=object_meta(svc, "server", annotations=s.annotations),
                         type=s.type, selector=selector_labels(svc.name), ports=ports)


def _behavior(spec: RerankerServiceSpec) -> JsonObject | None:
    b = spec.autoscaling.behavior
    return _dump(b) if b is not None else None


def hpa_params(svc: ParsedService) -> HpaParams | None:
    spec = svc.spec
    a = spec.autoscaling
    if not a.uses_hpa():  # never both an HPA and a ScaledObject
        return None
    return HpaParams(
        metadata=object_meta(svc, "autoscaler"), target=svc.name,
        min_replicas=a.min_replicas, max_replicas=a.max_replicas,
        cpu_utilization=a.target_cpu_utilization, memory_utilization=a.target_memory_utilization,
        pods_metrics=[(str(t.metric), t.value) for t in custom_targets(spec)],
        behavior=_behavior(spec))


def _route_name(svc: ParsedService) -> str:
    return svc.name


def scaled_object_params(svc: ParsedService) -> ScaledObjectParams | None:
    spec = svc.spec
    a, k = spec.autoscaling, spec.autoscaling.keda
    if not a.uses_keda() or (k.scale_to_zero and k.interceptor.api == "HTTPScaledObject"):
        return None  # the HTTP add-on creates the ScaledObject of an HTTPScaledObject itself
    triggers: list[JsonObject] = []
    for target in custom_targets(spec):
        trigger: JsonObject = {
            "type": "prometheus",
            "name": str(target.metric).replace("_", "-"),
            "metricType": "AverageValue" if target.average else "Value",
            "metadata": {
                "serverAddress": k.prometheus_address,
                "query": keda_query(target, svc.name, svc.namespace),
                "threshold": target.value,
                "activationThreshold": k.activation_threshold,
                "ignoreNullValues": "true",
            },
        }
        if k.authentication_ref is not None:
            trigger["authenticationRef"] = {"name": k.authentication_ref}
        triggers.append(trigger)
    for resource, value in (("cpu", a.target_cpu_utilization),
                            ("memory", a.target_memory_utilization)):  # fmt: skip
        if value is not None:
            triggers.append({"type": resource, "metricType": "Utilization",
                             "metadata": {"value": str(value)}})  # fmt: skip
    if k.scale_to_zero:  # the interceptor's in-flight requests wake the Deployment from zero
        triggers.append({"type": "external-push", "name": "http-interceptor", "metadata": {
            "scalerAddress": k.interceptor.scaler_address, "interceptorRoute": _route_name(svc)}})
    return ScaledObjectParams(
        metadata=object_meta(svc, "autoscaler"), target=svc.name,
        min_replicas=a.lower_bound(), max_replicas=a.max_replicas,
        polling_interval=k.polling_interval, cooldown_period=k.cooldown_period,
        behavior=_behavior(spec), triggers=triggers)


def _route(svc: ParsedService, api: str) -> RouteParams | None:
    spec = svc.spec
    k = spec.autoscaling.keda
    if not spec.autoscaling.scales_to_zero() or k.interceptor.api != api:
        return None
    proxy = proxy_service_name(svc.name)
    names = [proxy, f"{proxy}.{svc.namespace}", f"{proxy}.{svc.namespace}.svc",
             f"{proxy}.{svc.namespace}.svc.cluster.local"]
    hosts = [*names, *(f"{n}:{k.interceptor.proxy_port}" for n in names), *k.interceptor.hosts]
    return RouteParams(
        metadata=object_meta(svc, "wake-route", name=_route_name(svc)), target=svc.name,
        service=svc.name, hosts=hosts, target_concurrency=k.interceptor.target_concurrency,
        readiness_timeout=k.interceptor.readiness_timeout,
        max_replicas=spec.autoscaling.max_replicas, cooldown_period=k.cooldown_period)


def interceptor_route_params(svc: ParsedService) -> RouteParams | None:
    return _route(svc, "InterceptorRoute")


def http_scaled_object_params(svc: ParsedService) -> RouteParams | None:
    return _route(svc, "HTTPScaledObject")


def proxy_service_params(svc: ParsedService) -> ProxyServiceParams | None:
    if not svc.scales_to_zero:
        return None
    i = svc.spec.autoscaling.keda.interceptor
    return ProxyServiceParams(
        metadata=object_meta(svc, "wake-proxy", name=proxy_service_name(svc.name)),
        external_name=f"{i.proxy_service}.{i.namespace}.svc.cluster.local", port=i.proxy_port)


def network_policy_params(svc: ParsedService) -> NetworkPolicyParams | None:
    spec = svc.spec
    if not spec.network_policy.enabled:
        return None
    return NetworkPolicyParams(
        metadata=object_meta(svc, "network-policy"), selector=selector_labels(svc.name),
        rules=policy_rules(spec, svc.namespace, downloads=downloads(spec)))


def pdb_params(svc: ParsedService) -> PdbParams | None:
    p = svc.spec.pod_disruption_budget
    if not p.enabled:
        return None
    max_unavailable = None if p.min_available is not None else (
        p.max_unavailable if p.max_unavailable is not None else 1)
    return PdbParams(metadata=object_meta(svc, "disruption-budget"),
                     selector=selector_labels(svc.name), min_available=p.min_available,
                     max_unavailable=max_unavailable)


def ingress_params(svc: ParsedService) -> IngressParams | None:
    i = svc.spec.ingress
    if not i.enabled or i.host is None:
        return None
    return IngressParams(metadata=object_meta(svc, "ingress", annotations=i.annotations),
                         class_name=i.class_name, host=i.host, path=i.path,
                         path_type=i.path_type, tls_secret_name=i.tls_secret_name,
                         service_name=svc.name)


def service_monitor_params(svc: ParsedService) -> ServiceMonitorParams | None:
    sm = svc.spec.metrics.service_monitor
    if not sm.enabled:
        return None
    port = METRICS_PORT_NAME if _metrics_port(svc.spec) is not None else PORT_NAME
    return ServiceMonitorParams(
        metadata=object_meta(svc, "metrics", extra_labels=sm.labels),
        selector={**selector_labels(svc.name), LABEL_COMPONENT: "server"},
        namespace=svc.namespace, interval=sm.interval, scrape_timeout=sm.scrape_timeout,
        port_name=port)


def prometheus_rule_params(svc: ParsedService) -> PrometheusRuleParams | None:
    spec = svc.spec
    rule = spec.metrics.prometheus_rule
    if not rule.enabled:
        return None
    rules = alert_rules(svc.name, svc.namespace, rule, causal=spec.model.is_causal(),
                        engine=spec.engine, prefix_caching=vllm_engine.prefix_caching(spec))
    return PrometheusRuleParams(metadata=object_meta(svc, "alerts", extra_labels=rule.labels),
                                group=f"reranker.{svc.namespace}.{svc.name}", rules=rules)


def dashboard_params(svc: ParsedService) -> DashboardParams | None:
    board = svc.spec.metrics.dashboard
    if not board.enabled:
        return None
    annotations = {GRAFANA_FOLDER_ANNOTATION: board.folder} if board.folder else None
    return DashboardParams(
        metadata=object_meta(svc, "dashboard", name=dashboard_config_map_name(svc.name),
                             extra_labels=board.labels, annotations=annotations),
        file_name=f"reranker-{svc.namespace}-{svc.name}.json",
        json=dashboard_json(svc.name, svc.namespace, svc.spec.engine))


# The params builder of each child (reranker_operator.render.kinds.CHILDREN names them).
BUILDERS: dict[str, Callable[[ParsedService], Any]] = {
    "model-cache": pvc_params,
    "vllm-template": vllm_template_params,
    "server": deployment_params,
    "service": service_params,
    "autoscaler": hpa_params,
    "scaled-object": scaled_object_params,
    "interceptor-route": interceptor_route_params,
    "http-scaled-object": http_scaled_object_params,
    "wake-proxy": proxy_service_params,
    "network-policy": network_policy_params,
    "disruption-budget": pdb_params,
    "ingress": ingress_params,
    "service-monitor": service_monitor_params,
    "alerts": prometheus_rule_params,
    "dashboard": dashboard_params,
}
