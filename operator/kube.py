"""The operator's Kubernetes API client: a thin async wrapper over the official client's REST layer.

Blocking calls run in a thread (asyncio.to_thread). Config comes from a kubeconfig (KUBECONFIG or
~/.kube/config) or, inside a pod, the service account. Every call the operator makes, including
kopf's own, is listed in `API_PERMISSIONS`, from which the RBAC Role is generated and tested.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from reranker_operator.constants import (
    CHILD_RESOURCES,
    CRD_GROUP,
    CRD_PLURAL,
    CRD_VERSION,
    MANAGER,
)

FIELD_MANAGER = MANAGER


@dataclass(frozen=True)
class Permission:
    """One RBAC rule: verbs on a resource (plural, maybe "/subresource") of an API group."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    why: str


_CHILD_VERBS = ("get", "list", "watch", "create", "patch", "delete")

# Everything the operator calls in the mode deploy/ runs it (cluster-wide, --peering), the single
# source of truth for the ClusterRole in deploy/base/rbac.yaml: our reconciler (get/list/apply/delete children, status patches,
# discovery of the ServiceMonitor and PrometheusRule APIs), kopf (watching the CRs, children and pods; patching its
# annotations and finalizers on the CRs; posting Events; scanning namespaces and CRDs), and the
# liveness probe. `apply` = PATCH (server-side apply), which creates the object when missing.
API_PERMISSIONS: tuple[Permission, ...] = (
    Permission(CRD_GROUP, CRD_PLURAL, ("get", "list", "watch", "patch"),
               "watch RerankerServices; kopf's progress annotations and finalizers"),
    Permission(CRD_GROUP, f"{CRD_PLURAL}/status", ("get", "patch"), "status subresource"),
    Permission("", "events", ("create",), "kopf posts Kubernetes Events"),
    Permission("events.k8s.io", "events", ("create",), "kopf posts Kubernetes Events"),
    Permission("", "pods", ("get", "list", "watch"),
               "a rollout's pods: ModelDownloading while init containers run"),
    Permission("", "namespaces", ("get", "list", "watch"), "kopf namespace scanning"),
    # deploy/ runs the operator cluster-wide with --peering: kopf lists and watches the
    # ClusterKopfPeerings and patches its keep-alive into the one named; the operator creates
    # that one at start-up when missing (reranker_operator.peering). A namespaced peered
    # operator (-n NS --peering NAME) needs the same verbs on kopfpeerings instead.
    Permission("kopf.dev", "clusterkopfpeerings", ("list", "watch", "patch", "create"),
               "--peering with --all-namespaces: kopf's keep-alives; created when missing"),
    Permission("apiextensions.k8s.io", "customresourcedefinitions", ("get", "list", "watch"),
               "kopf resource scanning"),
    *(
        Permission(child.api_version.rpartition("/")[0], child.plural, _CHILD_VERBS,
                   f"{child.kind} children: apply, prune, drift watch")
        for child in CHILD_RESOURCES
    ),
)


def permitted(verb: str, group: str, resource: str) -> bool:
    """Whether API_PERMISSIONS allows `verb` on `group`/`resource` ("deployments", "x/status")."""
    return any(p.group == group and p.resource == resource and verb in p.verbs
               for p in API_PERMISSIONS)


@dataclass(frozen=True)
class ResourceRef:
    """Where a kind is served: apiVersion, plural, namespaced."""

    api_version: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        """The URL path of the collection, or of one object (and its subresource)."""
        root = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [root]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
            if subresource:
                parts.append(subresource)
        return "/".join(parts)


RERANKER_SERVICES = ResourceRef(f"{CRD_GROUP}/{CRD_VERSION}", CRD_PLURAL)
PODS = ResourceRef("v1", "pods")
_KIND_REFS = {(c.api_version, c.kind): ResourceRef(c.api_version, c.plural)
              for c in CHILD_RESOURCES}


def ref_for(api_version: str, kind: str) -> ResourceRef:
    """The resource of a child kind; KeyError for kinds the operator never manages."""
    return _KIND_REFS[(api_version, kind)]


class KubeApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


