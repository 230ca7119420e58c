"""Shared pieces of the emulated API: recorded calls, API errors, resource references."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reranker_operator.api.constants import CRD_GROUP, CRD_PLURAL, CRD_VERSION

OUTAGE = "OUTAGE"  # the watch-bus event that ends every open stream (DevCluster.outage)


@dataclass(frozen=True)
class ApiCall:
    """One API request the emulator served, in RBAC terms."""

    verb: str  # get, list, watch, create, update, patch, delete, deletecollection
    group: str  # "" for the core group
    resource: str  # plural, with "/subresource" when there is one
    namespace: str | None
    name: str | None
    user_agent: str
    content_type: str


class EmulatorError(Exception):
    """An API error answered as a Kubernetes Status object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


@dataclass(frozen=True)
class Ref:
    """A resource reference: group, version, plural (what a URL names)."""

    group: str
    version: str
    plural: str

    @classmethod
    def parse(cls, text: str) -> Ref:
        """'apps/v1/deployments', 'v1/services' or 'rerankers.io/v1alpha1/rerankerservices'."""
        parts = text.split("/")
        if len(parts) == 2:
            return cls("", parts[0], parts[1])
        if len(parts) == 3:
            return cls(parts[0], parts[1], parts[2])
        raise ValueError(f"resource reference {text!r} is not group/version/plural")


RERANKERS = Ref(CRD_GROUP, CRD_VERSION, CRD_PLURAL)
DEPLOYMENTS = Ref("apps", "v1", "deployments")
PODS = Ref("", "v1", "pods")


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's Ready condition is True."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
