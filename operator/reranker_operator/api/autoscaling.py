"""`spec.autoscaling`: what the Deployment scales on (a HorizontalPodAutoscaler) or, with
`keda`, a KEDA ScaledObject that may scale to zero behind the KEDA HTTP add-on's interceptor."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from reranker_contract import DEFAULT_QUEUED_PAIRS_PER_POD
from reranker_operator.api.base import SpecModel
from reranker_operator.api.cel_rules import Rule
from reranker_operator.api.fieldtypes import (
    DNS1035_LABEL,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    DURATION,
    HOSTNAME,
    Quantity,
)


class ScalingPolicy(SpecModel):
    """One scaling policy."""

    type: Literal["Pods", "Percent"] = Field(description="Pods (absolute) or Percent (relative).")
    value: int = Field(ge=1, description="Amount of change allowed.")
    period_seconds: int = Field(ge=1, le=1800, description="Window the policy applies to.")


class ScalingRules(SpecModel):
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


class ScalingBehavior(SpecModel):
    """Scaling behavior, as in autoscaling/v2 HorizontalPodAutoscalerBehavior."""

    scale_up: ScalingRules | None = Field(None, description="Rules for scaling up.")
    scale_down: ScalingRules | None = Field(None, description="Rules for scaling down.")


class InterceptorSpec(SpecModel):
    """The KEDA HTTP add-on (v0.14+) that holds requests while no pod runs and wakes the
    Deployment: an InterceptorRoute to the Service, a `<name>-proxy` Service (ExternalName) that
    clients connect to, and an external-push trigger on the ScaledObject."""

    api: Literal["InterceptorRoute", "HTTPScaledObject"] = Field(
        "InterceptorRoute",
        description="InterceptorRoute (http.keda.sh/v1beta1, add-on v0.14+: one ScaledObject "
        "with the queued-pairs and the add-on's triggers) or HTTPScaledObject "
        "(http.keda.sh/v1alpha1, older add-ons: the add-on creates the ScaledObject and scales "
        "on in-flight requests only).",
    )
    namespace: str = Field(
        "keda",
        min_length=1,
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Namespace the add-on runs in.",
    )
    proxy_service: str = Field(
        "keda-add-ons-http-interceptor-proxy",
        min_length=1,
        max_length=63,
        pattern=DNS1035_LABEL,
        description="The add-on's interceptor proxy Service.",
    )
    proxy_port: int = Field(8080, ge=1, le=65535, description="Its port.")
    scaler_address: str = Field(
        "keda-add-ons-http-external-scaler.keda:9090",
        min_length=3,
        max_length=512,
        pattern=r"^[^\s:]+:[0-9]{1,5}$",
        description="host:port of the add-on's external scaler (the external-push trigger).",
    )
    hosts: list[
        Annotated[str, Field(max_length=253, pattern=HOSTNAME, description="A host name.")]
    ] = Field(
        default_factory=list,
        max_length=16,
        description="Extra Host headers routed to this service (an Ingress host); the "
        "<name>-proxy Service's names are always routed.",
    )
    target_concurrency: int = Field(
        8,
        ge=1,
        le=100000,
        description="In-flight requests per pod the add-on's trigger aims at (its "
        "scalingMetric.concurrency).",
    )
    readiness_timeout: str = Field(
        "10m",
        pattern=DURATION,
        min_length=2,
        description="How long the interceptor holds a request while a pod starts from zero "
        "(model download and load included).",
    )


class KedaSpec(SpecModel):
    """A KEDA ScaledObject (keda.sh/v1alpha1) instead of the HPA: a Prometheus trigger per
    custom target (queued pairs unless another is named), CPU/memory triggers for utilization
    targets, and with scaleToZero the HTTP add-on in front so no request is refused at zero."""

    enabled: bool = Field(False, description="Scale with KEDA instead of an HPA.")
    prometheus_address: str | None = Field(
        None,
        min_length=8,
        max_length=1024,
        pattern=r"^https?://[^\s]+$",
        description="Prometheus base URL the triggers query, e.g. "
        "http://prometheus-operated.monitoring.svc:9090.",
    )
    authentication_ref: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="A TriggerAuthentication in the same namespace for that Prometheus.",
    )
    activation_threshold: Quantity = Field(
        "0",
        description="Queued pairs (per pod, averaged) above which KEDA activates the "
        "Deployment from its minimum.",
    )
    polling_interval: int = Field(
        15, ge=1, le=3600, description="Seconds between KEDA's trigger checks."
    )
    cooldown_period: int = Field(
        300,
        ge=0,
        le=86400,
        description="Seconds without activity before scaling to zero (scaleToZero only).",
    )
    scale_to_zero: bool = Field(
        False,
        description="minReplicaCount 0, with the HTTP add-on's interceptor holding requests "
        "while no pod runs (clients connect to <name>-proxy).",
    )
    interceptor: InterceptorSpec = Field(default_factory=InterceptorSpec)

    rules = (
        Rule(
            "!self.enabled || has(self.prometheusAddress)",
            "enabled KEDA needs prometheusAddress",
            lambda k: not k.enabled or k.prometheus_address is not None,
            field_path=".prometheusAddress",
            explain="required when keda is enabled (the triggers query that Prometheus)",
        ),
        Rule(
            "!self.scaleToZero || self.enabled",
            "scaleToZero needs keda.enabled",
            lambda k: not k.scale_to_zero or k.enabled,
            field_path=".scaleToZero",
        ),
    )


class AutoscalingSpec(SpecModel):
    """Scaling of the Deployment, by a HorizontalPodAutoscaler (autoscaling/v2) or, with
    keda.enabled, a KEDA ScaledObject. The custom targets (queuedPairsPerPod,
    queuedTokensPerPod, requestsPerSecond, p95LatencySeconds) are per-pod metrics Prometheus
    Adapter serves (deploy/prometheus-adapter) or KEDA's Prometheus triggers query. With no
    target named, a GPU model (or KEDA) scales on queuedPairsPerPod {default}."""

    enabled: bool = Field(False, description="Scale the Deployment automatically.")
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
    queued_pairs_per_pod: Quantity | None = Field(
        None,
        description="Target (query, document) pairs waiting per pod (the server's "
        "reranker_queue_depth; engine vllm: vllm:num_requests_waiting). The default target "
        "of GPU models.",
    )
    queued_tokens_per_pod: Quantity | None = Field(
        None,
        description="Target tokens of the pairs waiting per pod (reranker_queued_tokens; not "
        "with engine vllm).",
    )
    requests_per_second: Quantity | None = Field(
        None,
        description="Target rerank requests per second per pod (quantity, e.g. 20 or 500m).",
    )
    p95_latency_seconds: Quantity | None = Field(
        None,
        description="Target per-pod p95 request latency in seconds (quantity, e.g. 500m).",
    )
    behavior: ScalingBehavior | None = None
    keda: KedaSpec = Field(default_factory=KedaSpec)

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
            "!has(self.keda) || !has(self.keda.enabled) || !self.keda.enabled || self.enabled",
            "keda needs autoscaling.enabled",
            lambda a: not a.keda.enabled or a.enabled,
            field_path=".keda.enabled",
        ),
    )

    def named_targets(self) -> list[str]:
        """The targets the resource names, in their spec names."""
        fields = (
            "target_cpu_utilization",
            "target_memory_utilization",
            "queued_pairs_per_pod",
            "queued_tokens_per_pod",
            "requests_per_second",
            "p95_latency_seconds",
        )
        return [
            type(self).model_fields[f].alias or f for f in fields if getattr(self, f) is not None
        ]

    def uses_hpa(self) -> bool:
        """Whether a HorizontalPodAutoscaler scales the Deployment."""
        return self.enabled and not self.keda.enabled

    def uses_keda(self) -> bool:
        """Whether a KEDA ScaledObject (or the HTTP add-on's) scales the Deployment."""
        return self.enabled and self.keda.enabled

    def scales_to_zero(self) -> bool:
        """Whether KEDA may scale the Deployment to zero, behind the HTTP add-on."""
        return self.uses_keda() and self.keda.scale_to_zero

    def lower_bound(self) -> int:
        """The fewest replicas this autoscaling may leave: 0 when it scales to zero."""
        return 0 if self.keda.enabled and self.keda.scale_to_zero else self.min_replicas


AutoscalingSpec.__doc__ = (AutoscalingSpec.__doc__ or "").format(
    default=DEFAULT_QUEUED_PAIRS_PER_POD
)
