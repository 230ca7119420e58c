"""Names, labels, owner references and metadata of a RerankerService's children."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reranker_operator.api.constants import (
    APP_NAME,
    CRD_API_VERSION,
    CRD_KIND,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_PART_OF,
    MANAGER,
)

if TYPE_CHECKING:
    from reranker_operator.render.service import ParsedService


def selector_labels(instance: str) -> dict[str, str]:
    """The stable labels a Deployment selects its pods by (never change after creation)."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: instance}


def child_labels(instance: str, component: str) -> dict[str, str]:
    """Labels every child carries; `instance` finds all children of one RerankerService."""
    return {
        **selector_labels(instance),
        LABEL_MANAGED_BY: MANAGER,
        LABEL_COMPONENT: component,
        LABEL_PART_OF: APP_NAME,
    }


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    """The controller owner reference pointing at the RerankerService."""
    return {
        "apiVersion": CRD_API_VERSION,
        "kind": CRD_KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def model_cache_claim_name(instance: str) -> str:
    """Name of the PVC the operator creates for the model cache."""
    return f"{instance}-model-cache"


def gpu_claim_template_name(instance: str, request_hash: str) -> str:
    """Name of the ResourceClaimTemplate of spec.resources.dra: a template is immutable, so a
    changed request is a new template (the old one is pruned once no pod template names it)."""
    return f"{instance}-gpu-{request_hash}"


def score_probes_config_map_name(instance: str) -> str:
    """Name of the rendered ConfigMap of the resource's score-check probes."""
    return f"{instance}-score-probes"


def score_record_config_map_name(instance: str) -> str:
    """Name of the ConfigMap the operator writes the score record to (never rendered)."""
    return f"{instance}-score-record"


def proxy_service_name(instance: str) -> str:
    """Name of the Service clients connect to while KEDA may scale the Deployment to zero."""
    return f"{instance}-proxy"


def object_meta(
    svc: ParsedService,
    component: str,
    *,
    name: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    owned: bool = True,
) -> dict[str, Any]:
    """A child's metadata: our labels win over `extra_labels`; the owner reference is set when
    the RerankerService has a uid and `owned`."""
    meta: dict[str, Any] = {
        "name": name or svc.name,
        "namespace": svc.namespace,
        "labels": {**(extra_labels or {}), **child_labels(svc.name, component)},
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    if owned and svc.uid:
        meta["ownerReferences"] = [owner_reference(svc.name, svc.uid)]
    return meta
