"""The RerankerService spec as pydantic models: the one source of its schema, and `parse_spec`.

Every field's description, default, enum, bounds and pattern is stated here, and each
cross-field rule once, as a `Rule` (CEL for the API server, a predicate for the operator) in the
`rules` of the model it belongs to. `make crds` (reranker_operator.api.crdgen) writes the CRD's
openAPIV3Schema from these models; docs/reference.md is generated from that CRD.

A node's CRD description is its field's `description`, else its model's docstring (list items
and map values: their type's).

`parse_spec` validates a spec that may never have gone through an API server
(`reranker-operator render -f`): the models' own constraints, then the rules, then the checks no
schema can express (`speccheck`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from reranker_contract import CPU_BF16_MIN_SPEEDUP, DEFAULTS, PLAYGROUND_PATH, PORT, Env
from reranker_operator.api.access import AuthSpec, NetworkPolicySpec
from reranker_operator.api.autoscaling import AutoscalingSpec
from reranker_operator.api.base import InvalidSpecError, SpecModel
from reranker_operator.api.cel_rules import Rule, violations
from reranker_operator.api.cel_terms import AUTOSCALING as _AUTOSCALING
from reranker_operator.api.cel_terms import CUDA as _CUDA
from reranker_operator.api.checks import unexpressible_problems
from reranker_operator.api.constants import BUNDLED_SERVER, DEFAULT_IMAGE_REPOSITORY
from reranker_operator.api.engine_choice import ENGINE_DESCRIPTION, EngineName, SpecRules
from reranker_operator.api.families import AUTO, FAMILY_DESCRIPTION, FamilyChoice, is_yes_no_causal
from reranker_operator.api.fieldtypes import (
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
from reranker_operator.api.gpu import DraSpec, MigSpec, SharedGpuSpec
from reranker_operator.api.score_check import DESCRIPTION as SCORE_CHECK_DESCRIPTION
from reranker_operator.api.score_check import ScoreCheckSpec
from reranker_operator.api.scoring import (
    ATTENTION_DESCRIPTION,
    AttentionImplementation,
    ScoreCacheSpec,
)
from reranker_operator.api.termination import DESCRIPTION as TERMINATION_DESCRIPTION
from reranker_operator.api.termination import TerminationSpec
from reranker_operator.engines import DEFAULT_ENGINE
from reranker_operator.engines.base import CheckPlace
from reranker_operator.engines.vllm.settings import VllmSpec


class ModelSpec(SpecModel):
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
    family: FamilyChoice = Field(AUTO, description=FAMILY_DESCRIPTION)
    instruction: str | None = Field(
        None,
        max_length=4096,
        description="Default task instruction for instruction-aware rerankers (Qwen3).",
    )
    max_length: int | None = Field(
        None,
        ge=16,
        le=131072,
        description="Maximum tokens of one query-document sequence (longer documents are "
        "truncated). Unset: engine transformers takes the model's limit capped at "
        f"{DEFAULTS.max_sequence_length}, so one sequence stays within the default batch budget "
        "(server.maxBatchTokens) the warm-up reserves memory for (set it to go further); "
        "engine vllm takes the model's own limit (no --max-model-len).",
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto",
        description="Weight dtype. auto on engine transformers: on a GPU bfloat16 (compute "
        "capability >= 8.0) else float16; on a CPU bfloat16 where the CPU computes it natively "
        f"(AVX512-BF16/AMX) and a start-up matmul check measures it >= {CPU_BF16_MIN_SPEEDUP}x "
        "float32, else float32 (the server logs which and why). auto on engine vllm is vLLM's: "
        "float16 for float32/float16 checkpoints, bfloat16 for bfloat16 ones. Set float32 to "
        "compare scores with a float32 reference.",
    )
    quantization: Literal["none", "8bit", "4bit"] = Field(
        "none",
        description="bitsandbytes weight quantization; needs a GPU (resources.gpus, mig, "
        "sharedGpu or dra).",
    )
    attention_implementation: AttentionImplementation | None = Field(
        None, description=ATTENTION_DESCRIPTION
    )
    trust_remote_code: bool = Field(
        False, description="Allow model repositories to run their own Python code."
    )

    def is_causal(self) -> bool:
        """Whether this is a yes/no causal reranker (Qwen3-style), as the operator can tell
        without the model's config (`reranker_operator.api.families`)."""
        return is_yes_no_causal(self.family, self.name)


