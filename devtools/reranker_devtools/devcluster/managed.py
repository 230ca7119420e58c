"""`metadata.managedFields`: which field manager owns which fields, kept as the API server does.

An Apply (server-side apply) makes its manager own exactly the applied fields: with force it
takes over those whose value it changes, and fields it applied before but no longer applies are
removed unless another manager owns them. An Update (create, PUT, merge / strategic / JSON
patch) makes its manager own the fields it added or changed, taking them from the others; fields
it removed leave every set. Writes to the status subresource are tracked apart from the rest.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reranker_devtools.devcluster.fieldsets import (
    Path,
    fieldset,
    from_fields_v1,
    merge,
    remove,
    to_fields_v1,
    value_at,
)
from reranker_devtools.devcluster.schema import SchemaNode

APPLY, UPDATE = "Apply", "Update"


@dataclass
class Entry:
    """One managedFields entry: a manager's fields from one kind of operation."""

    manager: str
    operation: str
    api_version: str
    subresource: str | None
    time: str
    paths: set[Path] = field(default_factory=set)

    def same_owner(self, manager: str, operation: str, subresource: str | None) -> bool:
        return (self.manager, self.operation, self.subresource) == (manager, operation, subresource)


def read(obj: Mapping[str, Any] | None) -> list[Entry]:
    """The entries of an object's managedFields."""
    out = []
    for raw in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        out.append(
            Entry(
                raw.get("manager", ""),
                raw.get("operation", UPDATE),
                raw.get("apiVersion", ""),
                raw.get("subresource"),
                raw.get("time", ""),
                from_fields_v1(raw.get("fieldsV1") or {}),
            )
        )
    return out


def write(obj: dict[str, Any], entries: list[Entry]) -> dict[str, Any]:
    """`obj` with its managedFields set from `entries` (empty entries dropped)."""
    raws = []
    for e in entries:
        if not e.paths:
            continue
        raw: dict[str, Any] = {
            "manager": e.manager,
            "operation": e.operation,
            "apiVersion": e.api_version,
            "time": e.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(e.paths),
        }
        if e.subresource:
            raw["subresource"] = e.subresource
        raws.append(raw)
    meta = obj.setdefault("metadata", {})
    if raws:
        meta["managedFields"] = raws
    else:
        meta.pop("managedFields", None)
    return obj


def _fields(obj: Mapping[str, Any], schema: SchemaNode, scope: str) -> set[Path]:
    """The field set of the status only ("status"), of all but it ("main"), or of all."""
    if scope == "status":
        part: Mapping[str, Any] = {"status": obj["status"]} if "status" in obj else {}
    elif scope == "main":
        part = {k: v for k, v in obj.items() if k != "status"}
    else:
        part = obj
    return fieldset(part, schema)


def _changed(before: Any, after: Any, paths: set[Path]) -> set[Path]:
    """The paths whose leaf value differs between two objects (items: only when new)."""
    out = set()
    for path in paths:
        found, old = value_at(before, path)
        if not found or (path[-1][0] == "f" and value_at(after, path)[1] != old):
            out.add(path)
    return out


def _entry(
    entries: list[Entry],
    manager: str,
    operation: str,
    subresource: str | None,
    api_version: str,
    now: str,
) -> Entry:
    for e in entries:
        if e.same_owner(manager, operation, subresource):
            return e
    entry = Entry(manager, operation, api_version, subresource, now)
    entries.append(entry)
    return entry


def _without_managed(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(obj))
    (out.get("metadata") or {}).pop("managedFields", None)
    return out


def server_side_apply(
    live: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    manager: str,
    schema: SchemaNode,
    *,
    scope: str = "all",
    subresource: str | None = None,
    now: str = "",
) -> dict[str, Any]:
    """The object after `manager` applies `config` with force, managedFields included."""
    entries = read(live)
    base = _without_managed(live) if live is not None else {}
    applied = _fields(config, schema, scope)
    merged = merge(base, _without_managed(config), schema)
    mine = _entry(entries, manager, APPLY, subresource, str(config.get("apiVersion", "")), now)
    changed = _changed(base, merged, applied)
    others = [e for e in entries if e is not mine]
    for e in others:  # force: conflicting fields change hands
        if e.paths & changed:
            e.paths -= changed
            e.time = now
    kept = set().union(*(e.paths for e in others))
    dropped = mine.paths - applied
    result = remove(merged, dropped - kept, kept) if dropped else merged
    if mine.paths != applied:
        mine.paths, mine.time = applied, now
    mine.api_version = str(config.get("apiVersion", mine.api_version))
    return write(result, entries)


def record_update(
    live: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    manager: str | None,
    schema: SchemaNode,
    *,
    scope: str = "all",
    subresource: str | None = None,
    now: str = "",
) -> dict[str, Any]:
    """`new` with managedFields after an Update by `manager` turned `live` into it. Manager
    None is the API server itself rewriting values in place: ownership does not move."""
    entries = read(live)
    result = _without_managed(new)
    if manager is None:
        return write(result, entries)
    before = _fields(_without_managed(live), schema, scope) if live else set()
    after = _fields(result, schema, scope)
    gone = before - after
    touched = (after - before) | _changed(_without_managed(live or {}), result, after & before)
    mine = (
        _entry(entries, manager, UPDATE, subresource, str(new.get("apiVersion", "")), now)
        if touched
        else None
    )
    for e in entries:
        lost = (e.paths & gone) | (set() if e is mine else e.paths & touched)
        if lost:
            e.paths -= lost
            e.time = now
    if mine is not None:
        mine.paths |= touched
        mine.time = now
    return write(result, entries)
