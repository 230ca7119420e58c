"""The emulator's object store: stamping, status-subresource writes, deletion with
finalizers, garbage collection by ownerReferences, and watch events (a mixin of the emulator)."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Mapping
from typing import Any

from reranker_devtools.devcluster import managed
from reranker_devtools.devcluster.common import DEPLOYMENTS, EmulatorError
from reranker_devtools.devcluster.rollout import needs_rollout, roll_out
from reranker_devtools.devcluster.schema import SchemaNode, Schemas, apply_defaults
from reranker_devtools.devcluster.selectors import selector_matches
from reranker_operator.controller.status import now_rfc3339


def _resource(group: str, version: str, plural: str) -> Any:
    import kmock

    return kmock.resource(group, version, plural)


class StoreMixin:
    """Object state on top of kmock's storage (`_objects`, `_buses`, `_resources`)."""

    calls: list[Any]
    schemas: Schemas
    rollout_phase: str | None  # the stand-in Deployment controller's target (auto_rollout)
    endpoint_slices: Any  # endpoints.EndpointSlices once DevCluster.endpoint_slices enabled it
    _live: dict[Any, dict[tuple[Any, str | None, str], dict[str, Any]]]  # resource -> key -> obj
    _uids: dict[str, tuple[Any, str | None, str]]  # uid of every live object -> its key
    _rollouts: set[Any]
    _lock: Any
    namespaces: set[str]
    _objects: Any
    _buses: Any
    _resources: Any

    def _key(self, res: Any, namespace: str | None, name: str) -> tuple[Any, str | None, str]:
        return (_resource(res.group, res.version, res.plural), namespace, name)

    def schema(self, res: Any) -> SchemaNode:
        """The merge schema of a resource's kind."""
        api_version = f"{res.group}/{res.version}" if res.group else res.version
        return self.schemas.of(api_version, self._info(res).kind or "")

    def _scope(self, res: Any, subresource: str | None) -> str:
        """Which fields a write may own: status only, all but status, or all."""
        if "status" not in self._info(res).subresources:
            return "all"
        return "status" if subresource == "status" else "main"

    def live(self, res: Any, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = self._key(res, namespace, name)
        raw = self._live.get(key[0], {}).get(key)
        if raw is None:
            if (res.group, res.plural) == ("", "namespaces") and name in self.namespaces:
                return next(o for o in self._items(res, None) if o["metadata"]["name"] == name)
            return None
        return copy.deepcopy(raw)

    def _items(
        self, res: Any, namespace: str | None, selector: str | None = None, *, copies: bool = True
    ) -> list[dict[str, Any]]:
        """The stored objects of a resource, in a namespace, matching a selector (copies, or
        the stored dicts themselves to serialise right away)."""
        items = []
        for (_r, ns, _name), raw in list(self._live.get(self._key(res, None, "")[0], {}).items()):
            if (namespace is None or ns == namespace) and (
                not selector
                or selector_matches((raw.get("metadata") or {}).get("labels") or {}, selector)
            ):
                items.append(copy.deepcopy(raw) if copies else raw)
        if (res.group, res.plural) == ("", "namespaces"):  # namespaces in use exist
            stored = {o["metadata"]["name"] for o in items}
            items += [
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns, "uid": f"namespace-{ns}", "resourceVersion": "1"},
                    "status": {"phase": "Active"},
                }
                for ns in sorted(self.namespaces - stored)
            ]
        return items

    async def _emit(self, res: Any, kind: str, obj: Mapping[str, Any]) -> None:
        key = _resource(res.group, res.version, res.plural)
        # Stored objects are never changed in place (a write stores a new dict): no copy.
        await self._buses[key].put({"type": kind, "object": obj})

    async def store(self, res: Any, obj: dict[str, Any], event: str) -> dict[str, Any]:
        """Store a full object (already stamped, a custom resource defaulted by its schema) and
        publish the watch event."""
        custom = self.schemas.custom(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        if custom:
            obj = apply_defaults(custom, obj)
        meta = obj["metadata"]
        key = self._key(res, meta.get("namespace"), meta["name"])
        if key in self._objects and not self._objects[key].deleted:
            self._objects[key].history.append(obj)
        elif key in self._objects:
            self._objects[key].create(obj)
        else:
            self._objects[key] = obj
        self._live.setdefault(key[0], {})[key] = obj
        if meta.get("uid"):
            self._uids[meta["uid"]] = key
        await self._emit(res, event, obj)
        if self.endpoint_slices is not None:
            self.endpoint_slices.observe(self, res, obj)
        if (
            self.rollout_phase
            and (res.group, res.plural) == ("apps", "deployments")
            and (needs_rollout(obj))
        ):
            task = asyncio.get_running_loop().create_task(
                self._auto_rollout(meta.get("namespace"), meta["name"])
            )
            self._rollouts.add(task)
            task.add_done_callback(self._rollouts.discard)
        return copy.deepcopy(obj)

    async def _auto_rollout(self, namespace: str, name: str) -> None:
        """The stand-in Deployment controller's reaction to a new generation."""
        async with self._lock:
            live = self.live(DEPLOYMENTS, namespace, name)
            if self.rollout_phase and live is not None and needs_rollout(live):
                await roll_out(self, namespace, name, self.rollout_phase)

    async def create_object(
        self,
        res: Any,
        namespace: str | None,
        body: Mapping[str, Any],
        *,
        manager: str | None = None,
        applied: bool = False,
    ) -> dict[str, Any]:
        """Create an object; `manager` owns its fields (an Update), or with `applied` the body
        carries the managedFields an apply computed."""
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
            raise EmulatorError(
                409, "AlreadyExists", f'{res.plural} "{meta["name"]}" already exists'
            )
        obj.setdefault("apiVersion", f"{res.group}/{res.version}" if res.group else "v1")
        obj.setdefault("kind", info.kind or res.plural.capitalize())
        meta.update(
            uid=str(uuid.uuid4()),
            resourceVersion=str(next(self.rv)),
            creationTimestamp=now_rfc3339(),
            generation=1,
        )
        meta.pop("deletionTimestamp", None)
        if "status" in info.subresources:
            obj.pop("status", None)
        if not applied:
            obj = managed.record_update(
                None,
                obj,
                manager,
                self.schema(res),
                scope=self._scope(res, None),
                now=now_rfc3339(),
            )
        stored = await self.store(res, obj, "ADDED")
        if self._orphaned(stored):  # the garbage collector removes it right away
            await self.remove(res, stored)
        return stored

    def _orphaned(self, obj: Mapping[str, Any]) -> bool:
        """Every owner of `obj` is gone (the garbage collector's deletion rule)."""
        owners = {r.get("uid") for r in obj["metadata"].get("ownerReferences") or []}
        if not owners:
            return False
        return not owners & self._uids.keys()

    async def update_object(
        self,
        res: Any,
        live: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
        *,
        manager: str | None = None,
        applied: bool = False,
    ) -> dict[str, Any]:
        """Write `new` over `live`, honouring the status subresource; no-ops write nothing.

        `manager` owns what the write adds or changes (None: the server itself rewrote values,
        no ownership moves); with `applied`, `new` carries the managedFields an apply computed.
        """
        info = self._info(res)
        new = copy.deepcopy(new)
        computed = (new.get("metadata") or {}).get("managedFields") if applied else None
        if "status" in info.subresources:
            if subresource == "status":
                new = dict(copy.deepcopy(live), status=new.get("status"))
                if new["status"] is None:
                    new.pop("status")
            else:
                new.pop("status", None)
                if "status" in live:
                    new["status"] = copy.deepcopy(live["status"])
        if applied:
            new.setdefault("metadata", {})["managedFields"] = computed
        else:
            new = managed.record_update(
                live,
                new,
                manager,
                self.schema(res),
                scope=self._scope(res, subresource),
                subresource=subresource,
                now=now_rfc3339(),
            )
        meta = new.setdefault("metadata", {})
        for field in (
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "deletionTimestamp",
            "generation",
            "resourceVersion",
        ):
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
            self._live.get(key[0], {}).pop(key, None)
            self._uids.pop(meta.get("uid"), None)
            gone = copy.deepcopy(dict(obj))
            gone["metadata"]["resourceVersion"] = str(next(self.rv))
            await self._emit(res, "DELETED", gone)
            if self.endpoint_slices is not None:
                self.endpoint_slices.observe(self, res, gone)
        uid = meta.get("uid")
        for (r, _ns, _name), dep in [
            i for objs in list(self._live.values()) for i in list(objs.items())
        ]:
            refs = dep.get("metadata", {}).get("ownerReferences") or []
            if any(ref.get("uid") == uid for ref in refs):
                await self.delete_object(r, dep)

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
