"""The operator's one Kubernetes API client, shared with kopf, and every permission it needs.

`KubeClient` makes our calls (list, server-side apply, delete, status patches, discovery) on an
aiohttp session that the login handler also hands to kopf (`kopf.AiohttpSession`), so kopf's
watches and patches and our calls share one session, one connection pool and one set of
credentials. Credentials come from a kubeconfig (KUBECONFIG or ~/.kube/config) or, inside a
pod, the service account. Every call, kopf's included, is listed in `API_PERMISSIONS`, from
which the RBAC ClusterRole is generated and tested.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from reranker_operator import __version__
from reranker_operator.api.constants import CRD_GROUP, CRD_PLURAL, CRD_VERSION, MANAGER
from reranker_operator.render.kinds import CHILD_KINDS, child_kind

FIELD_MANAGER = MANAGER
USER_AGENT = f"{MANAGER}/{__version__}"
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)


@dataclass(frozen=True)
class Permission:
    """One RBAC rule: verbs on a resource (plural, maybe "/subresource") of an API group."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    why: str


_CHILD_VERBS = ("get", "list", "watch", "create", "patch", "delete")

# Everything the operator calls in the mode deploy/ runs it (cluster-wide, --peering), the single
# source of truth for the ClusterRole in deploy/base/rbac.yaml: our reconciler (list/apply/delete
# children, status patches, discovery of the optional APIs), kopf (watching the CRs, children
# and pods; patching its annotations and finalizers on the CRs; posting Events; scanning
# namespaces and CRDs), and the liveness probe. `apply` = PATCH (server-side apply), which
# creates the object when missing.
API_PERMISSIONS: tuple[Permission, ...] = (
    # No get: a pass reconciles the body kopf's watch delivered, never a second fetch.
    Permission(
        CRD_GROUP,
        CRD_PLURAL,
        ("list", "watch", "patch"),
        "watch RerankerServices; kopf's progress annotations and finalizers",
    ),
    Permission(CRD_GROUP, f"{CRD_PLURAL}/status", ("get", "patch"), "status subresource"),
    Permission(
        "",
        "events",
        ("create", "list"),
        "kopf posts Kubernetes Events; a rollout's pods' volume Events (Multi-Attach)",
    ),
    Permission("events.k8s.io", "events", ("create",), "kopf posts Kubernetes Events"),
    Permission(
        "",
        "pods",
        ("get", "list", "watch"),
        "a rollout's pods: ModelDownloading while init containers run; the score gate's pods",
    ),
    Permission("", "namespaces", ("get", "list", "watch"), "kopf namespace scanning"),
    # deploy/ runs the operator cluster-wide with --peering: kopf lists and watches the
    # ClusterKopfPeerings and patches its keep-alive into the one named; the operator creates
    # that one at start-up when missing and reads it to say whether it leads
    # (reranker_operator.controller.peering). A namespaced peered operator (-n NS --peering NAME)
    # needs the same verbs on kopfpeerings instead.
    Permission(
        "kopf.dev",
        "clusterkopfpeerings",
        ("get", "list", "watch", "patch", "create"),
        "--peering with --all-namespaces: kopf's keep-alives; created when missing; who leads",
    ),
    Permission(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        ("get", "list", "watch"),
        "kopf resource scanning",
    ),
    *(
        Permission(
            child.group,
            child.plural,
            _CHILD_VERBS,
            f"{child.kind} children: apply, prune, drift watch",
        )
        for child in CHILD_KINDS
    ),
    Permission(
        "apps",
        "deployments/scale",
        ("patch",),
        "wake a Deployment KEDA left at zero replicas when an HPA takes over",
    ),
)


def permitted(verb: str, group: str, resource: str) -> bool:
    """Whether API_PERMISSIONS allows `verb` on `group`/`resource` ("deployments", "x/status")."""
    return any(
        p.group == group and p.resource == resource and verb in p.verbs for p in API_PERMISSIONS
    )


@dataclass(frozen=True)
class ResourceRef:
    """Where a kind is served: apiVersion, plural, namespaced."""

    api_version: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
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
EVENTS = ResourceRef("v1", "events")
PODS = ResourceRef("v1", "pods")


def ref_for(api_version: str, kind: str) -> ResourceRef:
    """The resource of a child kind; KeyError for kinds the operator never manages."""
    child = child_kind(api_version, kind)
    return ResourceRef(child.api_version, child.plural)


