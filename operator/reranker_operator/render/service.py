"""A RerankerService as the operator reads it: metadata checked, spec parsed, once per pass."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reranker_operator.api.spec import (
    DNS1035_LABEL,
    DNS1123_LABEL,
    InvalidSpecError,
    RerankerServiceSpec,
    parse_spec,
)
from reranker_operator.render.labels import proxy_service_name, selector_labels


@dataclass(frozen=True)
class ParsedService:
    """The identity and the parsed spec of one RerankerService."""

    name: str
    namespace: str
    uid: str | None  # None outside an API server (`render -f`): no owner references then
    generation: int
    spec: RerankerServiceSpec

    @property
    def scales_to_zero(self) -> bool:
        """Whether KEDA may scale its Deployment to zero (behind the HTTP add-on)."""
        return self.spec.autoscaling.scales_to_zero()

    @property
    def endpoint(self) -> str:
        """The in-cluster base URL clients use: its Service, or while it may scale to zero the
        <name>-proxy name routed through the KEDA HTTP add-on's interceptor."""
        if self.scales_to_zero:
            port = self.spec.autoscaling.keda.interceptor.proxy_port
            return (
                f"http://{proxy_service_name(self.name)}.{self.namespace}.svc.cluster.local:{port}"
            )
        return f"http://{self.name}.{self.namespace}.svc.cluster.local:{self.spec.service.port}"

    @property
    def selector(self) -> str:
        """The label selector of its pods (the scale subresource's `status.selector`)."""
        return ",".join(f"{k}={v}" for k, v in selector_labels(self.name).items())


def parse_service(cr: Mapping[str, Any]) -> ParsedService:
    """Check a RerankerService's metadata and parse its spec; raises InvalidSpecError."""
    if not isinstance(cr, Mapping):
        raise InvalidSpecError("", "the RerankerService must be a mapping")
    meta = cr.get("metadata")
    if not isinstance(meta, Mapping):
        raise InvalidSpecError("metadata", "missing metadata")
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > 63 or not re.fullmatch(DNS1035_LABEL, name):
        raise InvalidSpecError(
            "metadata.name",
            f"{name!r} must be a DNS-1035 label (lowercase letters, digits, '-', "
            "starting with a letter, at most 63 characters): it names the Service",
        )
    namespace = meta.get("namespace") or "default"
    if (
        not isinstance(namespace, str)
        or not re.fullmatch(DNS1123_LABEL, namespace)
        or len(namespace) > 63
    ):
        raise InvalidSpecError("metadata.namespace", f"{namespace!r} is not a namespace name")
    uid = meta.get("uid")
    spec = cr.get("spec")
    if spec is None:
        raise InvalidSpecError("", "missing spec")
    return ParsedService(
        name=name,
        namespace=namespace,
        uid=uid if isinstance(uid, str) and uid else None,
        generation=int(meta.get("generation") or 1),
        spec=parse_spec(spec),
    )
