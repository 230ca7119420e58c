"""The RerankerService spec as pydantic models: the one source of its schema, and `parse_spec`.

Every field's description, default, enum, bounds and pattern is stated here, and each
cross-field rule once, as a `Rule` (CEL for the API server, a predicate for the operator) in the
`rules` of the model it belongs to. `make crds` (reranker_devtools.crdgen) writes the CRD's
openAPIV3Schema from these models; docs/reference.md is generated from that CRD.

A node's CRD description is its field's `description`, else its model's docstring (list items
and map values: their type's).

`parse_spec` validates a spec that may never have gone through an API server
(`reranker-operator render -f`): the models' own constraints, then the rules, then the checks no
schema can express (`speccheck`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from reranker_contract import DEFAULTS, PORT, Env

from .constants import DEFAULT_IMAGE_REPOSITORY
from .fieldtypes import (
    DNS1035_LABEL,  # noqa: F401  (re-exported: the renderer's name patterns)
    DNS1123_LABEL,  # noqa: F401
    DNS1123_SUBDOMAIN,
    DURATION,
    ENV_NAME,
    HOSTNAME,
    Annotations,
    FreeForm,
    IntOrPercent,
    Labels,
    Quantity,
    SecretName,
)
from .rules import Rule, violations
from .speccheck import unexpressible_problems


class InvalidSpecError(ValueError):
    """A spec the operator rejects; `field` is a dotted path such as `autoscaling.maxReplicas`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"spec.{field}: {message}" if field else f"spec: {message}")
        self.field = field
        self.message = message


class _Model(BaseModel):
    """Base of the spec models: camelCase names, no unknown fields, no type coercion."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=True,
        protected_namespaces=(),
    )
    # Cross-field rules of this object (its `x-kubernetes-validations` in the CRD).
    rules: ClassVar[tuple[Rule, ...]] = ()


class ModelSpec(_Model):
    """The model to serve and how to load it."""

    name: str = Field(
        min_length=1,
        max_length=512,
        description="Hugging Face Hub id (e.g. Qwen/Qwen3-Reranker-0.6B) fetched by the "
        "model-download init container, or an absolute path inside the image (no download).",
    )
    revision: str = Field(
        "main",
        min_length=1,
        max_length=256,
        description="Hub revision (branch, tag or commit) to download.",
    )
    served_name: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Model name reported by the API; defaults to model.name.",
    )
    family: Literal["auto", "qwen3-causal", "cross-encoder"] = Field(
        "auto",
        description="Scoring method. auto detects it from the model config; qwen3-causal scores "
        "logit(yes) - logit(no) of a causal LM; cross-encoder uses a sequence-classification "
        "head.",
    )
    instruction: str | None = Field(
        None,
        max_length=4096,
        description="Default task instruction for instruction-aware rerankers (Qwen3).",
    )
    max_length: int | None = Field(
        None,
        ge=16,
        le=131072,
        description="Maximum tokens of one query-document sequence; defaults to the model's limit.",
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto",
        description="Weight dtype; auto picks bfloat16/float16 on GPU and float32 on CPU.",
    )
    quantization: Literal["none", "8bit", "4bit"] = Field(
        "none",
        description="bitsandbytes weight quantization; needs resources.gpus >= 1.",
    )
    trust_remote_code: bool = Field(
        False, description="Allow model repositories to run their own Python code."
    )


class ImageSpec(_Model):
    """The inference server image."""

    repository: str = Field(
        DEFAULT_IMAGE_REPOSITORY, min_length=1, max_length=512, description="Image repository."
    )
    tag: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Image tag, or a sha256:... digest; defaults to the operator's version.",
    )
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Image pull policy."
    )
    pull_secrets: list[
        Annotated[
            SecretName, Field(description="A docker-registry Secret name in the same namespace.")
        ]
    ] = Field(
        default_factory=list,
        max_length=16,
        description="Names of Secrets used to pull the image.",
    )


class ResourceAmounts(_Model):
    """CPU and memory amounts."""

    cpu: Quantity | None = Field(None, description="A CPU quantity such as 500m or 2.")
    memory: Quantity | None = Field(None, description="A memory quantity such as 4Gi.")


class ResourcesSpec(_Model):
    """Compute resources of each server pod."""

    gpus: int = Field(
        0,
        ge=0,
        le=16,
        description="NVIDIA GPUs per pod (nvidia.com/gpu); > 0 runs the model on CUDA.",
    )
    requests: ResourceAmounts = Field(
        default_factory=lambda: ResourceAmounts(cpu="1", memory="4Gi"),
        description="CPU and memory requests.",
    )
    limits: ResourceAmounts = Field(
        default_factory=ResourceAmounts,
        description="CPU and memory limits (must not be below the requests).",
    )


class Toleration(_Model):
    """A Kubernetes toleration."""

    key: str | None = Field(
        None, description="Taint key; empty with operator Exists matches every taint."
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        None, description="Exists or Equal (default Equal)."
    )
    value: str | None = Field(None, description="Taint value for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to match; empty matches all."
    )
    toleration_seconds: int | None = Field(
        None,
        description="How long a NoExecute taint is tolerated.",
        json_schema_extra={"format": "int64"},
    )

    rules = (
        Rule(
            "!has(self.operator) || self.operator != 'Exists' || !has(self.value) "
            "|| self.value == ''",
            "must be empty for operator Exists",
            lambda t: t.operator != "Exists" or not t.value,
            field_path=".value",
        ),
    )


class SecretKeyRef(_Model):
    """A key of a Secret in the same namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="Secret name in the same namespace.",
    )
    key: str = Field(min_length=1, max_length=253, description="Key in the Secret.")


