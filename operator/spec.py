"""The RerankerService spec as pydantic models, with the CRD's defaults, and `parse_spec`.

The CRD's openAPIV3Schema (crds/rerankerservices.yaml) is what the API server enforces;
`parse_spec` re-checks it for specs that never went through an API server (`render -f`) and
adds the rules a schema cannot express (quantity comparisons, label syntax, durations).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from pydantic.alias_generators import to_camel

from reranker_contract import DEFAULTS, PORT

from .constants import DEFAULT_IMAGE_REPOSITORY
from .quantity import parse_quantity

DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
DURATION = r"^(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$"
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
INT_OR_PERCENT = re.compile(r"^[0-9]+%$")
_DURATION_RE = re.compile(DURATION)


class InvalidSpecError(ValueError):
    """A spec the operator rejects; `field` is a dotted path such as `autoscaling.maxReplicas`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"spec.{field}: {message}" if field else f"spec: {message}")
        self.field = field
        self.message = message


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=True,
        protected_namespaces=(),
    )


def _to_quantity(value: Any) -> str:
    """An int or quantity string, as a string; ValueError otherwise (bools are not ints)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        # pydantic turns only ValueError into a validation error naming the field
        msg = f"must be an integer or a quantity string such as 500m or 4Gi, got {value!r}"
        raise ValueError(msg)  # noqa: TRY004
    parse_quantity(value)  # raises ValueError naming the value
    return str(value)


def _to_int_or_percent(value: Any) -> int | str:
    """An int >= 0 or a percentage string such as '50%'."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be an integer or a percentage such as '50%', got {value!r}")  # noqa: TRY004
    if isinstance(value, str) and not INT_OR_PERCENT.fullmatch(value):
        raise ValueError(f"{value!r} must be an integer or a percentage such as '50%'")
    if isinstance(value, int) and value < 0:
        raise ValueError("must be >= 0")
    return value


# Kubernetes int-or-string fields; a plain validator keeps error paths free of union tags.
Quantity = Annotated[str, PlainValidator(_to_quantity)]
IntOrPercent = Annotated[int | str, PlainValidator(_to_int_or_percent)]


def duration_seconds(value: str) -> float:
    """Seconds in a Prometheus-style duration such as `1m30s` or `500ms`."""
    match = _DURATION_RE.fullmatch(value)
    if not value or not match:
        raise ValueError(f"{value!r} is not a duration (e.g. 30s, 1m, 1m30s, 500ms)")
    h, m, s, ms = (int(match.group(i) or 0) for i in (2, 4, 6, 8))
    return h * 3600 + m * 60 + s + ms / 1000


def check_key(key: str, what: str = "label") -> None:
    """Raise ValueError unless `key` is a qualified name (`[prefix/]name`) as labels and
    annotations require."""
    prefix, slash, name = key.rpartition("/")
    if not name or len(name) > 63 or not LABEL_NAME_PART.fullmatch(name):
        raise ValueError(f"{what} key {key!r} is not a valid {what} name")
    if slash and (not prefix or len(prefix) > 253 or not re.fullmatch(DNS1123_SUBDOMAIN, prefix)):
        raise ValueError(f"{what} key {key!r} has an invalid prefix")


def check_labels(labels: Mapping[str, str]) -> None:
    """Raise ValueError unless every key and value is valid Kubernetes label syntax."""
    for key, value in labels.items():
        check_key(key)
        if len(value) > 63 or not LABEL_VALUE.fullmatch(value):
            raise ValueError(f"label value {value!r} of {key!r} is not a valid label value")


class ModelSpec(_Model):
    name: str = Field(min_length=1, max_length=512)
    revision: str = Field("main", min_length=1, max_length=256)
    served_name: str | None = Field(None, min_length=1, max_length=256)
    family: Literal["auto", "qwen3-causal", "cross-encoder"] = "auto"
    instruction: str | None = Field(None, max_length=4096)
    max_length: int | None = Field(None, ge=16, le=131072)
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    quantization: Literal["none", "8bit", "4bit"] = "none"
    trust_remote_code: bool = False


class ImageSpec(_Model):
    repository: str = Field(DEFAULT_IMAGE_REPOSITORY, min_length=1, max_length=512)
    tag: str | None = Field(None, min_length=1, max_length=128)
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    pull_secrets: list[str] = Field(default_factory=list)


class ResourceAmounts(_Model):
    cpu: Quantity | None = None
    memory: Quantity | None = None