class KubeApiError(Exception):
    """A non-2xx answer from the API server, or (status 0) no answer at all."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else f"{reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


def load_credentials(kubeconfig: str | None = None, *, trust_env: bool = False) -> Any:
    """A kopf.ConnectionInfo from the service account (in a pod) or a kubeconfig file.

    The official client's config loader reads the kubeconfig (contexts, exec plugins, token
    files); only the connection facts are kept.
    """
    import kopf
    from kubernetes import client, config

    configuration = client.Configuration()
    if (
        kubeconfig is None
        and os.environ.get("KUBERNETES_SERVICE_HOST")
        and not os.environ.get("KUBECONFIG")
    ):
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (
        (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    )
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        trust_env=trust_env,
    )


class KubeClient:
    """JSON calls on one aiohttp session: get, list, server-side apply, status patches, delete."""

    def __init__(self, session: aiohttp.ClientSession, server: str) -> None:
        self.session, self.server = session, server.rstrip("/")

    @classmethod
    def open(cls, info: Any, trace: aiohttp.TraceConfig | None = None) -> KubeClient:
        """A client on a new session for a kopf.ConnectionInfo (call inside the event loop);
        `trace` sees every request on the session (the operator's metrics count them)."""
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
            headers={**info.as_http_headers(), "User-Agent": USER_AGENT},
            trust_env=info.trust_env,
            trace_configs=[trace] if trace is not None else None,
        )
        return cls(session, info.server)

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, kubeconfig: str | None = None) -> AsyncIterator[KubeClient]:
        """A client for the duration of a `async with` block (tools and tests)."""
        client = cls.open(load_credentials(kubeconfig))
        try:
            yield client
        finally:
            await client.close()

    @property
    def closed(self) -> bool:
        return self.session.closed

    async def close(self) -> None:
        await self.session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        """One API call; returns the decoded JSON answer, raises KubeApiError otherwise."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        data = json.dumps(body) if body is not None else None  # JSON is YAML, for apply too
        try:
            async with self.session.request(
                method,
                self.server + path,
                params=query,
                data=data,
                headers=headers,
                timeout=REQUEST_TIMEOUT,
            ) as response:
                text = await response.text()
                status, reason = response.status, response.reason or ""
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeApiError(0, type(exc).__name__, str(exc) or "no answer") from exc
        if not 200 <= status <= 299:
            try:
                answer = json.loads(text)
                reason, message = answer.get("reason", reason), answer.get("message", text)
            except (ValueError, AttributeError):
                message = text
            raise KubeApiError(status, reason, message)
        return json.loads(text) if text else None

    async def get(
        self, ref: ResourceRef, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", ref.path(namespace, name))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(
        self,
        ref: ResourceRef,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Objects of a kind in a namespace, filtered by a label and a field selector."""
        query = {
            k: v
            for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector))
            if v
        } or None
        answer = await self.request("GET", ref.path(namespace), query=query)
        return list((answer or {}).get("items") or [])

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply as our field manager, forcing conflicts (creates when missing)."""
        ref = ref_for(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        return await self.request(
            "PATCH",
            ref.path(meta.get("namespace"), meta["name"]),
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=manifest,
            content_type="application/apply-patch+yaml",
        )

    async def delete(self, ref: ResourceRef, namespace: str | None, name: str) -> bool:
        """Delete in the background; False when it was already gone."""
        try:
            await self.request(
                "DELETE",
                ref.path(namespace, name),
                body={"propagationPolicy": "Background"},
                content_type="application/json",
            )
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def scale(
        self, ref: ResourceRef, namespace: str, name: str, replicas: int
    ) -> dict[str, Any]:
        """Set the replica count through the scale subresource, as `kubectl scale` does (no
        field of the applied manifest changes hands)."""
        return await self.request(
            "PATCH",
            ref.path(namespace, name, "scale"),
            query={"fieldManager": FIELD_MANAGER},
            body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
        )

    async def patch_status(
        self, ref: ResourceRef, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A JSON merge patch of the status subresource (None values remove fields)."""
        return await self.request(
            "PATCH",
            ref.path(namespace, name, "status"),
            body={"status": status},
            content_type="application/merge-patch+json",
        )

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