class HubTokenSecret(SecretKeyRef):
    """Secret holding a Hugging Face token (HF_TOKEN of the download init container) for gated
    models."""

    key: str = Field(
        "token", min_length=1, max_length=253, description="Key of the token in the Secret."
    )


class ApiKeySecret(SecretKeyRef):
    """Secret holding the API key clients must send as a Bearer token (API_KEY)."""

    key: str = Field(
        "api-key", min_length=1, max_length=253, description="Key of the API key in the Secret."
    )


class EnvVar(_Model):
    """An environment variable."""

    name: str = Field(min_length=1, pattern=ENV_NAME, description="Variable name.")
    value: str | None = Field(None, description="Literal value.")
    value_from: FreeForm | None = Field(
        None,
        description="A Kubernetes EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef, "
        "resourceFieldRef).",
    )

    rules = (
        Rule(
            "!(has(self.value) && has(self.valueFrom))",
            "set either value or valueFrom",
            lambda e: e.value is None or e.value_from is None,
            field_path=".valueFrom",
        ),
    )


class EnvFromRef(_Model):
    """A ConfigMap or Secret in the same namespace."""

    name: str = Field(min_length=1, max_length=253, description="Object name.")
    optional: bool | None = Field(None, description="Start the pod even if the object is missing.")


class EnvFromSource(_Model):
    """One ConfigMap or Secret source."""

    prefix: str | None = Field(None, description="Prefix added to every key.")
    config_map_ref: EnvFromRef | None = Field(
        None, description="A ConfigMap in the same namespace."
    )
    secret_ref: EnvFromRef | None = Field(None, description="A Secret in the same namespace.")

    rules = (
        Rule(
            "has(self.configMapRef) != has(self.secretRef)",
            "set exactly one of configMapRef, secretRef",
            lambda s: (s.config_map_ref is None) != (s.secret_ref is None),
        ),
    )


AccessMode = Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]


class ModelCacheSpec(_Model):
    """Where downloaded weights live. Disabled: an emptyDir per pod (downloaded at every start).
    Enabled: a PersistentVolumeClaim shared by restarts (and by all replicas when its access
    mode allows)."""

    enabled: bool = Field(False, description="Use a PersistentVolumeClaim for the model cache.")
    existing_claim: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="Use this existing claim instead of creating one.",
    )
    size: Quantity | None = Field(
        None,
        description="Size of the claim the operator creates (<name>-model-cache), e.g. 50Gi.",
    )
    storage_class_name: str | None = Field(
        None,
        max_length=253,
        description="StorageClass of the created claim; the cluster default when unset.",
    )
    access_modes: list[
        Annotated[AccessMode, Field(description="A PersistentVolume access mode.")]
    ] = Field(
        default_factory=lambda: ["ReadWriteOnce"],
        min_length=1,
        max_length=4,
        description="Access modes of the created claim; ReadWriteMany lets replicas on several "
        "nodes share it.",
    )
    retain_on_delete: bool = Field(
        False,
        description="Keep the created claim (no owner reference) when the RerankerService is "
        "deleted.",
    )

    rules = (
        Rule(
            "!(has(self.existingClaim) && has(self.size))",
            "set either existingClaim or size, not both",
            lambda c: c.existing_claim is None or c.size is None,
            field_path=".size",
        ),
        Rule(
            "!self.enabled || has(self.existingClaim) || has(self.size)",
            "an enabled model cache needs size (a new claim) or existingClaim",
            lambda c: not c.enabled or c.existing_claim is not None or c.size is not None,
            field_path=".size",
            explain="an enabled cache needs size or existingClaim",
        ),
    )