class ResourcesSpec(_Model):
    gpus: int = Field(0, ge=0, le=16)
    requests: ResourceAmounts = Field(
        default_factory=lambda: ResourceAmounts(cpu="1", memory="4Gi")
    )
    limits: ResourceAmounts = Field(default_factory=ResourceAmounts)


class Toleration(_Model):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class SecretKeyRef(_Model):
    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    key: str = Field(min_length=1, max_length=253)


class HubTokenSecret(SecretKeyRef):
    key: str = Field("token", min_length=1, max_length=253)


class ApiKeySecret(SecretKeyRef):
    key: str = Field("api-key", min_length=1, max_length=253)


class EnvVar(_Model):
    name: str = Field(min_length=1, pattern=ENV_NAME)
    value: str | None = None
    value_from: dict[str, Any] | None = None


class EnvFromRef(_Model):
    name: str = Field(min_length=1, max_length=253)
    optional: bool | None = None


class EnvFromSource(_Model):
    prefix: str | None = None
    config_map_ref: EnvFromRef | None = None
    secret_ref: EnvFromRef | None = None


class ModelCacheSpec(_Model):
    enabled: bool = False
    existing_claim: str | None = Field(
        None, min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN
    )
    size: Quantity | None = None
    storage_class_name: str | None = Field(None, max_length=253)
    access_modes: list[
        Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]
    ] = Field(default_factory=lambda: ["ReadWriteOnce"], min_length=1)
    retain_on_delete: bool = False


class ServiceSpec(_Model):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: int = Field(PORT, ge=1, le=65535)
    annotations: dict[str, str] = Field(default_factory=dict)


class ScalingPolicy(_Model):
    type: Literal["Pods", "Percent"]
    value: int = Field(ge=1)
    period_seconds: int = Field(ge=1, le=1800)


class ScalingRules(_Model):
    stabilization_window_seconds: int | None = Field(None, ge=0, le=3600)
    select_policy: Literal["Max", "Min", "Disabled"] | None = None
    policies: list[ScalingPolicy] | None = None
    tolerance: Quantity | None = None


class ScalingBehavior(_Model):
    scale_up: ScalingRules | None = None
    scale_down: ScalingRules | None = None


class AutoscalingSpec(_Model):
    enabled: bool = False
    min_replicas: int = Field(1, ge=1)
    max_replicas: int = Field(3, ge=1)
    target_cpu_utilization: int | None = Field(None, ge=1, le=1000, alias="targetCPUUtilization")
    target_memory_utilization: int | None = Field(None, ge=1, le=1000)
    requests_per_second: Quantity | None = None
    p95_latency_seconds: Quantity | None = None
    behavior: ScalingBehavior | None = None


class ServiceMonitorSpec(_Model):
    enabled: bool = False
    interval: str = Field("30s", pattern=DURATION, min_length=2)
    scrape_timeout: str = Field("10s", pattern=DURATION, min_length=2)
    labels: dict[str, str] = Field(default_factory=dict)


class PrometheusRuleSpec(_Model):
    enabled: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    error_rate_threshold: float = Field(0.05, ge=0, le=1)
    p95_latency_seconds: float = Field(2.0, ge=0.001, le=3600)
    for_: str = Field("5m", alias="for", pattern=DURATION, min_length=2)
    queue_rejections_per_second: float = Field(0.1, ge=0, le=1000000)


def _grafana_sidecar_labels() -> dict[str, str]:
    return {"grafana_dashboard": "1"}


class DashboardSpec(_Model):
    enabled: bool = False
    labels: dict[str, str] = Field(default_factory=_grafana_sidecar_labels)
    folder: str | None = Field(None, min_length=1, max_length=256)


class MetricsSpec(_Model):
    service_monitor: ServiceMonitorSpec = Field(default_factory=ServiceMonitorSpec)
    prometheus_rule: PrometheusRuleSpec = Field(default_factory=PrometheusRuleSpec)
    dashboard: DashboardSpec = Field(default_factory=DashboardSpec)


class IngressSpec(_Model):
    enabled: bool = False
    class_name: str | None = Field(None, max_length=253)
    host: str | None = Field(None, min_length=1, max_length=253, pattern=HOSTNAME)
    path: str = Field("/", pattern=r"^/", max_length=1024)
    path_type: Literal["Prefix", "Exact", "ImplementationSpecific"] = "Prefix"
    tls_secret_name: str | None = Field(None, max_length=253, pattern=DNS1123_SUBDOMAIN)
    annotations: dict[str, str] = Field(default_factory=dict)


