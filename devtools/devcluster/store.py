"""The emulator's object store: stamping, status-subresource writes, deletion with
finalizers, garbage collection by ownerReferences, and watch events (a mixin of the emulator)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any

from reranker_devtools.devcluster.common import EmulatorError
from reranker_operator.status import now_rfc3339


def _resource(group: str, version: str, plural: str) -> Any:
    import kmock

    return kmock.resource(group, version, plural)


class StoreMixin:
    """Object state on top of kmock's storage (`_objects`, `_buses`, `_resources`)."""

    calls: list[Any]
    applied: dict[tuple[Any, ...], dict[str, Any]]
    namespaces: set[str]
    _objects: Any
    _buses: Any
    _resources: Any

    def _key(self, res: Any, namespace: str | None, name: str) -> tuple[Any, str | None, str]:
        return (_resource(res.group, res.version, res.plural), namespace, name)

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
        key = _resource(res.group, res.version, res.plural)
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
