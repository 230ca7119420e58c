"""An in-memory Kubernetes API for tests and the demo, built on kmock's KubernetesEmulator.

kmock is a test/demo dependency, not an operator runtime one: it is imported lazily, only when a
cluster is started. `DevCluster` runs the emulator on a port in a background thread, so that both
synchronous tests and `kubectl` can talk to it; its helper methods act directly on the stored
objects (they are not HTTP calls and are never counted among `calls`).

What the emulator adds to kmock's: uid / resourceVersion / generation / creationTimestamp
stamping, the URL's namespace copied into created objects, list kinds, label/field selectors on
lists and watches, PUT, strategic-merge and server-side-apply patches, status-subresource
semantics, garbage collection by ownerReferences, core-discovery and namespaces fixes, a record of
every API call (verb, group, resource), and a stand-in Deployment controller
(`simulate_rollout`).
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import functools
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import yaml
from reranker_operator.constants import CRD_GROUP, CRD_PLURAL, CRD_VERSION

SERVICE_MONITORS = "monitoring.coreos.com/v1/servicemonitors"
_NAMESPACES_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?/?$")
_MERGE_KEYS = ("name", "mountPath", "containerPort", "port", "devicePath", "type", "ip")
ROLLOUT_PHASES = ("init", "starting", "ready", "failed")


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


def now_rfc3339() -> str:
    """The current UTC time as Kubernetes writes timestamps."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------- patch semantics