class ImageSpec(SpecModel):
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


class ResourceAmounts(SpecModel):
    """CPU and memory amounts."""

    cpu: Quantity | None = Field(None, description="A CPU quantity such as 500m or 2.")
    memory: Quantity | None = Field(None, description="A memory quantity such as 4Gi.")


_WHOLE = "(has(self.gpus) && self.gpus > 0)"


class ResourcesSpec(SpecModel):
    """Compute resources of each server pod. The GPU, if any, comes one way: whole GPUs
    (gpus), a MIG slice (mig), a shared GPU (sharedGpu) or a DRA claim (dra); each runs the
    model on CUDA."""

    gpus: int = Field(
        0,
        ge=0,
        le=16,
        description="Whole NVIDIA GPUs per pod (nvidia.com/gpu); > 0 runs the model on CUDA.",
    )
    mig: MigSpec | None = None
    shared_gpu: SharedGpuSpec | None = None
    dra: DraSpec | None = None
    requests: ResourceAmounts = Field(
        default_factory=lambda: ResourceAmounts(cpu="1", memory="4Gi"),
        description="CPU and memory requests.",
    )
    limits: ResourceAmounts = Field(
        default_factory=ResourceAmounts,
        description="CPU and memory limits (must not be below the requests).",
    )

    rules = (
        Rule(
            f"!(has(self.mig) && {_WHOLE})",
            "set either mig (one MIG slice) or gpus (whole GPUs), not both: the server uses "
            "one CUDA device",
            lambda r: r.mig is None or r.gpus == 0,
            field_path=".mig",
        ),
        Rule(
            f"!(has(self.sharedGpu) && ({_WHOLE} || has(self.mig)))",
            "sharedGpu asks for a share of one GPU: drop gpus and mig",
            lambda r: r.shared_gpu is None or (r.gpus == 0 and r.mig is None),
            field_path=".sharedGpu",
        ),
        Rule(
            f"!(has(self.dra) && ({_WHOLE} || has(self.mig) || has(self.sharedGpu)))",
            "dra claims the pod's device: drop the extended resources gpus, mig and sharedGpu "
            "(they would ask for a second device)",
            lambda r: r.dra is None or (r.gpus == 0 and r.mig is None and r.shared_gpu is None),
            field_path=".dra",
        ),
    )

    def on_gpu(self) -> bool:
        """Whether the pod gets a CUDA device, whichever way it asks for one."""
        return self.gpus > 0 or any(x is not None for x in (self.mig, self.shared_gpu, self.dra))


class Toleration(SpecModel):
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


class SecretKeyRef(SpecModel):
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


class EnvVar(SpecModel):
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


class EnvFromRef(SpecModel):
    """A ConfigMap or Secret in the same namespace."""

    name: str = Field(min_length=1, max_length=253, description="Object name.")
    optional: bool | None = Field(None, description="Start the pod even if the object is missing.")


class EnvFromSource(SpecModel):
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


CacheMode = Literal["Shared", "PerPod"]
MULTI_NODE_MODES = ("ReadWriteMany", "ReadOnlyMany")  # a volume any number of nodes may attach


