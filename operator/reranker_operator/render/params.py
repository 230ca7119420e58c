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
from dataclasses import asdict, dataclass
from typing import Any

from reranker_contract import (
    METRICS_PATH,
    METRICS_PORT_NAME,
    MODEL_CACHE_PATH,
    PORT_NAME,
    RUN_AS_UID,
    Env,
)
from reranker_contract.score_check import PROBES_KEY
from reranker_operator.api.constants import (
    CONFIG_HASH_ANNOTATION,
    GRAFANA_FOLDER_ANNOTATION,
    LABEL_COMPONENT,
    RETAINED_ANNOTATION,
)
from reranker_operator.api.gpu import CLAIM_NAME
from reranker_operator.api.spec import RerankerServiceSpec
from reranker_operator.api.termination import grace_period_seconds
from reranker_operator.engines import engine
from reranker_operator.render.containers import (
    ContainerParams,
    JsonObject,
    bundled_image,
    dump,
    resources,
)
from reranker_operator.render.labels import (
    child_labels,
    gpu_claim_template_name,
    model_cache_claim_name,
    object_meta,
    proxy_service_name,
    score_probes_config_map_name,
    selector_labels,
)
from reranker_operator.render.monitoring import (
    alert_rules,
    dashboard_config_map_name,
    dashboard_json,
)
from reranker_operator.render.network import PolicyRules, policy_rules
from reranker_operator.render.scaling import custom_targets, keda_query
from reranker_operator.render.service import ParsedService


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
class DeviceRequestParams:
    """The one device request of a DRA claim (resource.k8s.io/v1 ExactDeviceRequest)."""

    name: str
    device_class_name: str
    selectors: list[JsonObject]  # DeviceSelectors: each a CEL expression over `device`
    count: int = 1


@dataclass(frozen=True)
class ResourceClaimTemplateParams:
    """The ResourceClaimTemplate each server pod claims its GPU from (spec.resources.dra)."""

    metadata: JsonObject
    request: DeviceRequestParams


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
    resource_claims: list[JsonObject]  # the pod's DRA claims (spec.resources.dra), or none
    termination_grace_period_seconds: int  # spec_termination.grace_period_seconds
    run_as_uid: int = RUN_AS_UID  # runAsUser, runAsGroup and fsGroup: the images' USER
    # Recreate, not a rolling update, when the pods mount one claim only one node can attach:
    # a surge pod scheduled on another node would wait for it forever (Multi-Attach)
    recreate: bool = False
    engine_container: ContainerParams | None = None  # the engine process `container` fronts

    @property
    def containers(self) -> list[ContainerParams]:
        """The pod's containers: the serving one (the Service's) first."""
        return [self.container, *([self.engine_container] if self.engine_container else [])]


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
class ScoreProbesParams:
    """The ConfigMap of the resource's score-check probes (spec.scoreCheck.probes)."""

    metadata: JsonObject
    key: str
    json: str


@dataclass(frozen=True)
class DashboardParams:
    """The ConfigMap holding the Grafana dashboard for the dashboard sidecar."""

    metadata: JsonObject
    file_name: str
    json: str


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
        spec: JsonObject = {
            "accessModes": list(cache.access_modes),
            "resources": {"requests": {"storage": cache.size}},
        }
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


def pvc_params(svc: ParsedService) -> PvcParams | None:
    cache = svc.spec.model_cache
    if not cache.is_shared() or cache.existing_claim is not None or cache.size is None:
        return None
    annotations = {RETAINED_ANNOTATION: "true"} if cache.retain_on_delete else None
    return PvcParams(
        metadata=object_meta(
            svc,
            "model-cache",
            name=model_cache_claim_name(svc.name),
            annotations=annotations,
            owned=not cache.retain_on_delete,
        ),
        access_modes=list(cache.access_modes),
        storage_class_name=cache.storage_class_name,
        size=cache.size,
    )


def _download(spec: RerankerServiceSpec) -> DownloadParams | None:
    if not downloads(spec):
        return None
    # `--opt=value` keeps a value that starts with "-" from being read as another option.
    args = [
        f"--model={spec.model.name}",
        f"--revision={spec.model.revision}",
        f"--cache-dir={MODEL_CACHE_PATH}",
    ]
    env: list[JsonObject] = [{"name": str(Env.HF_HOME), "value": MODEL_CACHE_PATH}]
    if spec.hub_token_secret is not None:
        ref = {"name": spec.hub_token_secret.name, "key": spec.hub_token_secret.key}
        env.append({"name": str(Env.HF_TOKEN), "valueFrom": {"secretKeyRef": ref}})
    return DownloadParams(
        image=bundled_image(spec),
        pull_policy=spec.image.pull_policy,
        args=args,
        env=env,
        resources=resources(spec, gpus=False),
    )


def _device_request(spec: RerankerServiceSpec) -> DeviceRequestParams | None:
    dra = spec.resources.dra
    if dra is None:
        return None
    selectors = [{"cel": {"expression": e}} for e in dra.cel_selectors()]
    return DeviceRequestParams(CLAIM_NAME, dra.device_class(), selectors)


