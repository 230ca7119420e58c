"""The RerankerService CRD's fixed facts, the parts that are not the spec's schema: metadata,
subresources, printer columns and the status schema (reranker_operator.controller.status writes it).

Names (group, kind, plural, short names, categories) are reranker_operator.api.constants';
`crdgen` puts these facts and the spec models' schema together into crds/rerankerservices.yaml.
"""

from __future__ import annotations

from typing import Any

from reranker_operator.api.constants import (
    APP_NAME,
    CRD_API_VERSION,
    CRD_KIND,
    LABEL_NAME,
    LABEL_PART_OF,
)

CRD_LABELS = {LABEL_NAME: "reranker-operator", LABEL_PART_OF: APP_NAME}

DESCRIPTION = (
    f"{CRD_KIND} deploys a reranker model (Qwen3-Reranker, bge-reranker and other cross-encoders)"
    " behind a Cohere/Jina-compatible /v1/rerank API, with its Service, optional model cache,"
    " autoscaling, monitoring, ingress and disruption budget."
)

# The root properties beside spec and status.
OBJECT_PROPERTIES: dict[str, Any] = {
    "apiVersion": {
        "type": "string",
        "description": f"APIVersion of this object ({CRD_API_VERSION}).",
    },
    "kind": {"type": "string", "description": f"Kind of this object ({CRD_KIND})."},
    # The API server rejects CRDs that constrain metadata beyond name/generateName.
    "metadata": {"type": "object"},
}

SUBRESOURCES: dict[str, Any] = {
    "status": {},
    "scale": {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    },
}

_READY = '.status.conditions[?(@.type=="Ready")]'

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Model",
        "type": "string",
        "description": "The model served (Hugging Face Hub id or path).",
        "jsonPath": ".spec.model.name",
    },
    {
        "name": "Replicas",
        "type": "string",
        "description": "Ready replicas / desired replicas.",
        "jsonPath": ".status.replicaSummary",
    },
    {
        "name": "Ready",
        "type": "string",
        "description": "Status of the Ready condition.",
        "jsonPath": f"{_READY}.status",
    },
    {
        "name": "Endpoint",
        "type": "string",
        "description": "In-cluster URL of the reranking API.",
        "jsonPath": ".status.endpoint",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Engine",
        "type": "string",
        "priority": 1,
        "description": "Inference server: transformers (bundled) or vllm.",
        "jsonPath": ".spec.engine",
    },
    {
        "name": "DType",
        "type": "string",
        "priority": 1,
        "description": "Weight dtype.",
        "jsonPath": ".spec.model.dtype",
    },
    {
        "name": "GPUs",
        "type": "integer",
        "priority": 1,
        "description": "GPUs per replica.",
        "jsonPath": ".spec.resources.gpus",
    },
    {
        "name": "Autoscaling",
        "type": "boolean",
        "priority": 1,
        "description": "Whether a HorizontalPodAutoscaler (or a KEDA ScaledObject) manages the "
        "replicas.",
        "jsonPath": ".spec.autoscaling.enabled",
    },
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "description": "Reason of the Ready condition.",
        "jsonPath": f"{_READY}.reason",
    },
]


def _typed(type_: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, **extra, "description": description}


_GENERATION = {"format": "int64"}

STATUS: dict[str, Any] = {
    "type": "object",
    "description": "Observed state, written by the operator.",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {
        "observedGeneration": _typed(
            "integer", "The metadata.generation this status describes.", **_GENERATION
        ),
        "replicas": _typed(
            "integer", "Pods of the Deployment (the scale subresource's status replicas)."
        ),
        "readyReplicas": _typed("integer", "Pods passing their readiness probe."),
        "replicaSummary": _typed("string", '"ready/desired", shown by kubectl get.'),
        "selector": _typed("string", "Label selector of the pods, for the scale subresource."),
        "endpoint": _typed(
            "string",
            "In-cluster base URL of the API (http://<name>.<namespace>.svc.cluster.local:<port>).",
        ),
        "model": _typed("string", "The model (spec.model.name) this status describes."),
        "conditions": {
            "type": "array",
            "description": "Ready, Progressing and Degraded; one per optional child API the spec "
            "uses (ServiceMonitor, PrometheusRule, ScaledObject, InterceptorRoute, "
            "HTTPScaledObject); ScaledToZero where KEDA may scale to zero.",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "items": {
                "type": "object",
                "description": "A standard Kubernetes condition.",
                "required": ["type", "status"],
                "properties": {
                    "type": _typed("string", "Condition type."),
                    "status": _typed(
                        "string", "Condition status.", enum=["True", "False", "Unknown"]
                    ),
                    "reason": _typed("string", "CamelCase reason."),
                    "message": _typed("string", "Human-readable detail."),
                    "lastTransitionTime": _typed(
                        "string", "When status last changed.", format="date-time"
                    ),
                    "observedGeneration": _typed(
                        "integer",
                        "The metadata.generation the condition describes.",
                        **_GENERATION,
                    ),
                },
            },
        },
    },
}