class PodDisruptionBudgetSpec(_Model):
    enabled: bool = False
    min_available: IntOrPercent | None = None
    max_unavailable: IntOrPercent | None = None


class ServerSpec(_Model):
    max_batch_tokens: int = Field(DEFAULTS.max_batch_tokens, ge=256, le=1048576)
    max_batch_size: int = Field(DEFAULTS.max_batch_size, ge=1, le=4096)
    max_client_batch_size: int = Field(DEFAULTS.max_client_batch_size, ge=1, le=100000)
    max_concurrent_requests: int = Field(DEFAULTS.max_concurrent_requests, ge=1, le=100000)
    api_key_secret: ApiKeySecret | None = None
    log_level: Literal["debug", "info", "warning", "error"] = DEFAULTS.log_level


class RerankerServiceSpec(_Model):
    """The desired state of one reranker deployment."""

    model: ModelSpec
    image: ImageSpec = Field(default_factory=ImageSpec)
    replicas: int = Field(1, ge=0, le=1000)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    affinity: dict[str, Any] | None = None
    priority_class_name: str | None = Field(None, max_length=253)
    runtime_class_name: str | None = Field(None, max_length=253)
    env: list[EnvVar] = Field(default_factory=list)
    env_from: list[EnvFromSource] = Field(default_factory=list)
    model_cache: ModelCacheSpec = Field(default_factory=ModelCacheSpec)
    hub_token_secret: HubTokenSecret | None = None
    service: ServiceSpec = Field(default_factory=ServiceSpec)
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    ingress: IngressSpec = Field(default_factory=IngressSpec)
    pod_disruption_budget: PodDisruptionBudgetSpec = Field(default_factory=PodDisruptionBudgetSpec)
    server: ServerSpec = Field(default_factory=ServerSpec)
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    pod_labels: dict[str, str] = Field(default_factory=dict)