def merge_patch(live: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, None deletes, the rest replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(live) if isinstance(live, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_key(live: list[Any], patch: list[Any]) -> str | None:
    items = [*live, *patch]
    if not patch or not all(isinstance(item, Mapping) for item in items):
        return None
    for key in _MERGE_KEYS:
        if all(key in item for item in items):
            return key
    return None


def strategic_merge_patch(live: Any, patch: Any) -> Any:
    """A strategic merge patch: like merge_patch, but lists of objects merge by their key."""
    if isinstance(patch, list) and isinstance(live, list):
        key = _merge_key(live, patch)
        if key is None:
            return copy.deepcopy(patch)
        merged = [copy.deepcopy(item) for item in live]
        index = {item[key]: i for i, item in enumerate(merged)}
        for item in patch:
            if item.get("$patch") == "delete":
                merged = [m for m in merged if m[key] != item[key]]
                index = {m[key]: i for i, m in enumerate(merged)}
            elif item[key] in index:
                merged[index[item[key]]] = strategic_merge_patch(merged[index[item[key]]], item)
            else:
                merged.append(copy.deepcopy(item))
                index[item[key]] = len(merged) - 1
        return merged
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(live) if isinstance(live, Mapping) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _leaf_paths(obj: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    paths: set[tuple[str, ...]] = set()
    for key, value in obj.items():
        if isinstance(value, Mapping) and value:
            paths |= _leaf_paths(value, prefix + (key,))
        else:
            paths.add(prefix + (key,))
    return paths


def _remove_path(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = obj
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(path[-1], None)


def server_side_apply(
    live: Mapping[str, Any], applied: Mapping[str, Any], previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Server-side apply for one field manager, with lists as atomic values.

    Fields the manager applied before but no longer applies are removed; the applied fields
    replace the live ones (force); fields set by others stay.
    """
    result = copy.deepcopy(dict(live))
    if previous is not None:
        for path in _leaf_paths(previous) - _leaf_paths(applied):
            _remove_path(result, path)
    return merge_patch(result, applied)


# ---------------------------------------------------------------------------- selectors


def _parse_selector(text: str) -> list[tuple[str, str, set[str]]]:
    """Label selector terms as (key, operator, values); operators: = != in notin exists !."""
    terms: list[tuple[str, str, set[str]]] = []
    for part in re.split(r",(?![^()]*\))", text.strip()):
        part = part.strip()
        if not part:
            continue
        if m := re.fullmatch(r"([^\s!=]+)\s+(in|notin)\s+\((.*)\)", part):
            values = {v.strip() for v in m.group(3).split(",") if v.strip()}
            terms.append((m.group(1), m.group(2), values))
        elif m := re.fullmatch(r"([^\s!=]+)\s*(==|=|!=)\s*(\S*)", part):
            terms.append((m.group(1), "!=" if m.group(2) == "!=" else "=", {m.group(3)}))
        elif part.startswith("!"):
            terms.append((part[1:].strip(), "!", set()))
        else:
            terms.append((part, "exists", set()))
    return terms


def selector_matches(labels: Mapping[str, str], selector: str | None) -> bool:
    """Whether labels satisfy a Kubernetes label selector string."""
    for key, op, values in _parse_selector(selector or ""):
        present = key in labels
        value = labels.get(key)
        ok = {
            "=": present and value in values,
            "!=": not present or value not in values,
            "in": present and value in values,
            "notin": not present or value not in values,
            "exists": present,
            "!": not present,
        }[op]
        if not ok:
            return False
    return True


def field_selector_matches(obj: Mapping[str, Any], selector: str | None) -> bool:
    """metadata.name / metadata.namespace equality field selectors."""
    meta = obj.get("metadata", {})
    for part in (selector or "").split(","):
        if not part.strip():
            continue
        key, _, value = part.partition("=")
        negate = key.endswith("!")
        key, value = key.rstrip("!").strip(), value.lstrip("=").strip()
        actual = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace")}
        ok = actual.get(key) == value
        if ok == negate:
            return False
    return True


# ---------------------------------------------------------------------------- the emulator


def read_crd(path: Path | None = None) -> dict[str, Any]:
    """Our CustomResourceDefinition, from the package (crds/rerankerservices.yaml)."""
    if path is None:
        text = importlib_resources.files("reranker_operator.crds").joinpath(
            "rerankerservices.yaml").read_text()
    else:
        text = Path(path).read_text()
    return yaml.safe_load(text)


@functools.lru_cache(maxsize=1)
def emulator_class() -> type:
    """Build the KubernetesEmulator subclass (imports kmock and aiohttp on first use)."""
    import aiohttp.web
    import kmock
    from kmock._internal import apps, rendering

    class Emulator(kmock.KubernetesEmulator):  # type: ignore[misc,valid-type]
        """kmock's emulator with the state handling a controller test needs."""

        def __attrs_post_init__(self) -> None:
            super().__attrs_post_init__()
            self.calls: list[ApiCall] = []
            self.rv = itertools.count(1)
            self.applied: dict[tuple[Any, ...], dict[str, Any]] = {}
            self.namespaces: set[str] = {"default"}
            self.failures: list[list[Any]] = []  # [verb, group, resource, status, times left]

        # --- request entry points

        async def __call__(self, raw_request: Any) -> Any:
            match = _NAMESPACES_PATH.match(raw_request.path)
            if match is None:
                return await super().__call__(raw_request)
            # kmock's path parser fails on /api/v1/namespaces: build the request ourselves.
            body = await raw_request.read()
            method = raw_request.method.upper()
            watch = raw_request.query.get("watch") in ("true", "1")
            name = match.group(1)
            action = (
                kmock.action.WATCH if watch else
                (kmock.action.FETCH if name else kmock.action.LIST) if method == "GET" else
                kmock.action.CREATE if method == "POST" else
                kmock.action.UPDATE if method == "PATCH" and name else
                kmock.action.DELETE if method == "DELETE" and name else None
            )
            request = rendering.Request(
                id=len(self._requests), raw_request=raw_request, url=raw_request.url,
                method=method, params=dict(raw_request.query), headers=dict(raw_request.headers),
                body=body, text=body.decode("utf-8", "replace"),
                data=json.loads(body) if body.strip() else None,
                action=action, resource=kmock.resource("", "v1", "namespaces"),
                namespace=None, name=name, subresource=None,
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
                    return EmulatorError(code, "InjectedFailure",
                                         f"injected failure of {verb} {resource}")
            return None

        def _status_response(self, exc: EmulatorError) -> Any:
            return aiohttp.web.json_response({
                "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                "code": exc.code, "reason": exc.reason, "message": exc.message,
            }, status=exc.code)

        def _record(self, request: Any) -> None:
            res = request.resource
            method = str(request.method.value).upper()
            watch = request.action == kmock.action.WATCH
            verb = (
                "watch" if watch else
                ("get" if request.name else "list") if method == "GET" else
                {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method) or
                ("delete" if request.name else "deletecollection")
            )
            plural = res.plural + (f"/{request.subresource}" if request.subresource else "")
            self.calls.append(ApiCall(
                verb=verb, group=res.group or "", resource=plural,
                namespace=request.namespace, name=request.name,
                user_agent=request.headers.get("User-Agent", ""),
                content_type=request.headers.get("Content-Type", ""),
            ))

        # --- discovery

        async def _serve_version(self, request: Any) -> Any:
            payload = await super()._serve_version(request)
            if isinstance(payload, dict) and str(payload.get("groupVersion", "")).startswith("/"):
                payload["groupVersion"] = payload["groupVersion"].lstrip("/")
            return payload

        def _declared(self, res: Any) -> bool:
            return any(r == res for r in self._resources)

        def _info(self, res: Any) -> Any:
            return self._resources[res]

        # --- state

        def _key(self, res: Any, namespace: str | None, name: str) -> tuple[Any, str | None, str]:
            return (kmock.resource(res.group, res.version, res.plural), namespace, name)

        def live(self, res: Any, namespace: str | None, name: str) -> dict[str, Any] | None:
            key = self._key(res, namespace, name)
            if key not in self._objects or self._objects[key].deleted:
                if (res.group, res.plural) == ("", "namespaces") and name in self.namespaces:
                    return next(o for o in self._items(res, None) if o["metadata"]["name"] == name)
                return None
            return copy.deepcopy(self._objects[key].raw)

        def _items(self, res: Any, namespace: str | None) -> list[dict[str, Any]]:
            items = []
            for (r, ns, _name), obj in list(self._objects.items()):
                if r == res and not obj.deleted and (namespace is None or ns == namespace):
                    items.append(copy.deepcopy(obj.raw))
            if (res.group, res.plural) == ("", "namespaces"):  # namespaces in use exist
                stored = {o["metadata"]["name"] for o in items}
                items += [{"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": ns, "uid": f"namespace-{ns}",
                                        "resourceVersion": "1"},
                           "status": {"phase": "Active"}}
                          for ns in sorted(self.namespaces - stored)]
            return items

        async def _emit(self, res: Any, kind: str, obj: Mapping[str, Any]) -> None:
            key = kmock.resource(res.group, res.version, res.plural)
            await self._buses[key].put({"type": kind, "object": copy.deepcopy(dict(obj))})

        async def store(self, res: Any, obj: dict[str, Any], event: str) -> dict[str, Any]:
            """Store a full object (already stamped) and publish the watch event."""
            meta = obj["metadata"]
            key = self._key(res, meta.get("namespace"), meta["name"])
            if key in self._objects and not self._objects[key].deleted:
                self._objects[key].history.append(obj)
            elif key in self._objects:
                self._objects[key].create(obj)
            else:
                self._objects[key] = obj
            await self._emit(res, event, obj)
            return copy.deepcopy(obj)

        async def create_object(
            self, res: Any, namespace: str | None, body: Mapping[str, Any]
        ) -> dict[str, Any]:
            if not isinstance(body, Mapping):
                raise EmulatorError(400, "BadRequest", "the request body must be an object")
            info = self._info(res)
            obj = copy.deepcopy(dict(body))
            meta = obj.setdefault("metadata", {})
            if info.namespaced:
                namespace = namespace or meta.get("namespace") or "default"
                meta["namespace"] = namespace
                self.namespaces.add(namespace)
            else:
                namespace = None
                meta.pop("namespace", None)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            if not meta.get("name"):
                raise EmulatorError(422, "Invalid", "metadata.name: Required value")
            if self.live(res, namespace, meta["name"]) is not None:
                raise EmulatorError(409, "AlreadyExists",
                                    f'{res.plural} "{meta["name"]}" already exists')
            obj.setdefault("apiVersion", f"{res.group}/{res.version}" if res.group else "v1")
            obj.setdefault("kind", info.kind or res.plural.capitalize())
            meta.update(uid=str(uuid.uuid4()), resourceVersion=str(next(self.rv)),
                        creationTimestamp=now_rfc3339(), generation=1)
            meta.pop("deletionTimestamp", None)
            if "status" in info.subresources:
                obj.pop("status", None)
            stored = await self.store(res, obj, "ADDED")
            if self._orphaned(stored):  # the garbage collector removes it right away
                await self.remove(res, stored)
            return stored

        def _orphaned(self, obj: Mapping[str, Any]) -> bool:
            """Every owner of `obj` is gone (the garbage collector's deletion rule)."""
            owners = {r.get("uid") for r in obj["metadata"].get("ownerReferences") or []}
            if not owners:
                return False
            for entry in self._objects.values():
                if not entry.deleted and entry.raw.get("metadata", {}).get("uid") in owners:
                    return False
            return True

        async def update_object(
            self, res: Any, live: dict[str, Any], new: dict[str, Any], subresource: str | None
        ) -> dict[str, Any]:
            """Write `new` over `live`, honouring the status subresource; no-ops write nothing."""
            info = self._info(res)
            new = copy.deepcopy(new)
            if "status" in info.subresources:
                if subresource == "status":
                    new = dict(copy.deepcopy(live), status=new.get("status"))
                    if new["status"] is None:
                        new.pop("status")
                else:
                    new.pop("status", None)
                    if "status" in live:
                        new["status"] = copy.deepcopy(live["status"])
            meta = new.setdefault("metadata", {})
            for field in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp",
                          "generation", "resourceVersion"):
                if field in live["metadata"]:
                    meta[field] = live["metadata"][field]
                else:
                    meta.pop(field, None)
            if new == live:
                return live
            spec_keys = set(new) | set(live)
            spec_keys -= {"metadata", "status", "apiVersion", "kind"}
            if any(new.get(k) != live.get(k) for k in spec_keys):
                meta["generation"] = int(live["metadata"].get("generation", 1)) + 1
            meta["resourceVersion"] = str(next(self.rv))
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                await self.remove(res, new)
                return new
            return await self.store(res, new, "MODIFIED")

        async def remove(self, res: Any, obj: Mapping[str, Any]) -> None:
            """Delete an object for good, then garbage-collect its dependents."""
            meta = obj["metadata"]
            key = self._key(res, meta.get("namespace"), meta["name"])
            if key in self._objects and not self._objects[key].deleted:
                self._objects[key].delete()
                for manager_key in [k for k in self.applied if k[:3] == key]:
                    del self.applied[manager_key]
                gone = copy.deepcopy(dict(obj))
                gone["metadata"]["resourceVersion"] = str(next(self.rv))
                await self._emit(res, "DELETED", gone)
            uid = meta.get("uid")
            for (r, _ns, _name), dep in list(self._objects.items()):
                if dep.deleted:
                    continue
                refs = dep.raw.get("metadata", {}).get("ownerReferences") or []
                if any(ref.get("uid") == uid for ref in refs):
                    await self.delete_object(r, dep.raw)

        async def delete_object(self, res: Any, obj: Mapping[str, Any]) -> dict[str, Any]:
            meta = obj["metadata"]
            if meta.get("finalizers"):
                if meta.get("deletionTimestamp"):
                    return dict(obj)
                new = copy.deepcopy(dict(obj))
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["resourceVersion"] = str(next(self.rv))
                return await self.store(res, new, "MODIFIED")
            await self.remove(res, obj)
            return dict(obj)

        # --- the API

        async def _serve(self, request: Any) -> tuple[Any, int]:
            res = request.resource
            if not self._declared(res):
                raise EmulatorError(404, "NotFound",
                                    f"the server could not find the requested resource ({res})")
            method = str(request.method.value).upper()
            ns, name, sub = request.namespace, request.name, request.subresource
            params = request.params
            async with self._lock:
                if method == "GET" and name is None:
                    items = [
                        o for o in self._items(res, ns)
                        if selector_matches(o["metadata"].get("labels") or {},
                                            params.get("labelSelector"))
                        and field_selector_matches(o, params.get("fieldSelector"))
                    ]
                    kind = (self._info(res).kind or res.plural.capitalize()) + "List"
                    api_version = f"{res.group}/{res.version}" if res.group else res.version
                    rv = str(next(self.rv))
                    return {"apiVersion": api_version, "kind": kind,
                            "metadata": {"resourceVersion": rv}, "items": items}, 200
                if method == "POST" and name is None:
                    return await self.create_object(res, ns, self._body(request)), 201
                if name is None:
                    raise EmulatorError(405, "MethodNotAllowed", f"{method} needs a name")
                live = self.live(res, ns, name)
                content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
                if method == "PATCH" and content_type == "application/apply-patch+yaml":
                    return await self._apply(request, res, ns, name, live), 200
                if live is None:
                    raise EmulatorError(404, "NotFound", f'{res.plural} "{name}" not found')
                if method == "GET":
                    return (self._scale(res, live) if sub == "scale" else live), 200
                if method == "DELETE":
                    return await self.delete_object(res, live), 200
                if method == "PUT":
                    body = self._body(request)
                    if sub == "scale":
                        body = self._unscale(res, live, body)
                    want_rv = (body.get("metadata") or {}).get("resourceVersion")
                    if want_rv and want_rv != live["metadata"]["resourceVersion"]:
                        raise EmulatorError(409, "Conflict", "the object has been modified")
                    new = await self.update_object(res, live, body, sub)
                    return (self._scale(res, new) if sub == "scale" else new), 200
                if method == "PATCH":
                    body = self._body(request)
                    base = self._scale(res, live) if sub == "scale" else live
                    if content_type == "application/json-patch+json":
                        import jsonpatch
                        try:
                            patched = jsonpatch.apply_patch(base, body)
                        except (jsonpatch.JsonPatchException,
                                jsonpatch.JsonPointerException) as exc:
                            # A failed "test" op (kopf's optimistic concurrency) is a 422.
                            raise EmulatorError(422, "Invalid", f"the patch failed: {exc}") from exc
                    elif content_type == "application/strategic-merge-patch+json":
                        patched = strategic_merge_patch(base, body)
                    else:
                        patched = merge_patch(base, body)
                    if sub == "scale":
                        patched = self._unscale(res, live, patched)
                    new = await self.update_object(res, live, patched, sub)
                    return (self._scale(res, new) if sub == "scale" else new), 200
            raise EmulatorError(405, "MethodNotAllowed", f"{method} is not supported here")

        def _body(self, request: Any) -> Any:
            if request.data is not None and not isinstance(request.data, (str, bytes)):
                return request.data
            try:
                return yaml.safe_load(request.text) if request.text else {}
            except yaml.YAMLError as exc:
                raise EmulatorError(400, "BadRequest", f"cannot parse the body: {exc}") from exc

        async def _apply(
            self, request: Any, res: Any, ns: str | None, name: str, live: dict[str, Any] | None
        ) -> dict[str, Any]:
            manager = request.params.get("fieldManager")
            if not manager:
                raise EmulatorError(422, "Invalid", "fieldManager is required for apply")
            applied = self._body(request)
            if not isinstance(applied, Mapping):
                raise EmulatorError(400, "BadRequest", "the applied configuration must be an object")
            applied = copy.deepcopy(dict(applied))
            if (applied.get("metadata") or {}).get("name") not in (None, name):
                raise EmulatorError(400, "BadRequest", "the name in the body does not match the URL")
            if request.subresource is None and "status" in self._info(res).subresources:
                applied.pop("status", None)
            key = self._key(res, ns, name) + (manager,)
            if live is None:
                obj = await self.create_object(res, ns, applied)
            else:
                new = server_side_apply(live, applied, self.applied.get(key))
                obj = await self.update_object(res, live, new, request.subresource)
            self.applied[key] = applied
            return obj

        def _scale(self, res: Any, obj: Mapping[str, Any]) -> dict[str, Any]:
            meta = obj["metadata"]
            return {
                "apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid",
                                                  "resourceVersion") if k in meta},
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": (obj.get("status") or {}).get("selector", "")},
            }

        def _unscale(self, res: Any, live: Mapping[str, Any], scale: Any) -> dict[str, Any]:
            new = copy.deepcopy(dict(live))
            replicas = ((scale or {}).get("spec") or {}).get("replicas")
            if replicas is not None:
                new.setdefault("spec", {})["replicas"] = replicas
            return new

        # --- watches honour label and field selectors

        async def _serve_watch(self, request: Any) -> Any:
            yield b""
            res = request.resource
            selector = request.params.get("labelSelector")
            fields = request.params.get("fieldSelector")

            def wanted(obj: Mapping[str, Any]) -> bool:
                meta = obj.get("metadata", {})
                return (
                    (request.namespace is None or meta.get("namespace") == request.namespace)
                    and selector_matches(meta.get("labels") or {}, selector)
                    and field_selector_matches(obj, fields)
                )

            key = kmock.resource(res.group, res.version, res.plural)
            since = int(request.params.get("resourceVersion") or 0)
            async with self._lock:  # mark the bus first: no event falls between list and watch
                marker = await self._buses[key].mark()
                existing = [o for o in self._items(res, request.namespace) if wanted(o)]
            try:
                for obj in existing:
                    if int(obj["metadata"].get("resourceVersion", 0)) > since:
                        yield {"type": "ADDED", "object": obj}
                async for event in self._buses[key].stream(since=marker):
                    obj = event.get("object", {})
                    if wanted(obj) and int(obj.get("metadata", {}).get(
                            "resourceVersion", 0)) > since:
                        yield event
            finally:
                await self._buses[key].unmark(marker)

    return Emulator


def declare_resources(emulator: Any, crd: Mapping[str, Any], service_monitors: bool) -> None:
    """Declare built-ins (kmock's bundle), namespaces, our CRD and optionally ServiceMonitor."""
    import kmock

    emulator.resources.load_bundled()
    emulator.resources["v1/namespaces"] = kmock.ResourceInfo(
        kind="Namespace", namespaced=False, singular="namespace", shortnames={"ns"},
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"})
    spec = crd["spec"]
    names = spec["names"]
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        subresources = set((version.get("subresources") or {}).keys())
        emulator.resources[f"{spec['group']}/{version['name']}/{names['plural']}"] = (
            kmock.ResourceInfo(
                kind=names["kind"], namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular"), shortnames=set(names.get("shortNames", [])),
                categories=set(names.get("categories", [])), subresources=subresources,
                verbs={"get", "list", "watch", "create", "update", "patch", "delete",
                       "deletecollection"}))
    if service_monitors:
        emulator.resources[SERVICE_MONITORS] = kmock.ResourceInfo(
            kind="ServiceMonitor", namespaced=True, singular="servicemonitor",
            verbs={"get", "list", "watch", "create", "update", "patch", "delete"})
    elif SERVICE_MONITORS in emulator.resources:
        del emulator.resources[SERVICE_MONITORS]


# ---------------------------------------------------------------------------- the dev cluster


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


class DevCluster:
    """The emulator served on 127.0.0.1 from a background thread, with a synchronous API.

    Use as a context manager, or call start()/stop(). `service_monitors=False` leaves the
    monitoring.coreos.com/v1 ServiceMonitor API out of discovery.
    """

    def __init__(self, *, port: int | None = None, service_monitors: bool = True,
                 crd_path: Path | None = None) -> None:
        self.port_wanted = port
        self.service_monitors = service_monitors
        self.crd = read_crd(crd_path)
        self.emulator: Any = None
        self._server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.url = ""

    # --- lifecycle

    def start(self) -> DevCluster:
        """Start serving; returns when the port is open."""
        self._thread = threading.Thread(target=self._main, name="devcluster", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error is not None:
            raise RuntimeError(f"the dev cluster failed to start: {self._error}") from self._error
        if not self.url:
            raise RuntimeError("the dev cluster did not start within 30 s")
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> DevCluster:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001  # reported to start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        import kmock

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        emulator = emulator_class()()
        declare_resources(emulator, self.crd, self.service_monitors)
        self.emulator = emulator
        async with emulator, kmock.Server(emulator, port=self.port_wanted) as server:
            self._server = server
            self.url = f"http://127.0.0.1:{server.port}"
            self._ready.set()
            await self._stopping.wait()

    def _run(self, coro_fn: Callable[[], Any]) -> Any:
        if self._loop is None:
            raise RuntimeError("the dev cluster is not running")

        async def wrapper() -> Any:
            async with self.emulator._lock:
                return await coro_fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout=30)

    # --- reading

    @property
    def calls(self) -> list[ApiCall]:
        """Every API call served so far (a copy)."""
        return list(self.emulator.calls)

    def get(self, ref: Ref | str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object, or None."""
        ref = Ref.parse(ref) if isinstance(ref, str) else ref
        return self._run(lambda: _const(self.emulator.live(ref, namespace, name)))

    def list(self, ref: Ref | str, namespace: str | None = None,
             selector: str | None = None) -> list[dict[str, Any]]:
        """Stored objects of a kind, optionally in a namespace and matching a label selector."""
        ref = Ref.parse(ref) if isinstance(ref, str) else ref
        items = self._run(lambda: _const(self.emulator._items(ref, namespace)))
        return [o for o in items
                if selector_matches(o["metadata"].get("labels") or {}, selector)]

    # --- writing (as a user or a controller would; not recorded as API calls)

    def create(self, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Create an object from a manifest (apiVersion + kind decide the resource)."""
        ref = self.ref_for(obj["apiVersion"], obj["kind"])
        return self._run(lambda: self.emulator.create_object(ref, namespace, obj))

    def patch(self, ref: Ref | str, namespace: str | None, name: str, patch: Mapping[str, Any],
              subresource: str | None = None) -> dict[str, Any]:
        """A JSON merge patch, as `kubectl patch --type=merge` does."""
        ref = Ref.parse(ref) if isinstance(ref, str) else ref

        async def go() -> Any:
            live = self.emulator.live(ref, namespace, name)
            if live is None:
                raise KeyError(f"{ref.plural}/{name} not found")
            return await self.emulator.update_object(ref, live, merge_patch(live, patch),
                                                     subresource)

        return self._run(go)

    def delete(self, ref: Ref | str, namespace: str | None, name: str) -> None:
        """Delete an object (finalizers respected; dependents garbage-collected)."""
        ref = Ref.parse(ref) if isinstance(ref, str) else ref

        async def go() -> Any:
            live = self.emulator.live(ref, namespace, name)
            if live is not None:
                await self.emulator.delete_object(ref, live)

        self._run(go)

    def ref_for(self, api_version: str, kind: str) -> Ref:
        """The resource serving a kind, from the declared resources."""
        group, _, version = api_version.rpartition("/")
        for res in self.emulator.resources:
            info = self.emulator.resources[res]
            if res.group == group and res.version == version and info.kind == kind:
                return Ref(res.group, res.version, res.plural)
        raise KeyError(f"no resource serves {api_version} {kind}")

    def fail(self, verb: str, ref: Ref | str, status: int = 500, times: int = 1,
             subresource: str | None = None) -> None:
        """Answer the next `times` API calls of `verb` on a resource with an error `status`."""
        ref = Ref.parse(ref) if isinstance(ref, str) else ref
        resource = ref.plural + (f"/{subresource}" if subresource else "")
        self.emulator.failures.append([verb, ref.group, resource, status, times])

    # --- the Deployment controller, on request

    def simulate_rollout(self, namespace: str, name: str, phase: str) -> dict[str, Any]:
        """Act as the Deployment controller for one Deployment and its pods.

        Phases: 'init' (pods in their init containers, e.g. downloading the model),
        'starting' (init done, containers not ready), 'ready' (all replicas available),
        'failed' (progress deadline exceeded). Returns the Deployment.
        """
        if phase not in ROLLOUT_PHASES:
            raise ValueError(f"phase must be one of {ROLLOUT_PHASES}, not {phase!r}")

        async def go() -> Any:
            emu = self.emulator
            live = emu.live(DEPLOYMENTS, namespace, name)
            if live is None:
                raise KeyError(f"deployment {namespace}/{name} not found")
            await self._sync_pods(live, phase)
            new = copy.deepcopy(live)
            new["status"] = deployment_status(live, phase)
            return await emu.update_object(DEPLOYMENTS, live, new, "status")

        return self._run(go)

    async def _sync_pods(self, deployment: Mapping[str, Any], phase: str) -> None:
        emu = self.emulator
        meta = deployment["metadata"]
        replicas = int((deployment.get("spec") or {}).get("replicas", 1))
        template = (deployment.get("spec") or {}).get("template") or {}
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"],
                 "uid": meta["uid"], "controller": True}
        wanted = {f"{meta['name']}-sim-{i}" for i in range(replicas)}
        for pod in emu._items(PODS, meta["namespace"]):
            refs = pod["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == meta["uid"] for r in refs) and pod["metadata"]["name"] not in wanted:
                await emu.remove(PODS, pod)
        for pod_name in sorted(wanted):
            status = pod_status(template.get("spec") or {}, phase)
            live = emu.live(PODS, meta["namespace"], pod_name)
            if live is None:
                await emu.create_object(PODS, meta["namespace"], {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod_name, "labels": labels, "ownerReferences": [owner]},
                    "spec": copy.deepcopy(template.get("spec") or {}),
                })
                live = emu.live(PODS, meta["namespace"], pod_name)
            await emu.update_object(PODS, live, dict(live, status=status), "status")

    # --- kubectl

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        """Write a kubeconfig for kubectl / the operator that points at this cluster."""
        return KubeconfigFile(self.url, namespace).write(path)


def _const(value: Any) -> Any:
    async def done() -> Any:
        return value
    return done()


def deployment_status(deployment: Mapping[str, Any], phase: str) -> dict[str, Any]:
    """What the Deployment controller would report in a rollout phase."""
    replicas = int((deployment.get("spec") or {}).get("replicas", 1))
    generation = deployment["metadata"].get("generation", 1)
    ts = now_rfc3339()
    ready = replicas if phase == "ready" else 0
    available = {"type": "Available", "lastUpdateTime": ts, "lastTransitionTime": ts}
    progressing = {"type": "Progressing", "lastUpdateTime": ts, "lastTransitionTime": ts}
    if phase == "ready":
        available.update(status="True", reason="MinimumReplicasAvailable",
                         message="Deployment has minimum availability.")
        progressing.update(status="True", reason="NewReplicaSetAvailable",
                           message="ReplicaSet has successfully progressed.")
    elif phase == "failed":
        available.update(status="False", reason="MinimumReplicasUnavailable",
                         message="Deployment does not have minimum availability.")
        progressing.update(status="False", reason="ProgressDeadlineExceeded",
                           message="ReplicaSet has timed out progressing.")
    else:
        available.update(status="False", reason="MinimumReplicasUnavailable",
                         message="Deployment does not have minimum availability.")
        progressing.update(status="True", reason="ReplicaSetUpdated",
                           message="ReplicaSet is progressing.")
    status: dict[str, Any] = {
        "observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
        "readyReplicas": ready, "availableReplicas": ready,
        "conditions": [available, progressing],
    }
    if replicas - ready:
        status["unavailableReplicas"] = replicas - ready
    return status


def pod_status(pod_spec: Mapping[str, Any], phase: str) -> dict[str, Any]:
    """A pod's status in a rollout phase (init containers running during 'init')."""
    init_names = [c.get("name", "init") for c in pod_spec.get("initContainers") or []]
    names = [c.get("name", "main") for c in pod_spec.get("containers") or []] or ["main"]
    ts = now_rfc3339()
    in_init = phase == "init"
    ready = phase == "ready"
    init_statuses = [
        {"name": n, "ready": not in_init, "restartCount": 0, "image": "", "imageID": "",
         "state": {"running": {"startedAt": ts}} if in_init else
         {"terminated": {"exitCode": 0, "reason": "Completed"}}}
        for n in init_names
    ]
    if in_init and not init_names:  # no declared init container: still report one running
        init_statuses = [{"name": "init", "ready": False, "restartCount": 0, "image": "",
                          "imageID": "", "state": {"running": {"startedAt": ts}}}]
    waiting = {"waiting": {"reason": "PodInitializing"}} if in_init else None
    failed = {"waiting": {"reason": "CrashLoopBackOff"}} if phase == "failed" else None
    container_statuses = [
        {"name": n, "ready": ready, "restartCount": 0, "image": "", "imageID": "",
         "started": not in_init,
         "state": waiting or failed or {"running": {"startedAt": ts}}}
        for n in names
    ]
    return {
        "phase": "Pending" if in_init else "Running",
        "conditions": [
            {"type": "Initialized", "status": "False" if in_init else "True"},
            {"type": "Ready", "status": "True" if ready else "False"},
            {"type": "ContainersReady", "status": "True" if ready else "False"},
        ],
        "initContainerStatuses": init_statuses,
        "containerStatuses": container_statuses,
    }


class KubeconfigFile:
    """A kubeconfig for one plain-HTTP API server (kubectl, the kubernetes client, kopf)."""

    def __init__(self, server: str, namespace: str = "default") -> None:
        self.server = server
        self.namespace = namespace

    def as_dict(self) -> dict[str, Any]:
        """The kubeconfig document."""
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": "devcluster",
            "clusters": [{"name": "devcluster", "cluster": {"server": self.server}}],
            "users": [{"name": "devcluster", "user": {"token": "devcluster"}}],
            "contexts": [{"name": "devcluster", "context": {
                "cluster": "devcluster", "user": "devcluster", "namespace": self.namespace}}],
            "preferences": {},
        }

    def write(self, path: str | Path) -> Path:
        """Write it to `path`; returns the path."""
        path = Path(path)
        path.write_text(yaml.safe_dump(self.as_dict(), sort_keys=False))
        return path