class ModelCacheSpec(SpecModel):
    """Where downloaded weights live. Disabled: an emptyDir per pod (downloaded at every start).
    Enabled, mode Shared: one PersistentVolumeClaim every replica mounts (filled once; replicas
    on several nodes need ReadWriteMany). Enabled, mode PerPod: a generic ephemeral volume per
    pod (its own ReadWriteOnce claim on its own node, deleted with the pod)."""

    enabled: bool = Field(False, description="Use a PersistentVolumeClaim for the model cache.")
    mode: CacheMode = Field(
        "Shared",
        description="Shared: one claim (created, or existingClaim) mounted by every replica; "
        "more than one replica needs accessModes ReadWriteMany (the first pod downloads, the "
        "others find the files). PerPod: each pod gets its own claim from storageClassName and "
        "size (a generic ephemeral volume), for clusters without shared storage; the model is "
        "downloaded at each pod start.",
    )
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
        description="Access modes of the created claim (mode Shared) or of each pod's claim "
        "(mode PerPod); ReadWriteMany lets replicas on several nodes share one claim.",
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
        Rule(
            "!has(self.mode) || self.mode != 'PerPod' || !has(self.existingClaim)",
            "mode PerPod creates a claim per pod from size: existingClaim is for mode Shared",
            lambda c: c.mode != "PerPod" or c.existing_claim is None,
            field_path=".existingClaim",
        ),
        Rule(
            "!has(self.mode) || self.mode != 'PerPod' || !has(self.retainOnDelete)"
            " || !self.retainOnDelete",
            "mode PerPod claims go with their pods: retainOnDelete is for mode Shared",
            lambda c: c.mode != "PerPod" or not c.retain_on_delete,
            field_path=".retainOnDelete",
        ),
        Rule(
            "!has(self.accessModes) || self.accessModes.exists(m, m != 'ReadOnlyMany')",
            "the pods' download init container writes the cache: accessModes needs "
            "ReadWriteOnce, ReadWriteOncePod or ReadWriteMany",
            lambda c: any(m != "ReadOnlyMany" for m in c.access_modes),
            field_path=".accessModes",
        ),
    )

    def is_shared(self) -> bool:
        """Enabled in mode Shared: one claim (created, or existingClaim) every replica mounts."""
        return self.enabled and self.mode == "Shared"

    def is_per_pod(self) -> bool:
        """Enabled in mode PerPod: a generic ephemeral volume, a claim per pod."""
        return self.enabled and self.mode == "PerPod"

    def one_node_only(self) -> bool:
        """Whether the one shared claim the operator creates can be attached on one node only
        (no ReadWriteMany / ReadOnlyMany: block storage), so replicas elsewhere cannot start."""
        return (
            self.is_shared()
            and self.existing_claim is None
            and not set(self.access_modes) & set(MULTI_NODE_MODES)
        )


class ServiceSpec(SpecModel):
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


class ServiceMonitorSpec(SpecModel):
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


class PrometheusRuleSpec(SpecModel):
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
        "prefix path turned off); engine vllm: when fewer than this share of prompt tokens hit "
        "vLLM's prefix cache.",
    )
    kv_cache_usage_ratio: float = Field(
        0.95,
        ge=0.01,
        le=1,
        description="Engine vllm: alert when a pod's KV-cache usage exceeds this fraction (the "
        "guides keep it between 70% and 95%).",
    )


def _grafana_sidecar_labels() -> dict[str, str]:
    return {"grafana_dashboard": "1"}


class DashboardSpec(SpecModel):
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


class MetricsSpec(SpecModel):
    """Monitoring of the server's Prometheus /metrics."""

    service_monitor: ServiceMonitorSpec = Field(default_factory=ServiceMonitorSpec)
    prometheus_rule: PrometheusRuleSpec = Field(default_factory=PrometheusRuleSpec)
    dashboard: DashboardSpec = Field(default_factory=DashboardSpec)


class IngressSpec(SpecModel):
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


class PodDisruptionBudgetSpec(SpecModel):
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