def _claim_template_name(svc: ParsedService, request: DeviceRequestParams) -> str:
    return gpu_claim_template_name(svc.name, _config_hash(asdict(request))[:8])


def resource_claim_template_params(svc: ParsedService) -> ResourceClaimTemplateParams | None:
    request = _device_request(svc.spec)
    if request is None:
        return None
    name = _claim_template_name(svc, request)
    return ResourceClaimTemplateParams(object_meta(svc, "gpu-claim", name=name), request)


def _resource_claims(svc: ParsedService) -> list[JsonObject]:
    request = _device_request(svc.spec)
    if request is None:
        return []
    return [{"name": CLAIM_NAME, "resourceClaimTemplateName": _claim_template_name(svc, request)}]


def _score_probes(spec: RerankerServiceSpec) -> str | None:
    """The inline score-check probes' JSON where the pods read them, else None."""
    check = spec.score_check
    if not engine(spec.engine).serving(spec).score_check or not check.enabled or not check.probes:
        return None
    return check.probes_json()


def score_probes_params(svc: ParsedService) -> ScoreProbesParams | None:
    probes = _score_probes(svc.spec)
    if probes is None:
        return None
    name = score_probes_config_map_name(svc.name)
    return ScoreProbesParams(object_meta(svc, "score-probes", name=name), PROBES_KEY, probes)


def deployment_params(svc: ParsedService) -> DeploymentParams:
    spec = svc.spec
    served = engine(spec.engine).serving(spec)
    serving = served.serving_container(svc)
    container, fronted = serving.container, serving.engine_container
    volumes = [_cache_volume(svc), {"name": "tmp", "emptyDir": {}}, *serving.volumes]
    download = _download(spec)
    claims = _resource_claims(svc)
    probes = _score_probes(spec)  # read at start-up: new probes restart the pods to check them
    config_hash = _config_hash(
        asdict(container),
        *([asdict(fronted)] if fronted is not None else []),  # one container: the hash holds
        download and asdict(download),
        volumes,
        served.restart_inputs(spec),
        *([claims] if claims else []),  # without a claim, the hash of existing renders holds
        *([probes] if probes is not None else []),
    )
    return DeploymentParams(
        metadata=object_meta(svc, "server"),
        replicas=None if spec.autoscaling.enabled else spec.replicas,
        selector=selector_labels(svc.name),
        pod_labels={**spec.pod_labels, **child_labels(svc.name, "server")},
        pod_annotations={**spec.pod_annotations, CONFIG_HASH_ANNOTATION: config_hash},
        pull_secrets=[{"name": s} for s in spec.image.pull_secrets],
        node_selector=dict(spec.node_selector),
        tolerations=[dump(t) for t in spec.tolerations],
        affinity=spec.affinity,
        priority_class_name=spec.priority_class_name,
        runtime_class_name=spec.runtime_class_name,
        download=download,
        container=container,
        volumes=volumes,
        resource_claims=claims,
        termination_grace_period_seconds=grace_period_seconds(
            spec.termination, spec.server.request_timeout_seconds
        ),
        recreate=spec.model_cache.one_node_only(),
        engine_container=fronted,
    )


def service_params(svc: ParsedService) -> ServiceParams:
    s = svc.spec.service
    ports: list[JsonObject] = [
        {"name": PORT_NAME, "port": s.port, "targetPort": PORT_NAME, "protocol": "TCP"}
    ]
    metrics_port = engine(svc.spec.engine).serving(svc.spec).metrics_port(svc.spec)
    if metrics_port is not None:
        ports.append(
            {
                "name": METRICS_PORT_NAME,
                "port": metrics_port,
                "targetPort": METRICS_PORT_NAME,
                "protocol": "TCP",
            }
        )
    return ServiceParams(
        metadata=object_meta(svc, "server", annotations=s.annotations),
        type=s.type,
        selector=selector_labels(svc.name),
        ports=ports,
    )


def _behavior(spec: RerankerServiceSpec) -> JsonObject | None:
    b = spec.autoscaling.behavior
    return dump(b) if b is not None else None


def hpa_params(svc: ParsedService) -> HpaParams | None:
    spec = svc.spec
    a = spec.autoscaling
    if not a.uses_hpa():  # never both an HPA and a ScaledObject
        return None
    return HpaParams(
        metadata=object_meta(svc, "autoscaler"),
        target=svc.name,
        min_replicas=a.min_replicas,
        max_replicas=a.max_replicas,
        cpu_utilization=a.target_cpu_utilization,
        memory_utilization=a.target_memory_utilization,
        pods_metrics=[(str(t.metric), t.value) for t in custom_targets(spec)],
        behavior=_behavior(spec),
    )


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
    for resource, value in (
        ("cpu", a.target_cpu_utilization),
        ("memory", a.target_memory_utilization),
    ):
        if value is not None:
            triggers.append(
                {"type": resource, "metricType": "Utilization", "metadata": {"value": str(value)}}
            )
    if k.scale_to_zero:  # the interceptor's in-flight requests wake the Deployment from zero
        triggers.append(
            {
                "type": "external-push",
                "name": "http-interceptor",
                "metadata": {
                    "scalerAddress": k.interceptor.scaler_address,
                    "interceptorRoute": _route_name(svc),
                },
            }
        )
    return ScaledObjectParams(
        metadata=object_meta(svc, "autoscaler"),
        target=svc.name,
        min_replicas=a.lower_bound(),
        max_replicas=a.max_replicas,
        polling_interval=k.polling_interval,
        cooldown_period=k.cooldown_period,
        behavior=_behavior(spec),
        triggers=triggers,
    )