def load_api_client(kubeconfig: str | None = None) -> Any:
    """An ApiClient from in-cluster config (in a pod) or a kubeconfig file."""
    from kubernetes import client, config

    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get(
            "KUBECONFIG"):
        config.load_incluster_config()
        return client.ApiClient()
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return client.ApiClient(configuration)


class KubeClient:
    """Generic JSON calls (get, list, server-side apply, merge-patch status, delete)."""

    def __init__(self, api_client: Any) -> None:
        self.api = api_client

    @classmethod
    def from_config(cls, kubeconfig: str | None = None) -> KubeClient:
        return cls(load_api_client(kubeconfig))

    def close(self) -> None:
        self.api.close()

    def _call(self, method: str, path: str, query: Mapping[str, str] | None,
              body: Any, content_type: str | None) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        _method, url, headers, _body, _post = self.api.param_serialize(
            method, path, header_params=headers, auth_settings=["BearerToken"])
        if query:
            url = f"{url}?{urlencode(query)}"
        response = self.api.call_api(method, url, header_params=headers, body=body)
        data = response.read()
        text = data.decode("utf-8", "replace") if data else ""
        if not 200 <= response.status <= 299:
            try:
                status = json.loads(text)
                reason, message = status.get("reason", ""), status.get("message", text)
            except ValueError:
                reason, message = response.reason or "", text
            raise KubeApiError(response.status, reason, message)
        return json.loads(text) if text else None

    async def request(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
                      body: Any = None, content_type: str | None = None) -> Any:
        """One API call in a worker thread; returns the decoded JSON answer."""
        # The REST layer JSON-encodes bodies of JSON content types itself; YAML ones (apply)
        # are sent pre-encoded (JSON is YAML).
        payload = json.dumps(body) if body is not None and "yaml" in (content_type or "") else body
        return await asyncio.to_thread(self._call, method, path, query, payload, content_type)

    async def get(self, ref: ResourceRef, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", ref.path(namespace, name))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, ref: ResourceRef, namespace: str | None,
                   label_selector: str | None = None) -> list[dict[str, Any]]:
        """Objects of a kind in a namespace, filtered by a label selector."""
        query = {"labelSelector": label_selector} if label_selector else None
        answer = await self.request("GET", ref.path(namespace), query=query)
        return list((answer or {}).get("items") or [])

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply as our field manager, forcing conflicts (creates when missing)."""
        ref = ref_for(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        return await self.request(
            "PATCH", ref.path(meta.get("namespace"), meta["name"]),
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=manifest, content_type="application/apply-patch+yaml")

    async def delete(self, ref: ResourceRef, namespace: str | None, name: str) -> bool:
        """Delete in the background; False when it was already gone."""
        try:
            await self.request("DELETE", ref.path(namespace, name),
                               body={"propagationPolicy": "Background"},
                               content_type="application/json")
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def patch_status(self, ref: ResourceRef, namespace: str, name: str,
                           status: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the status subresource (None values remove fields)."""
        return await self.request("PATCH", ref.path(namespace, name, "status"),
                                  body={"status": status},
                                  content_type="application/merge-patch+json")

    async def served(self, api_version: str, plural: str) -> bool:
        """Whether discovery lists `plural` under `api_version` (e.g. a CRD is installed)."""
        root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            answer = await self.request("GET", root)
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise
        return any(r.get("name") == plural for r in (answer or {}).get("resources") or [])


def connection_info(api_client: Any, trust_env: bool = False) -> Any:
    """kopf credentials equal to the client's (same server, CA, token or client cert)."""
    import kopf

    config = api_client.configuration
    header = (config.get_api_key_with_prefix("BearerToken")
              or config.get_api_key_with_prefix("authorization"))
    parts = header.split(" ", 1) if header else []
    scheme, token = ((None, None) if not parts else (None, parts[0]) if len(parts) == 1
                     else (parts[0], parts[1]))
    return kopf.ConnectionInfo(
        server=config.host, ca_path=config.ssl_ca_cert, insecure=not config.verify_ssl,
        username=config.username or None, password=config.password or None,
        scheme=scheme, token=token, certificate_path=config.cert_file,
        private_key_path=config.key_file, trust_env=trust_env,
    )