class ServerSpec(SpecModel):
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
    max_request_bytes: int = Field(
        DEFAULTS.max_request_bytes,
        ge=1024,
        le=256 * 1024 * 1024,
        description="Largest request body in bytes on the scoring routes; a larger one is "
        "answered 413 before it is read, so no client can fill the pod's memory "
        f"({Env.MAX_REQUEST_BYTES}; {BUNDLED_SERVER}).",
    )
    max_request_tokens: int = Field(
        DEFAULTS.max_request_tokens,
        ge=1,
        le=16777216,
        description="Most tokens one request may score, after truncation; more is answered 413 "
        "before any scoring, so one request cannot hold the model for minutes "
        f"({Env.MAX_REQUEST_TOKENS}; {BUNDLED_SERVER}).",
    )
    max_queued_tokens: int = Field(
        DEFAULTS.max_queued_tokens,
        ge=1,
        le=268435456,
        description="Most tokens waiting to be scored in one pod, every request together; a "
        "request that would go beyond is answered 429, bounding queue memory and queue time "
        f"({Env.MAX_QUEUED_TOKENS}; {BUNDLED_SERVER}). At least maxRequestTokens.",
    )
    header_timeout_seconds: int = Field(
        DEFAULTS.header_timeout_seconds,
        ge=1,
        le=300,
        description="Seconds a connection has to send a request's line and headers before it "
        "is closed, so slow clients cannot hold connections open "
        f"({Env.HEADER_TIMEOUT_SECONDS}; {BUNDLED_SERVER}).",
    )
    body_timeout_seconds: int = Field(
        DEFAULTS.body_timeout_seconds,
        ge=1,
        le=3600,
        description="Seconds a client has to send a request's body, answered 408 after it, so "
        f"a slowly sent body cannot hold a connection ({Env.BODY_TIMEOUT_SECONDS}; "
        f"{BUNDLED_SERVER}).",
    )
    long_documents: Literal["truncate", "chunk"] = Field(
        DEFAULTS.long_documents,  # type: ignore[arg-type]
        description="A document longer than the model's max length: truncate cuts it to fit "
        "(counted in each response and reranker_truncated_documents_total); chunk scores it "
        "whole, in overlapping windows that fit, the document taking the max of its windows' "
        f"scores, so a passage deep in it still ranks it ({Env.LONG_DOCUMENTS}; a request's "
        f"long_documents overrides it; {BUNDLED_SERVER}).",
    )
    chunk_overlap_tokens: int = Field(
        DEFAULTS.chunk_overlap_tokens,
        ge=0,
        le=8192,
        description="Tokens consecutive windows of a chunked document share, at most a quarter "
        f"window ({Env.CHUNK_OVERLAP_TOKENS}).",
    )
    max_chunks_per_document: int = Field(
        DEFAULTS.max_chunks_per_document,
        ge=1,
        le=4096,
        description="Most windows one chunked document may become; more is answered 413 "
        f"({Env.MAX_CHUNKS_PER_DOCUMENT}).",
    )
    api_key_secret: ApiKeySecret | None = None
    score_cache: ScoreCacheSpec = Field(default_factory=ScoreCacheSpec)
    auth: AuthSpec = Field(default_factory=AuthSpec)
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        DEFAULTS.log_level, description=f"Server log level ({Env.LOG_LEVEL})."
    )
    compile_kernels: bool = Field(
        False,
        description="Compile the bundled server's CPU decoder path (causal rerankers such as "
        "Qwen3-Reranker) into fused kernels with torch.compile: norms, rotary embedding, SwiGLU "
        f"and the attention merge as one loop each ({Env.COMPILE_KERNELS}). Measured 1.05x pairs/s "
        "in the server on Qwen3-Reranker-0.6B's shapes in bfloat16 on 2 vCPUs (1.15x on one "
        "thread; docs/engine.md); costs seconds of "
        "compiling per pod start (cached on the model-cache volume) and needs the image's C++ "
        "compiler. CPU pods only; GPU forwards do not take this path.",
    )
    playground: bool = Field(
        True,
        description=f"Serve the browser playground at {PLAYGROUND_PATH} ({Env.PLAYGROUND}): "
        "on by default for the first check after deploying; it only calls the scoring API, "
        "with the key the user types. Turn it off where no browser should reach the server.",
    )
    metrics_port: int | None = Field(
        None,
        ge=1024,
        le=65535,
        description=f"Serve /metrics on this port instead of {PORT} ({Env.METRICS_PORT}), so "
        "the NetworkPolicy can open it to Prometheus alone.",
    )
    request_timeout_seconds: int = Field(
        DEFAULTS.request_timeout_seconds,
        ge=1,
        le=3600,
        description="The longest a request may run, queue included: the bundled server answers "
        f"504 after it ({Env.REQUEST_TIMEOUT_SECONDS}); vLLM waits this long for the requests "
        "in flight after SIGTERM (--shutdown-timeout). The pod's grace period is sized from it "
        "(spec.termination).",
    )

    rules = (
        Rule(
            f"!has(self.metricsPort) || self.metricsPort != {PORT}",
            f"metricsPort must differ from the server port {PORT}",
            lambda s: s.metrics_port != PORT,
            field_path=".metricsPort",
        ),
        Rule(
            "self.maxQueuedTokens >= self.maxRequestTokens",
            "maxQueuedTokens must be at least maxRequestTokens",
            lambda s: s.max_queued_tokens >= s.max_request_tokens,
            field_path=".maxQueuedTokens",
            explain=lambda s: (
                f"must be >= server.maxRequestTokens ({s.max_queued_tokens} < "
                f"{s.max_request_tokens}): a pod queues at least one largest request"
            ),
        ),
    )