def _loc_to_field(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _check_autoscaling(spec: RerankerServiceSpec) -> None:
    a = spec.autoscaling
    if a.min_replicas > a.max_replicas:
        raise InvalidSpecError(
            "autoscaling.maxReplicas",
            f"must be >= autoscaling.minReplicas ({a.max_replicas} < {a.min_replicas})",
        )
    if not a.enabled:
        return
    if not a.min_replicas <= spec.replicas <= a.max_replicas:
        raise InvalidSpecError(
            "replicas",
            f"{spec.replicas} is outside autoscaling [minReplicas, maxReplicas] = "
            f"[{a.min_replicas}, {a.max_replicas}]",
        )
    metrics = (a.target_cpu_utilization, a.target_memory_utilization,
               a.requests_per_second, a.p95_latency_seconds)  # fmt: skip
    if all(m is None for m in metrics):
        raise InvalidSpecError(
            "autoscaling",
            "enabled autoscaling needs at least one of targetCPUUtilization, "
            "targetMemoryUtilization, requestsPerSecond, p95LatencySeconds",
        )
    for name, value in (("requestsPerSecond", a.requests_per_second),
                        ("p95LatencySeconds", a.p95_latency_seconds)):  # fmt: skip
        if value is not None and parse_quantity(value) <= 0:
            raise InvalidSpecError(f"autoscaling.{name}", "must be > 0")
    if a.target_cpu_utilization is not None and spec.resources.requests.cpu is None:
        raise InvalidSpecError("resources.requests.cpu", "targetCPUUtilization needs a CPU request")
    if a.target_memory_utilization is not None and spec.resources.requests.memory is None:
        raise InvalidSpecError(
            "resources.requests.memory", "targetMemoryUtilization needs a memory request"
        )


def _check_resources_and_cache(spec: RerankerServiceSpec) -> None:
    c = spec.model_cache
    if c.existing_claim is not None and c.size is not None:
        raise InvalidSpecError("modelCache.size", "set either existingClaim or size, not both")
    if c.enabled and c.existing_claim is None and c.size is None:
        raise InvalidSpecError("modelCache.size", "an enabled cache needs size or existingClaim")
    if c.size is not None and parse_quantity(c.size) <= 0:
        raise InvalidSpecError("modelCache.size", "must be > 0")
    if spec.model.quantization != "none" and spec.resources.gpus < 1:
        raise InvalidSpecError(
            "model.quantization",
            f"{spec.model.quantization} quantization needs resources.gpus >= 1",
        )
    for kind in ("cpu", "memory"):
        req = getattr(spec.resources.requests, kind)
        lim = getattr(spec.resources.limits, kind)
        if req is not None and lim is not None and parse_quantity(lim) < parse_quantity(req):
            raise InvalidSpecError(
                f"resources.limits.{kind}", f"limit {lim} is below the request {req}"
            )


def _check_exposure(spec: RerankerServiceSpec) -> None:
    if spec.ingress.enabled and not spec.ingress.host:
        raise InvalidSpecError("ingress.host", "required when ingress is enabled")
    pdb = spec.pod_disruption_budget
    if pdb.min_available is not None and pdb.max_unavailable is not None:
        raise InvalidSpecError(
            "podDisruptionBudget.maxUnavailable", "set either minAvailable or maxUnavailable"
        )
    sm = spec.metrics.service_monitor
    if duration_seconds(sm.scrape_timeout) > duration_seconds(sm.interval):
        raise InvalidSpecError(
            "metrics.serviceMonitor.scrapeTimeout",
            f"{sm.scrape_timeout} is longer than the interval {sm.interval}",
        )
    dashboard = spec.metrics.dashboard
    if dashboard.enabled and not dashboard.labels:
        raise InvalidSpecError(
            "metrics.dashboard.labels",
            "an enabled dashboard needs labels (the Grafana sidecar finds ConfigMaps by label)",
        )


def _check_metadata_maps(spec: RerankerServiceSpec) -> None:
    labels = (("podLabels", spec.pod_labels), ("nodeSelector", spec.node_selector),
              ("metrics.serviceMonitor.labels", spec.metrics.service_monitor.labels),
              ("metrics.prometheusRule.labels", spec.metrics.prometheus_rule.labels),
              ("metrics.dashboard.labels", spec.metrics.dashboard.labels))  # fmt: skip
    for path, mapping in labels:
        try:
            check_labels(mapping)
        except ValueError as exc:
            raise InvalidSpecError(path, str(exc)) from None
    annotations = (("podAnnotations", spec.pod_annotations),
                   ("service.annotations", spec.service.annotations),
                   ("ingress.annotations", spec.ingress.annotations))  # fmt: skip
    for path, mapping in annotations:
        try:
            for key in mapping:
                check_key(key, "annotation")
        except ValueError as exc:
            raise InvalidSpecError(path, str(exc)) from None


def _check_lists(spec: RerankerServiceSpec) -> None:
    for i, secret in enumerate(spec.image.pull_secrets):
        if not re.fullmatch(DNS1123_SUBDOMAIN, secret):
            raise InvalidSpecError(f"image.pullSecrets[{i}]", f"{secret!r} is not a Secret name")
    for i, env in enumerate(spec.env):
        if env.value is not None and env.value_from is not None:
            raise InvalidSpecError(f"env[{i}].valueFrom", "set either value or valueFrom")
    for i, src in enumerate(spec.env_from):
        if (src.config_map_ref is None) == (src.secret_ref is None):
            raise InvalidSpecError(f"envFrom[{i}]", "set exactly one of configMapRef, secretRef")
    for i, tol in enumerate(spec.tolerations):
        if tol.operator == "Exists" and tol.value:
            raise InvalidSpecError(f"tolerations[{i}].value", "must be empty for operator Exists")


def _cross_field_checks(spec: RerankerServiceSpec) -> None:
    """The rules the CRD states in CEL, plus those it cannot state; raises InvalidSpecError."""
    _check_autoscaling(spec)
    _check_resources_and_cache(spec)
    _check_exposure(spec)
    _check_metadata_maps(spec)
    _check_lists(spec)


def _plain(value: Any) -> Any:
    """Deep copy of `value` with every Mapping a dict and every list/tuple a list (kopf hands
    over Mapping views, which strict validation would not take for dicts)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def parse_spec(spec: Mapping[str, Any]) -> RerankerServiceSpec:
    """Validate a RerankerService `.spec` mapping; raises InvalidSpecError naming the field."""
    if not isinstance(spec, Mapping):
        raise InvalidSpecError("", f"must be a mapping, got {type(spec).__name__}")
    try:
        parsed = RerankerServiceSpec.model_validate(_plain(spec))
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = _loc_to_field(tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        raise InvalidSpecError(field, msg) from None
    _cross_field_checks(parsed)
    return parsed
