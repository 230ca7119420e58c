"""Names shared by the CRD, the renderer and the reconciler."""

from __future__ import annotations

from typing import NamedTuple

CRD_GROUP = "rerankers.io"
CRD_VERSION = "v1alpha1"
CRD_KIND = "RerankerService"
CRD_PLURAL = "rerankerservices"
CRD_SINGULAR = "rerankerservice"
CRD_SHORT_NAMES = ("rerankers", "reranker", "rrs")
CRD_CATEGORIES = ("all", "ml")  # `kubectl get all` and `kubectl get ml` list RerankerServices
CRD_API_VERSION = f"{CRD_GROUP}/{CRD_VERSION}"

DEFAULT_IMAGE_REPOSITORY = "ghcr.io/reranker-operator/reranker-server"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
APP_NAME = "reranker"
MANAGER = "reranker-operator"
CONFIG_HASH_ANNOTATION = f"{CRD_GROUP}/config-hash"
RETAINED_ANNOTATION = f"{CRD_GROUP}/retain-on-delete"
# The annotation a Grafana dashboard sidecar is usually told to read folders from
# (grafana chart: sidecar.dashboards.folderAnnotation).
GRAFANA_FOLDER_ANNOTATION = "grafana_folder"


class ChildResource(NamedTuple):
    """A kind the operator may create for a RerankerService."""

    api_version: str
    kind: str
    plural: str


# Every kind render_children can emit, in apply order. Children the spec no longer asks for
# (e.g. the HPA after autoscaling is switched off) are found by these plus the instance label.
CHILD_RESOURCES: tuple[ChildResource, ...] = (
    ChildResource("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ChildResource("apps/v1", "Deployment", "deployments"),
    ChildResource("v1", "Service", "services"),
    ChildResource("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ChildResource("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ChildResource("networking.k8s.io/v1", "Ingress", "ingresses"),
    ChildResource("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
    ChildResource("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules"),
    ChildResource("v1", "ConfigMap", "configmaps"),
)