class ServiceSpec(_Model):
    """The Service in front of the pods."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        "ClusterIP", description="Service type."
    )
    port: int = Field(
        PORT,
        ge=1,
        le=65535,
        description=f"Service port (named http) forwarding to the server's port {PORT}.",
    )
    annotations: Annotations = Field(
        default_factory=dict,
        description="Annotations of the Service (e.g. for a cloud load balancer).",
    )


class ScalingPolicy(_Model):
    """One scaling policy."""

    type: Literal["Pods", "Percent"] = Field(description="Pods (absolute) or Percent (relative).")
    value: int = Field(ge=1, description="Amount of change allowed.")
    period_seconds: int = Field(ge=1, le=1800, description="Window the policy applies to.")


class ScalingRules(_Model):
    """Rules for scaling in one direction."""

    stabilization_window_seconds: int | None = Field(
        None, ge=0, le=3600, description="Seconds of past recommendations considered."
    )
    select_policy: Literal["Max", "Min", "Disabled"] | None = Field(
        None, description="Which policy wins when several apply."
    )
    policies: list[ScalingPolicy] | None = Field(
        None, max_length=8, description="Allowed changes per period."
    )
    tolerance: Quantity | None = Field(
        None,
        description="Tolerance on the metric ratio before scaling (Kubernetes 1.33+, e.g. 50m).",
    )


class ScalingBehavior(_Model):
    """Scaling behavior, as in autoscaling/v2 HorizontalPodAutoscalerBehavior."""

    scale_up: ScalingRules | None = Field(None, description="Rules for scaling up.")
    scale_down: ScalingRules | None = Field(None, description="Rules for scaling down.")


class AutoscalingSpec(_Model):
    """A HorizontalPodAutoscaler (autoscaling/v2) on the Deployment. The requestsPerSecond and
    p95LatencySeconds targets are Pods metrics (reranker_requests_per_second,
    reranker_request_latency_p95_seconds) that need Prometheus Adapter to serve them from the
    server's /metrics."""

    enabled: bool = Field(False, description="Create the HorizontalPodAutoscaler.")
    min_replicas: int = Field(1, ge=1, description="Lower replica bound.")
    max_replicas: int = Field(3, ge=1, description="Upper replica bound.")
    target_cpu_utilization: int | None = Field(
        None,
        ge=1,
        le=1000,
        alias="targetCPUUtilization",
        description="Target average CPU utilization in percent of the CPU request.",
    )
    target_memory_utilization: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Target average memory utilization in percent of the memory request.",
    )
    requests_per_second: Quantity | None = Field(
        None,
        description="Target rerank requests per second per pod (quantity, e.g. 20 or 500m); "
        "needs Prometheus Adapter.",
    )
    p95_latency_seconds: Quantity | None = Field(
        None,
        description="Target per-pod p95 request latency in seconds (quantity, e.g. 500m); needs "
        "Prometheus Adapter.",
    )
    behavior: ScalingBehavior | None = None

    rules = (
        Rule(
            "self.minReplicas <= self.maxReplicas",
            "minReplicas must not exceed maxReplicas",
            lambda a: a.min_replicas <= a.max_replicas,
            field_path=".maxReplicas",
            explain=lambda a: (
                f"must be >= autoscaling.minReplicas ({a.max_replicas} < {a.min_replicas})"
            ),
        ),
        Rule(
            "!self.enabled || has(self.targetCPUUtilization) || has(self.targetMemoryUtilization)"
            " || has(self.requestsPerSecond) || has(self.p95LatencySeconds)",
            "enabled autoscaling needs at least one target (targetCPUUtilization, "
            "targetMemoryUtilization, requestsPerSecond, p95LatencySeconds)",
            lambda a: (
                not a.enabled
                or a.target_cpu_utilization is not None
                or a.target_memory_utilization is not None
                or a.requests_per_second is not None
                or a.p95_latency_seconds is not None
            ),
            explain="enabled autoscaling needs at least one of targetCPUUtilization, "
            "targetMemoryUtilization, requestsPerSecond, p95LatencySeconds",
        ),
    )


