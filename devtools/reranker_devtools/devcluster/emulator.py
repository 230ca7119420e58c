"""kmock's KubernetesEmulator, completed: request entry points (namespaces, recording, injected
failures), discovery fixes, and the declared resources (built-ins, our CRD, the optional
child kinds)."""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

from reranker_devtools.devcluster.api import ApiMixin
from reranker_devtools.devcluster.common import ApiCall, EmulatorError
from reranker_devtools.devcluster.schema import Schemas
from reranker_devtools.devcluster.store import StoreMixin
from reranker_operator.api.crd import crd_yaml
from reranker_operator.render.kinds import OPTIONAL_KINDS

REQUEST_LOG = 256  # kmock's request log kept (it scans it for every request it serves)
_NAMESPACES_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?/?$")


def read_crd(path: Path | None = None) -> dict[str, Any]:
    """Our CustomResourceDefinition, as the operator builds it (crds/rerankerservices.yaml)."""
    if path is None:
        text = crd_yaml()
    else:
        text = Path(path).read_text()
    return yaml.safe_load(text)


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes' version order as a sort key: v2 > v1 > v2beta1 > v1beta1 > v1alpha1 > other."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if match is None:
        return (3, 0, 0)
    stage = {None: 0, "beta": 1, "alpha": 2}[match.group(2)]
    return (stage, -int(match.group(1)), -int(match.group(3) or 0))


def _order_versions(group: dict[str, Any]) -> dict[str, Any]:
    """A discovery APIGroup with its versions in priority order and the first one preferred
    (kmock picks an arbitrary one, so kubectl could list autoscaling/v1 HPAs stored as v2)."""
    versions = sorted(group.get("versions") or [], key=lambda v: version_priority(v["version"]))
    if versions:
        group["versions"] = versions
        group["preferredVersion"] = dict(versions[0])
    return group


