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
from dataclasses import dataclass
from typing import Any

from reranker_contract import (
    LIVENESS_PATH,
    METRICS_PATH,
    MODEL_CACHE_PATH,
    PORT,
    PORT_NAME,
    READY_PATH,
    Env,
    HpaMetric,
    served_model_name,
)

from . import __version__
from .constants import CONFIG_HASH_ANNOTATION, GRAFANA_FOLDER_ANNOTATION, RETAINED_ANNOTATION
from .labels import child_labels, model_cache_claim_name, owner_reference, selector_labels
from .monitoring import alert_rules, dashboard_config_map_name, dashboard_json
from .parsed import ParsedService
from .spec import RerankerServiceSpec

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
    """The init container that fetches the model into the cache volume."""

    args: list[str]
    env: list[JsonObject]
    resources: JsonObject


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
    image: str
    pull_policy: str
    download: DownloadParams | None  # None: the model is a local path, nothing to fetch
    env: list[JsonObject]
    env_from: list[JsonObject]
    resources: JsonObject
    claim_name: str | None  # None: the cache is an emptyDir
    port_name: str = PORT_NAME
    container_port: int = PORT
    ready_path: str = READY_PATH
    liveness_path: str = LIVENESS_PATH
    cache_path: str = MODEL_CACHE_PATH


@dataclass(frozen=True)
class ServiceParams:
    """The Service in front of the server pods."""

    metadata: JsonObject
    type: str
    selector: dict[str, str]
    port: int
    port_name: str = PORT_NAME


@dataclass(frozen=True)
class HpaParams:
    """The autoscaler of the Deployment; each metric is set or None."""

    metadata: JsonObject
    target: str  # the Deployment's name
    min_replicas: int
    max_replicas: int
    cpu_utilization: int | None
    memory_utilization: int | None
    requests_per_second: str | None
    p95_latency_seconds: str | None
    behavior: JsonObject | None
    rps_metric: str = str(HpaMetric.REQUESTS_PER_SECOND)
    latency_metric: str = str(HpaMetric.P95_LATENCY_SECONDS)


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
    port_name: str = PORT_NAME
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


def _server_env(spec: RerankerServiceSpec) -> list[JsonObject]:
    """The server's settings as container env, user `env` entries overriding same-named ones."""
    m, s = spec.model, spec.server
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
    ]
    if m.max_length is not None:
        values.append((Env.MAX_SEQUENCE_LENGTH, str(m.max_length)))
    if m.instruction is not None:
        values.append((Env.DEFAULT_INSTRUCTION, m.instruction))
    env: list[JsonObject] = [{"name": str(name), "value": value} for name, value in values]
    if s.api_key_secret is not None:
        ref = {"name": s.api_key_secret.name, "key": s.api_key_secret.key}
        env.append({"name": str(Env.API_KEY), "valueFrom": {"secretKeyRef": ref}})
    return _merge_env(env, [_dump(e) for e in spec.env])


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
    cache = svc.spec.model_cache
    if not cache.enabled:
        return None
    return cache.existing_claim or model_cache_claim_name(svc.name)


def pvc_params(svc: ParsedService) -> PvcParams | None:
    cache = svc.spec.model_cache
    if not cache.enabled or cache.existing_claim is not None or cache.size is None:
        return None
    annotations = {RETAINED_ANNOTATION: "true"} if cache.retain_on_delete else None
    return PvcParams(
        metadata=object_meta(svc, "model-cache", name=model_cache_claim_name(svc.name),
                             annotations=annotations, owned=not cache.retain_on_delete),
        access_modes=list(cache.access_modes), storage_class_name=cache.storage_class_name,
        size=cache.size)


def deployment_params(svc: ParsedService) -> DeploymentParams:
    spec = svc.spec
    image, env, claim = _image(spec), _server_env(spec), _claim_name(svc)
    env_from = [_dump(e) for e in spec.env_from]
    # `--opt=value` keeps a value that starts with "-" from being read as another option.
    download_args = [f"--model={spec.model.name}", f"--revision={spec.model.revision}",
                     f"--cache-dir={MODEL_CACHE_PATH}"]
    download_env: list[JsonObject] = [{"name": str(Env.HF_HOME), "value": MODEL_CACHE_PATH}]
    if spec.hub_token_secret is not None:
        ref = {"name": spec.hub_token_secret.name, "key": spec.hub_token_secret.key}
        download_env.append({"name": str(Env.HF_TOKEN), "valueFrom": {"secretKeyRef": ref}})
    downloads = not spec.model.name.startswith("/")  # a Hub id, not a local path
    config_hash = _config_hash(image, env, env_from, download_args, download_env, claim)
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
        image=image,
        pull_policy=spec.image.pull_policy,
        download=DownloadParams(args=download_args, env=download_env,
                                resources=_resources(spec, gpus=False)) if downloads else None,
        env=env,
        env_from=env_from,
        resources=_resources(spec, gpus=True),
        claim_name=claim,
    )


def service_params(svc: ParsedService) -> ServiceParams:
    s = svc.spec.service
    return ServiceParams(metadata=object_meta(svc, "server", annotations=s.annotations),
                         type=s.type, selector=selector_labels(svc.name), port=s.port)


def hpa_params(svc: ParsedService) -> HpaParams | None:
    a = svc.spec.autoscaling
    if not a.enabled:
        return None
    return HpaParams(
        metadata=object_meta(svc, "autoscaler"), target=svc.name,
        min_replicas=a.min_replicas, max_replicas=a.max_replicas,
        cpu_utilization=a.target_cpu_utilization, memory_utilization=a.target_memory_utilization,
        requests_per_second=a.requests_per_second, p95_latency_seconds=a.p95_latency_seconds,
        behavior=_dump(a.behavior) if a.behavior is not None else None)


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
    return ServiceMonitorParams(
        metadata=object_meta(svc, "metrics", extra_labels=sm.labels),
        selector=selector_labels(svc.name), namespace=svc.namespace, interval=sm.interval,
        scrape_timeout=sm.scrape_timeout)


def prometheus_rule_params(svc: ParsedService) -> PrometheusRuleParams | None:
    rule = svc.spec.metrics.prometheus_rule
    if not rule.enabled:
        return None
    return PrometheusRuleParams(metadata=object_meta(svc, "alerts", extra_labels=rule.labels),
                                group=f"reranker.{svc.namespace}.{svc.name}",
                                rules=alert_rules(svc.name, svc.namespace, rule))


def dashboard_params(svc: ParsedService) -> DashboardParams | None:
    board = svc.spec.metrics.dashboard
    if not board.enabled:
        return None
    annotations = {GRAFANA_FOLDER_ANNOTATION: board.folder} if board.folder else None
    return DashboardParams(
        metadata=object_meta(svc, "dashboard", name=dashboard_config_map_name(svc.name),
                             extra_labels=board.labels, annotations=annotations),
        file_name=f"reranker-{svc.namespace}-{svc.name}.json",
        json=dashboard_json(svc.name, svc.namespace))


# The params builder of each child kind (reranker_operator.kinds.CHILD_KINDS names the kinds).
BUILDERS: dict[str, Callable[[ParsedService], Any]] = {
    "PersistentVolumeClaim": pvc_params,
    "Deployment": deployment_params,
    "Service": service_params,
    "HorizontalPodAutoscaler": hpa_params,
    "PodDisruptionBudget": pdb_params,
    "Ingress": ingress_params,
    "ServiceMonitor": service_monitor_params,
    "PrometheusRule": prometheus_rule_params,
    "ConfigMap": dashboard_params,
}