class ServiceMonitorSpec(_Model):
    """A prometheus-operator ServiceMonitor (monitoring.coreos.com/v1) for the Service."""

    enabled: bool = Field(
        False, description="Create the ServiceMonitor (needs the prometheus-operator CRDs)."
    )
    interval: str = Field(
        "30s", pattern=DURATION, min_length=2, description="Scrape interval, e.g. 30s."
    )
    scrape_timeout: str = Field(
        "10s",
        pattern=DURATION,
        min_length=2,
        description="Scrape timeout, at most the interval.",
    )
    labels: Labels = Field(
        default_factory=dict,
        description="Extra labels of the ServiceMonitor (e.g. release=prometheus for a "
        "Prometheus selector).",
    )


class PrometheusRuleSpec(_Model):
    """A prometheus-operator PrometheusRule (monitoring.coreos.com/v1) with alerts on this
    service's error rate, p95 latency, queue rejections and queue time, available replicas,
    crash-looping pods, GPU memory and (Qwen3 models) prefix reuse."""

    enabled: bool = Field(
        False, description="Create the PrometheusRule (needs the prometheus-operator CRDs)."
    )
    labels: Labels = Field(
        default_factory=dict,
        description="Extra labels of the PrometheusRule (e.g. release=prometheus for a "
        "Prometheus ruleSelector).",
    )
    error_rate_threshold: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Alert when the share of HTTP 5xx answers over 5m exceeds this fraction "
        "(0.05 = 5%).",
    )
    p95_latency_seconds: float = Field(
        2.0,
        ge=0.001,
        le=3600,
        description="Alert when the p95 HTTP request latency over 5m exceeds this many seconds.",
    )
    for_: str = Field(
        "5m",
        alias="for",
        pattern=DURATION,
        min_length=2,
        description="How long a condition must hold before its alert fires, e.g. 5m.",
    )
    queue_rejections_per_second: float = Field(
        0.1,
        ge=0,
        le=1000000,
        description="Alert when requests rejected because the queue is full (HTTP 429) exceed "
        "this rate per second over 5m.",
    )
    queue_time_p95_seconds: float = Field(
        0.2,
        ge=0.001,
        le=3600,
        description="Alert when the p95 time a pair waits in the server's queue before its "
        "forward pass exceeds this many seconds over 5m (the guides' 200 ms).",
    )
    gpu_memory_ratio: float = Field(
        0.9,
        ge=0.01,
        le=1,
        description="Alert when a GPU's memory held by the server (reserved) exceeds this "
        "fraction of the device's total, as the server reports it.",
    )
    prefix_reuse_ratio: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Qwen3 (causal) models: alert when fewer than this share of scored pairs "
        "reuse a shared prefix KV cache over 5m (requests of one or two documents, or the "
        "prefix path turned off).",
    )


def _grafana_sidecar_labels() -> dict[str, str]:
    return {"grafana_dashboard": "1"}


class DashboardSpec(_Model):
    """A Grafana dashboard for this service, in a ConfigMap picked up by the Grafana dashboard
    sidecar."""

    enabled: bool = Field(False, description="Create the dashboard ConfigMap.")
    labels: Labels = Field(
        default_factory=_grafana_sidecar_labels,
        description="Labels of the ConfigMap; the Grafana sidecar selects dashboards by label "
        "(kube-prometheus-stack watches grafana_dashboard=1).",
    )
    folder: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Grafana folder, set as the ConfigMap annotation grafana_folder (the "
        "sidecar's folderAnnotation).",
    )

    rules = (
        Rule(
            "!self.enabled || size(self.labels) > 0",
            "an enabled dashboard needs labels for the Grafana sidecar to find it",
            lambda d: not d.enabled or bool(d.labels),
            field_path=".labels",
            explain="an enabled dashboard needs labels (the Grafana sidecar finds ConfigMaps by "
            "label)",
        ),
    )