def _route(svc: ParsedService, api: str) -> RouteParams | None:
    spec = svc.spec
    k = spec.autoscaling.keda
    if not spec.autoscaling.scales_to_zero() or k.interceptor.api != api:
        return None
    proxy = proxy_service_name(svc.name)
    names = [
        proxy,
        f"{proxy}.{svc.namespace}",
        f"{proxy}.{svc.namespace}.svc",
        f"{proxy}.{svc.namespace}.svc.cluster.local",
    ]
    hosts = [*names, *(f"{n}:{k.interceptor.proxy_port}" for n in names), *k.interceptor.hosts]
    return RouteParams(
        metadata=object_meta(svc, "wake-route", name=_route_name(svc)),
        target=svc.name,
        service=svc.name,
        hosts=hosts,
        target_concurrency=k.interceptor.target_concurrency,
        readiness_timeout=k.interceptor.readiness_timeout,
        max_replicas=spec.autoscaling.max_replicas,
        cooldown_period=k.cooldown_period,
    )


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
        external_name=f"{i.proxy_service}.{i.namespace}.svc.cluster.local",
        port=i.proxy_port,
    )


def network_policy_params(svc: ParsedService) -> NetworkPolicyParams | None:
    spec = svc.spec
    if not spec.network_policy.enabled:
        return None
    return NetworkPolicyParams(
        metadata=object_meta(svc, "network-policy"),
        selector=selector_labels(svc.name),
        rules=policy_rules(spec, svc.namespace, downloads=downloads(spec)),
    )


def pdb_params(svc: ParsedService) -> PdbParams | None:
    p = svc.spec.pod_disruption_budget
    if not p.enabled:
        return None
    max_unavailable = (
        None
        if p.min_available is not None
        else (p.max_unavailable if p.max_unavailable is not None else 1)
    )
    return PdbParams(
        metadata=object_meta(svc, "disruption-budget"),
        selector=selector_labels(svc.name),
        min_available=p.min_available,
        max_unavailable=max_unavailable,
    )


def ingress_params(svc: ParsedService) -> IngressParams | None:
    i = svc.spec.ingress
    if not i.enabled or i.host is None:
        return None
    return IngressParams(
        metadata=object_meta(svc, "ingress", annotations=i.annotations),
        class_name=i.class_name,
        host=i.host,
        path=i.path,
        path_type=i.path_type,
        tls_secret_name=i.tls_secret_name,
        service_name=svc.name,
    )


def service_monitor_params(svc: ParsedService) -> ServiceMonitorParams | None:
    sm = svc.spec.metrics.service_monitor
    if not sm.enabled:
        return None
    served = engine(svc.spec.engine).serving(svc.spec)
    metrics_port = served.metrics_port(svc.spec)
    port = METRICS_PORT_NAME if metrics_port is not None else PORT_NAME
    return ServiceMonitorParams(
        metadata=object_meta(svc, "metrics", extra_labels=sm.labels),
        selector={**selector_labels(svc.name), LABEL_COMPONENT: "server"},
        namespace=svc.namespace,
        interval=sm.interval,
        scrape_timeout=sm.scrape_timeout,
        port_name=port,
    )


def prometheus_rule_params(svc: ParsedService) -> PrometheusRuleParams | None:
    spec = svc.spec
    rule = spec.metrics.prometheus_rule
    if not rule.enabled:
        return None
    served = engine(spec.engine).serving(spec)
    rules = alert_rules(
        svc.name,
        svc.namespace,
        rule,
        engine_name=served,
        prefix_reuse=served.prefix_reuse(spec),
    )
    return PrometheusRuleParams(
        metadata=object_meta(svc, "alerts", extra_labels=rule.labels),
        group=f"reranker.{svc.namespace}.{svc.name}",
        rules=rules,
    )


def dashboard_params(svc: ParsedService) -> DashboardParams | None:
    board = svc.spec.metrics.dashboard
    if not board.enabled:
        return None
    annotations = {GRAFANA_FOLDER_ANNOTATION: board.folder} if board.folder else None
    return DashboardParams(
        metadata=object_meta(
            svc,
            "dashboard",
            name=dashboard_config_map_name(svc.name),
            extra_labels=board.labels,
            annotations=annotations,
        ),
        file_name=f"reranker-{svc.namespace}-{svc.name}.json",
        json=dashboard_json(svc.name, svc.namespace, engine(svc.spec.engine).serving(svc.spec)),
    )
