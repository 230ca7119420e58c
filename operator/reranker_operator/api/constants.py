"""Names shared by the CRD, the renderer and the reconciler."""

from __future__ import annotations

CRD_GROUP = "rerankers.io"
CRD_VERSION = "v1alpha1"
CRD_KIND = "RerankerService"
CRD_PLURAL = "rerankerservices"
CRD_SINGULAR = "rerankerservice"
CRD_SHORT_NAMES = ("rerankers", "reranker", "rrs")
CRD_CATEGORIES = ("all", "ml")  # `kubectl get all` and `kubectl get ml` list RerankerServices
CRD_API_VERSION = f"{CRD_GROUP}/{CRD_VERSION}"

# Where deploy/ runs the operator, and its pods' labels: the server pods' NetworkPolicy admits
# them (the score gate reads each pod's report; spec.networkPolicy.operatorNamespaceLabels)
OPERATOR_NAMESPACE = "reranker-system"
OPERATOR_POD_LABELS = {
    "app.kubernetes.io/name": "reranker-operator",
    "app.kubernetes.io/component": "operator",
}

# which pods honour a setting of the bundled server's request handling (limits, timeouts, long
# documents, back-off): its own engine, and vLLM behind it as the front
BUNDLED_SERVER = "engine transformers, or vllm behind the bundled server: vllm.front, the default"

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
