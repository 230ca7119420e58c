"""The emulator's REST verbs: list/get (also as a meta.k8s.io Table), create, PUT, the patch
flavours, server-side apply, the scale subresource, and selector-aware watches (a mixin)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from reranker_devtools.devcluster.common import OUTAGE, EmulatorError
from reranker_devtools.devcluster.managed import server_side_apply
from reranker_devtools.devcluster.patches import merge_patch, strategic_merge_patch
from reranker_devtools.devcluster.selectors import field_selector_matches, selector_matches
from reranker_devtools.devcluster.tables import printer_columns, render_table, table_version
from reranker_operator.controller.status import now_rfc3339


def field_manager(request: Any) -> str:
    """Who a write is attributed to: `fieldManager`, else the user agent's product name (as
    the API server does)."""
    given = request.params.get("fieldManager")
    if given:
        return str(given)
    agent = request.headers.get("User-Agent", "") or "unknown"
    return agent.split("/", 1)[0][:128]


def _resource(group: str, version: str, plural: str) -> Any:
    import kmock

    return kmock.resource(group, version, plural)


class ApiMixin:
    """Serves one resolved request against the store (see StoreMixin)."""

    _lock: Any
    _buses: Any
    printer_columns: dict[tuple[str, str, str], list[dict[str, Any]]]

    async def _serve(self, request: Any) -> tuple[Any, int]:
        res = request.resource
        if not self._declared(res):
            raise EmulatorError(
                404, "NotFound", f"the server could not find the requested resource ({res})"
            )
        method = str(request.method.value).upper()
        ns, name, sub = request.namespace, request.name, request.subresource
        params = request.params
        async with self._lock:
            if method == "GET" and name is None:
                # serialised right away: no copies needed
                items = [
                    o
                    for o in self._items(res, ns, params.get("labelSelector"), copies=False)
                    if field_selector_matches(o, params.get("fieldSelector"))
                ]
                kind = (self._info(res).kind or res.plural.capitalize()) + "List"
                api_version = f"{res.group}/{res.version}" if res.group else res.version
                rv = str(next(self.rv))
                if table_version(request.headers.get("Accept")):
                    return self._table(request, res, items, rv), 200
                return {
                    "apiVersion": api_version,
                    "kind": kind,
                    "metadata": {"resourceVersion": rv},
                    "items": items,
                }, 200
            if method == "POST" and name is None:
                return await self.create_object(
                    res, ns, self._body(request), manager=field_manager(request)
                ), 201
            if name is None:
                raise EmulatorError(405, "MethodNotAllowed", f"{method} needs a name")
            live = self.live(res, ns, name)
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            if method == "PATCH" and content_type == "application/apply-patch+yaml":
                return await self._apply(request, res, ns, name, live), 200
            if live is None:
                raise EmulatorError(404, "NotFound", f'{res.plural} "{name}" not found')
            if method == "GET" and sub is None and table_version(request.headers.get("Accept")):
                return self._table(request, res, [live], live["metadata"]["resourceVersion"]), 200
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
                new = await self.update_object(res, live, body, sub, manager=field_manager(request))
                return (self._scale(res, new) if sub == "scale" else new), 200
            if method == "PATCH":
                body = self._body(request)
                base = self._scale(res, live) if sub == "scale" else live
                if content_type == "application/json-patch+json":
                    import jsonpatch

                    try:
                        patched = jsonpatch.apply_patch(base, body)
                    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                        # A failed "test" op (kopf's optimistic concurrency) is a 422.
                        raise EmulatorError(422, "Invalid", f"the patch failed: {exc}") from exc
                elif content_type == "application/strategic-merge-patch+json":
                    patched = strategic_merge_patch(base, body)
                else:
                    patched = merge_patch(base, body)
                if sub == "scale":
                    patched = self._unscale(res, live, patched)
                new = await self.update_object(
                    res, live, patched, sub, manager=field_manager(request)
                )
                return (self._scale(res, new) if sub == "scale" else new), 200
        raise EmulatorError(405, "MethodNotAllowed", f"{method} is not supported here")

    def _table(
        self, request: Any, res: Any, items: list[dict[str, Any]], resource_version: str
    ) -> dict[str, Any]:
        """The objects as a meta.k8s.io Table (a CRD's printer columns, else Name and Age)."""
        columns = self.printer_columns.get((res.group or "", res.version, res.plural))
        include = request.params.get("includeObject") or "PartialObjectMetadata"
        if include not in ("None", "Object", "PartialObjectMetadata"):
            raise EmulatorError(400, "BadRequest", f"includeObject: unsupported value {include!r}")
        return render_table(
            items,
            printer_columns(columns),
            version=table_version(request.headers.get("Accept")) or "v1",
            resource_version=resource_version,
            include_object=include,
        )

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
        scope = self._scope(res, request.subresource)
        obj = server_side_apply(
            live,
            applied,
            manager,
            self.schema(res),
            scope=scope,
            subresource=request.subresource,
            now=now_rfc3339(),
        )
        if live is None:
            return await self.create_object(res, ns, obj, applied=True)
        return await self.update_object(res, live, obj, request.subresource, applied=True)

    def _scale(self, res: Any, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta
            },
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": (obj.get("status") or {}).get("selector", ""),
            },
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

        key = _resource(res.group, res.version, res.plural)
        since = int(request.params.get("resourceVersion") or 0)
        async with self._lock:  # mark the bus first: no event falls between list and watch
            marker = await self._buses[key].mark()
            existing = [o for o in self._items(res, request.namespace, selector) if wanted(o)]
        try:
            for obj in existing:
                if int(obj["metadata"].get("resourceVersion", 0)) > since:
                    yield {"type": "ADDED", "object": obj}
            async for event in self._buses[key].stream(since=marker):
                if event.get("type") == OUTAGE:
                    return  # the connection drops; the client reconnects
                obj = event.get("object", {})
                if wanted(obj) and int(obj.get("metadata", {}).get("resourceVersion", 0)) > since:
                    yield event
        finally:
            await self._buses[key].unmark(marker)