class MetricsSpec(_Model):
    """Monitoring of the server's Prometheus /metrics."""

    service_monitor: ServiceMonitorSpec = Field(default_factory=ServiceMonitorSpec)
    prometheus_rule: PrometheusRuleSpec = Field(default_factory=PrometheusRuleSpec)
    dashboard: DashboardSpec = Field(default_factory=DashboardSpec)


class IngressSpec(_Model):
    """An Ingress (networking.k8s.io/v1) to the Service."""

    enabled: bool = Field(False, description="Create the Ingress.")
    class_name: str | None = Field(
        None, max_length=253, description="IngressClass name; the cluster default when unset."
    )
    host: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        pattern=HOSTNAME,
        description="Host name routed to the Service.",
    )
    path: str = Field(
        "/", pattern=r"^/", max_length=1024, description="URL path routed to the Service."
    )
    path_type: Literal["Prefix", "Exact", "ImplementationSpecific"] = Field(
        "Prefix", description="How path is matched."
    )
    tls_secret_name: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="TLS Secret for host; no TLS when unset.",
    )
    annotations: Annotations = Field(
        default_factory=dict,
        description="Annotations of the Ingress (controller settings such as body size or "
        "timeouts).",
    )

    rules = (
        Rule(
            "!self.enabled || has(self.host)",
            "an enabled ingress needs host",
            lambda i: not i.enabled or i.host is not None,
            field_path=".host",
            explain="required when ingress is enabled",
        ),
    )


class PodDisruptionBudgetSpec(_Model):
    """A PodDisruptionBudget (policy/v1) for the pods; maxUnavailable 1 unless set."""

    enabled: bool = Field(False, description="Create the PodDisruptionBudget.")
    min_available: IntOrPercent | None = Field(
        None, description="Pods that must stay available (a number or a percentage)."
    )
    max_unavailable: IntOrPercent | None = Field(
        None, description="Pods that may be unavailable (a number or a percentage)."
    )

    rules = (
        Rule(
            "!(has(self.minAvailable) && has(self.maxUnavailable))",
            "set either minAvailable or maxUnavailable",
            lambda p: p.min_available is None or p.max_unavailable is None,
            field_path=".maxUnavailable",
        ),
    )


class ServerSpec(_Model):
    """Settings of the inference server."""

    max_batch_tokens: int = Field(
        DEFAULTS.max_batch_tokens,
        ge=256,
        le=1048576,
        description=f"Token budget of one forward batch ({Env.MAX_BATCH_TOKENS}).",
    )
    max_batch_size: int = Field(
        DEFAULTS.max_batch_size,
        ge=1,
        le=4096,
        description=f"Pairs per forward batch ({Env.BATCH_SIZE}).",
    )
    max_client_batch_size: int = Field(
        DEFAULTS.max_client_batch_size,
        ge=1,
        le=100000,
        description=f"Documents accepted in one request ({Env.MAX_CLIENT_BATCH_SIZE}).",
    )
    max_concurrent_requests: int = Field(
        DEFAULTS.max_concurrent_requests,
        ge=1,
        le=100000,
        description="Requests queued or running before answering 429 "
        f"({Env.MAX_CONCURRENT_REQUESTS}).",
    )
    api_key_secret: ApiKeySecret | None = None
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        DEFAULTS.log_level, description=f"Server log level ({Env.LOG_LEVEL})."
    )