_KEDA = (
    "(has(self.autoscaling.keda) && has(self.autoscaling.keda.enabled)"
    " && self.autoscaling.keda.enabled)"
)
_TO_ZERO = (
    f"({_KEDA} && has(self.autoscaling.keda.scaleToZero) && self.autoscaling.keda.scaleToZero)"
)
_ONE_NODE_CLAIM = (  # mirrors ModelCacheSpec.one_node_only
    "(has(self.modelCache) && has(self.modelCache.enabled) && self.modelCache.enabled"
    " && (!has(self.modelCache.mode) || self.modelCache.mode == 'Shared')"
    " && !has(self.modelCache.existingClaim) && (!has(self.modelCache.accessModes)"
    " || !self.modelCache.accessModes.exists(m, m == 'ReadWriteMany' || m == 'ReadOnlyMany')))"
)
_TARGETS = (
    "targetCPUUtilization",
    "targetMemoryUtilization",
    "queuedPairsPerPod",
    "queuedTokensPerPod",
    "requestsPerSecond",
    "p95LatencySeconds",
)


class RerankerServiceSpec(SpecModel):
    """Desired state of the reranker deployment."""

    model: ModelSpec
    engine: EngineName = Field(DEFAULT_ENGINE, description=ENGINE_DESCRIPTION)
    image: ImageSpec = Field(default_factory=ImageSpec)
    vllm: VllmSpec = Field(default_factory=VllmSpec)
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
    termination: TerminationSpec = Field(
        default_factory=TerminationSpec, description=TERMINATION_DESCRIPTION
    )
    score_check: ScoreCheckSpec = Field(
        default_factory=ScoreCheckSpec, description=SCORE_CHECK_DESCRIPTION
    )
    network_policy: NetworkPolicySpec = Field(default_factory=NetworkPolicySpec)
    pod_annotations: Annotations = Field(
        default_factory=dict, description="Extra annotations of the pods."
    )
    pod_labels: Labels = Field(
        default_factory=dict,
        description="Extra labels of the pods (the operator's app.kubernetes.io labels win).",
    )

    # the spec's own rules, and at each CheckPlace every registered engine's checks (guarded by
    # its name): the CRD lists them in this order
    rules = SpecRules(
        (
            Rule(
                f"!{_AUTOSCALING} || !has(self.replicas) || (self.replicas >= ({_TO_ZERO} ? 0 : "
                "self.autoscaling.minReplicas) && self.replicas <= self.autoscaling.maxReplicas)",
                "replicas must lie within [autoscaling.minReplicas (0 with keda.scaleToZero), "
                "autoscaling.maxReplicas] when autoscaling is enabled",
                lambda s: (
                    not s.autoscaling.enabled
                    or s.autoscaling.lower_bound() <= s.replicas <= s.autoscaling.max_replicas
                ),
                field_path=".replicas",
                explain=lambda s: (
                    f"{s.replicas} is outside autoscaling [minReplicas, maxReplicas] = "
                    f"[{s.autoscaling.lower_bound()}, {s.autoscaling.max_replicas}]"
                ),
            ),
            Rule(
                f"!{_AUTOSCALING} || {_CUDA} || {_KEDA} || "
                + " || ".join(f"has(self.autoscaling.{t})" for t in _TARGETS),
                "enabled autoscaling of a CPU model needs a target (" + ", ".join(_TARGETS) + "); "
                "GPU models and KEDA scale on queuedPairsPerPod by default",
                lambda s: (
                    not s.autoscaling.enabled
                    or s.resources.on_gpu()
                    or s.autoscaling.keda.enabled
                    or bool(s.autoscaling.named_targets())
                ),
                field_path=".autoscaling",
                explain="enabled autoscaling of a CPU model needs at least one of "
                + ", ".join(_TARGETS),
            ),
        ),
        CheckPlace.RESOURCES,
        (
            Rule(
                "!has(self.networkPolicy) || !has(self.networkPolicy.enabled)"
                " || !self.networkPolicy.enabled || !has(self.ingress) || !has(self.ingress.enabled)"
                " || !self.ingress.enabled || has(self.networkPolicy.ingressControllerNamespaceLabels)",
                "with an Ingress, the NetworkPolicy needs ingressControllerNamespaceLabels (the "
                "ingress controller's namespace) or networkPolicy.enabled false",
                lambda s: (
                    not s.network_policy.enabled
                    or not s.ingress.enabled
                    or s.network_policy.ingress_controller_namespace_labels is not None
                ),
                field_path=".networkPolicy.ingressControllerNamespaceLabels",
            ),
            Rule(
                f"!{_AUTOSCALING} || !{_KEDA} || (has(self.metrics) && has(self.metrics.serviceMonitor)"
                " && has(self.metrics.serviceMonitor.enabled) && self.metrics.serviceMonitor.enabled)",
                "keda needs metrics.serviceMonitor.enabled: its triggers read the series Prometheus "
                "scrapes through the ServiceMonitor (labels namespace and job)",
                lambda s: (
                    not s.autoscaling.enabled
                    or not s.autoscaling.keda.enabled
                    or s.metrics.service_monitor.enabled
                ),
                field_path=".metrics.serviceMonitor.enabled",
            ),
        ),
        CheckPlace.FEATURES,
        (
            Rule(
                "!has(self.server) || !has(self.server.compileKernels)"
                " || !self.server.compileKernels || !(" + _CUDA + ")",
                "server.compileKernels compiles the CPU decoder path; a GPU pod (resources.gpus, "
                "mig, sharedGpu or dra) does not take it",
                lambda s: not s.server.compile_kernels or not s.resources.on_gpu(),
                field_path=".server.compileKernels",
            ),
            Rule(
                "!has(self.model.attentionImplementation)"
                " || self.model.attentionImplementation != 'flash_attention_2' || " + _CUDA,
                "model.attentionImplementation flash_attention_2 needs a GPU (resources.gpus, "
                "mig, sharedGpu or dra)",
                lambda s: (
                    s.model.attention_implementation != "flash_attention_2" or s.resources.on_gpu()
                ),
                field_path=".model.attentionImplementation",
            ),
        ),
        CheckPlace.SETTINGS,
        (
            Rule(
                "!has(self.model.quantization) || self.model.quantization == 'none' || " + _CUDA,
                "model.quantization (8bit/4bit) needs a GPU (resources.gpus, mig, sharedGpu "
                "or dra)",
                lambda s: s.model.quantization == "none" or s.resources.on_gpu(),
                field_path=".model.quantization",
                explain=lambda s: (
                    f"{s.model.quantization} quantization needs a GPU (resources.gpus, mig, "
                    "sharedGpu or dra)"
                ),
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
            Rule(
                f"!{_ONE_NODE_CLAIM} || !((has(self.replicas) && self.replicas > 1) || ({_AUTOSCALING}"
                " && (!has(self.autoscaling.maxReplicas) || self.autoscaling.maxReplicas > 1)))",
                "more than one replica (replicas, or autoscaling.maxReplicas) would share one "
                "ReadWriteOnce claim, which only one node can attach (replicas elsewhere never "
                "start: Multi-Attach): set modelCache.accessModes [ReadWriteMany] (shared storage) or "
                "modelCache.mode PerPod (a claim per pod)",
                lambda s: not s.model_cache.one_node_only() or s.max_pods() <= 1,
                field_path=".modelCache.accessModes",
                explain=lambda s: (
                    f"up to {s.max_pods()} replicas would share one {'/'.join(s.model_cache.access_modes)} "
                    "claim, which only one node can attach (Multi-Attach): use accessModes "
                    "[ReadWriteMany] or modelCache.mode PerPod"
                ),
            ),
        ),
    )

    def max_pods(self) -> int:
        """The most server pods this spec may run at once (rolling-update surge aside)."""
        return self.autoscaling.max_replicas if self.autoscaling.enabled else self.replicas


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