@functools.lru_cache(maxsize=1)
def emulator_class() -> type:
    """Build the KubernetesEmulator subclass (imports kmock and aiohttp on first use)."""
    import aiohttp.web
    import kmock
    from kmock._internal import apps, rendering

    class Emulator(StoreMixin, ApiMixin, kmock.KubernetesEmulator):  # type: ignore[misc,valid-type]
        """kmock's emulator with the state handling a controller test needs."""

        def __attrs_post_init__(self) -> None:
            super().__attrs_post_init__()
            self.calls: list[ApiCall] = []
            self.rv = itertools.count(1)
            self.schemas = Schemas()  # how each kind's lists and maps merge
            self.namespaces: set[str] = {"default"}
            self.failures: list[list[Any]] = []  # [verb, group, resource, status, times left]
            self.down = False  # an outage: every request answered 503 (DevCluster.outage)
            self.rollout_phase: str | None = None  # DevCluster.auto_rollout
            self.endpoint_slices: Any = None  # DevCluster.endpoint_slices
            self.rolling: Any = None  # rolling.RollingUpdates (DevCluster.rolling_updates)
            self._rollouts: set[Any] = set()
            self._live: dict[Any, dict[Any, Any]] = {}  # resource -> key -> stored object
            self._uids: dict[str, Any] = {}  # live uids (garbage collection)
            # (group, version, plural) -> a CRD's additionalPrinterColumns (kubectl's Tables)
            self.printer_columns: dict[tuple[str, str, str], list[dict[str, Any]]] = {}

        # --- request entry points

        async def __call__(self, raw_request: Any) -> Any:
            # kmock matches each request against its reactions by scanning its request log, so
            # the log is kept short (every call is recorded in `calls` instead).
            if len(self._requests) > REQUEST_LOG:
                del self._requests[: -REQUEST_LOG // 2]
            match = _NAMESPACES_PATH.match(raw_request.path)
            if match is None:
                return await super().__call__(raw_request)
            # kmock's path parser fails on /api/v1/namespaces: build the request ourselves.
            body = await raw_request.read()
            method = raw_request.method.upper()
            watch = raw_request.query.get("watch") in ("true", "1")
            name = match.group(1)
            action = (
                kmock.action.WATCH
                if watch
                else (kmock.action.FETCH if name else kmock.action.LIST)
                if method == "GET"
                else kmock.action.CREATE
                if method == "POST"
                else kmock.action.UPDATE
                if method == "PATCH" and name
                else kmock.action.DELETE
                if method == "DELETE" and name
                else None
            )
            request = rendering.Request(
                id=len(self._requests),
                raw_request=raw_request,
                url=raw_request.url,
                method=method,
                params=dict(raw_request.query),
                headers=dict(raw_request.headers),
                body=body,
                text=body.decode("utf-8", "replace"),
                data=json.loads(body) if body.strip() else None,
                action=action,
                resource=kmock.resource("", "v1", "namespaces"),
                namespace=None,
                name=name,
                subresource=None,
            )
            self._requests.append(request)
            try:
                return await self._handle(request)
            except Exception as exc:  # noqa: BLE001  # answered as a Status object
                return await self._render_error(exc)

        async def _handle(self, request: Any) -> Any:
            res = request.resource
            if res is None or res.plural is None or res.version is None:
                return await apps.RawHandler._handle(self, request)
            self._record(request)
            if self.down:
                return self._status_response(
                    EmulatorError(
                        503, "ServiceUnavailable", "the API server is down (simulated outage)"
                    )
                )
            injected = self._injected_failure(self.calls[-1])
            if injected is not None:
                return self._status_response(injected)
            if request.action == kmock.action.WATCH:
                if not self._declared(res):
                    return self._status_response(EmulatorError(404, "NotFound", "no such resource"))
                return await apps.RawHandler._handle(self, request)
            try:
                payload, code = await self._serve(request)
            except EmulatorError as exc:
                return self._status_response(exc)
            return aiohttp.web.json_response(payload, status=code)

        def _injected_failure(self, call: ApiCall) -> EmulatorError | None:
            for failure in self.failures:
                verb, group, resource, code, left = failure
                if left > 0 and (call.verb, call.group, call.resource) == (verb, group, resource):
                    failure[4] -= 1
                    return EmulatorError(
                        code, "InjectedFailure", f"injected failure of {verb} {resource}"
                    )
            return None

        def _status_response(self, exc: EmulatorError) -> Any:
            return aiohttp.web.json_response(
                {
                    "apiVersion": "v1",
                    "kind": "Status",
                    "metadata": {},
                    "status": "Failure",
                    "code": exc.code,
                    "reason": exc.reason,
                    "message": exc.message,
                },
                status=exc.code,
            )

        def _record(self, request: Any) -> None:
            res = request.resource
            method = str(request.method.value).upper()
            watch = request.action == kmock.action.WATCH
            verb = (
                "watch"
                if watch
                else ("get" if request.name else "list")
                if method == "GET"
                else {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method)
                or ("delete" if request.name else "deletecollection")
            )
            plural = res.plural + (f"/{request.subresource}" if request.subresource else "")
            self.calls.append(
                ApiCall(
                    verb=verb,
                    group=res.group or "",
                    resource=plural,
                    namespace=request.namespace,
                    name=request.name,
                    user_agent=request.headers.get("User-Agent", ""),
                    content_type=request.headers.get("Content-Type", ""),
                )
            )

        # --- discovery

        async def _serve_version(self, request: Any) -> Any:
            payload = await super()._serve_version(request)
            if isinstance(payload, dict) and str(payload.get("groupVersion", "")).startswith("/"):
                payload["groupVersion"] = payload["groupVersion"].lstrip("/")
            resources = payload.get("resources") if isinstance(payload, dict) else None
            for entry in resources or []:
                if "/" in entry.get("name", ""):  # subresources carry no short names
                    entry.pop("shortNames", None)
                    entry.pop("categories", None)
            return payload

        async def _serve_apis(self, request: Any) -> Any:
            payload = await super()._serve_apis(request)
            for group in payload.get("groups") or []:
                _order_versions(group)
            return payload

        async def _serve_group(self, request: Any) -> Any:
            return _order_versions(await super()._serve_group(request))

        def _declared(self, res: Any) -> bool:
            return any(r == res for r in self._resources)

        def _info(self, res: Any) -> Any:
            return self._resources[res]

        # --- state

    return Emulator


def check_unserved(unserved: Collection[str]) -> None:
    """Raise ValueError unless every kind named is an optional child kind."""
    unknown = set(unserved) - {k.kind for k in OPTIONAL_KINDS}
    if unknown:
        raise ValueError(f"only optional kinds can be left unserved, not {sorted(unknown)}")


def declare_resources(
    emulator: Any, crd: Mapping[str, Any], unserved: Collection[str] = ()
) -> None:
    """Declare built-ins (kmock's bundle), namespaces, our CRD (with its schema) and the
    optional child kinds (reranker_operator.render.kinds.OPTIONAL_KINDS) except those `unserved`."""
    import kmock

    check_unserved(unserved)
    emulator.resources.load_bundled()
    emulator.resources["v1/namespaces"] = kmock.ResourceInfo(
        kind="Namespace",
        namespaced=False,
        singular="namespace",
        shortnames={"ns"},
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
    )
    spec = crd["spec"]
    names = spec["names"]
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        subresources = set((version.get("subresources") or {}).keys())
        emulator.printer_columns[(spec["group"], version["name"], names["plural"])] = list(
            version.get("additionalPrinterColumns") or []
        )
        emulator.schemas.add_crd_version(
            spec["group"],
            version["name"],
            names["kind"],
            (version.get("schema") or {}).get("openAPIV3Schema"),
        )
        emulator.resources[f"{spec['group']}/{version['name']}/{names['plural']}"] = (
            kmock.ResourceInfo(
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular"),
                shortnames=set(names.get("shortNames", [])),
                categories=set(names.get("categories", [])),
                subresources=subresources,
                verbs={
                    "get",
                    "list",
                    "watch",
                    "create",
                    "update",
                    "patch",
                    "delete",
                    "deletecollection",
                },
            )
        )
    for kind in OPTIONAL_KINDS:  # CRDs of their own; declared without a schema
        resource = f"{kind.api_version}/{kind.plural}"
        if kind.kind not in unserved:
            emulator.schemas.add_crd_version(kind.group, kind.version, kind.kind, None)
            emulator.resources[resource] = kmock.ResourceInfo(
                kind=kind.kind,
                namespaced=True,
                singular=kind.kind.lower(),
                verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
            )
        elif resource in emulator.resources:
            del emulator.resources[resource]