class RerankerServiceSpec(_Model):
    """Desired state of the reranker deployment."""

    model: ModelSpec
    image: ImageSpec = Field(default_factory=ImageSpec)
    replicas: int = Field(
        1,
        ge=0,
        le=1000,
        description="Number of server pods. Ignored by the Deployment while autoscaling is "
        "enabled (then it must lie within [minReplicas, maxReplicas]).",
    )
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    node_selector: dict[
        str, Annotated[str, Field(description="Required value of the node label.")]
    ] = Field(
        default_factory=dict,
        description="Node labels the pods must run on (e.g. a GPU product label).",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=32,
        description="Taints the pods tolerate (e.g. nvidia.com/gpu NoSchedule).",
    )
    affinity: FreeForm | None = Field(
        None,
        description="A Kubernetes pod affinity (nodeAffinity, podAffinity, podAntiAffinity), "
        "copied to the pods.",
    )
    priority_class_name: str | None = Field(
        None, max_length=253, description="PriorityClass of the pods."
    )
    runtime_class_name: str | None = Field(
        None, max_length=253, description="RuntimeClass of the pods (e.g. nvidia)."
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=128,
        description="Extra environment variables of the server container; a name the operator "
        "sets is overridden.",
    )
    env_from: list[EnvFromSource] = Field(
        default_factory=list,
        max_length=32,
        description="ConfigMaps and Secrets whose keys become environment variables of the server.",
    )
    model_cache: ModelCacheSpec = Field(default_factory=ModelCacheSpec)
    hub_token_secret: HubTokenSecret | None = None
    service: ServiceSpec = Field(default_factory=ServiceSpec)
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    ingress: IngressSpec = Field(default_factory=IngressSpec)
    pod_disruption_budget: PodDisruptionBudgetSpec = Field(default_factory=PodDisruptionBudgetSpec)
    server: ServerSpec = Field(default_factory=ServerSpec)
    pod_annotations: Annotations = Field(
        default_factory=dict, description="Extra annotations of the pods."
    )
    pod_labels: Labels = Field(
        default_factory=dict,
        description="Extra labels of the pods (the operator's app.kubernetes.io labels win).",
    )

    rules = (
        Rule(
            "!has(self.autoscaling) || !has(self.autoscaling.enabled) || !self.autoscaling.enabled"
            " || !has(self.replicas) || (self.replicas >= self.autoscaling.minReplicas"
            " && self.replicas <= self.autoscaling.maxReplicas)",
            "replicas must lie within [autoscaling.minReplicas, autoscaling.maxReplicas] when "
            "autoscaling is enabled",
            lambda s: (
                not s.autoscaling.enabled
                or s.autoscaling.min_replicas <= s.replicas <= s.autoscaling.max_replicas
            ),
            field_path=".replicas",
            explain=lambda s: (
                f"{s.replicas} is outside autoscaling [minReplicas, maxReplicas] = "
                f"[{s.autoscaling.min_replicas}, {s.autoscaling.max_replicas}]"
            ),
        ),
        Rule(
            "!has(self.model.quantization) || self.model.quantization == 'none'"
            " || (has(self.resources) && has(self.resources.gpus) && self.resources.gpus >= 1)",
            "model.quantization (8bit/4bit) needs resources.gpus >= 1",
            lambda s: s.model.quantization == "none" or s.resources.gpus >= 1,
            field_path=".model.quantization",
            explain=lambda s: f"{s.model.quantization} quantization needs resources.gpus >= 1",
        ),
        Rule(
            "!has(self.autoscaling) || !has(self.autoscaling.enabled) || !self.autoscaling.enabled"
            " || !has(self.autoscaling.targetCPUUtilization) || (has(self.resources)"
            " && has(self.resources.requests) && has(self.resources.requests.cpu))",
            "targetCPUUtilization needs a CPU request",
            lambda s: (
                not s.autoscaling.enabled
                or s.autoscaling.target_cpu_utilization is None
                or s.resources.requests.cpu is not None
            ),
            field_path=".resources.requests.cpu",
        ),
        Rule(
            "!has(self.autoscaling) || !has(self.autoscaling.enabled) || !self.autoscaling.enabled"
            " || !has(self.autoscaling.targetMemoryUtilization) || (has(self.resources)"
            " && has(self.resources.requests) && has(self.resources.requests.memory))",
            "targetMemoryUtilization needs a memory request",
            lambda s: (
                not s.autoscaling.enabled
                or s.autoscaling.target_memory_utilization is None
                or s.resources.requests.memory is not None
            ),
            field_path=".resources.requests.memory",
        ),
    )


def _loc_to_field(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


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
    for field, message in violations(parsed):
        raise InvalidSpecError(field, message)
    for field, message in unexpressible_problems(parsed):
        raise InvalidSpecError(field, message)
    return parsed
