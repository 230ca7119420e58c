"""What the API server's OpenAPI schema says about merging: which lists are maps (and their
keys), sets or atomic, and which maps are atomic.

Built-in kinds read the Kubernetes OpenAPI definitions that kubernetes-validate ships (the
`x-kubernetes-list-type` / `-list-map-keys` / `-map-type` extensions the real API server merges
by); a custom resource reads its CRD's openAPIV3Schema. A kind without a schema merges like a
CRD without those extensions: maps field by field, lists atomic.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class ListType:
    """How a list merges: "atomic", "set", or "map" keyed by `keys`."""

    kind: str
    keys: tuple[str, ...] = ()


ATOMIC = ListType("atomic")


class SchemaNode:
    """One node of a schema, resolving `$ref`s lazily; None-safe (`child` of nothing is empty)."""

    def __init__(self, schema: Mapping[str, Any] | None, definitions: Mapping[str, Any]) -> None:
        self.definitions = definitions
        self.schema = self._resolve(schema or {})

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 32:
            extensions = {k: v for k, v in schema.items() if k.startswith("x-kubernetes")}
            target = self.definitions.get(str(schema["$ref"]).rsplit("/", 1)[-1]) or {}
            schema = {**target, **extensions}
            seen += 1
        return schema

    def child(self, key: str) -> SchemaNode:
        """The schema of a field (or of a map's values)."""
        props = self.schema.get("properties") or {}
        if key in props:
            return SchemaNode(props[key], self.definitions)
        extra = self.schema.get("additionalProperties")
        return SchemaNode(extra if isinstance(extra, Mapping) else None, self.definitions)

    def items(self) -> SchemaNode:
        """The schema of a list's items."""
        items = self.schema.get("items")
        return SchemaNode(items if isinstance(items, Mapping) else None, self.definitions)

    @property
    def list_type(self) -> ListType:
        kind = self.schema.get("x-kubernetes-list-type")
        if kind == "map":
            return ListType("map", tuple(self.schema.get("x-kubernetes-list-map-keys") or ()))
        if kind == "set":
            return ListType("set")
        return ATOMIC

    @property
    def atomic_map(self) -> bool:
        return self.schema.get("x-kubernetes-map-type") == "atomic"


@functools.lru_cache(maxsize=1)
def _builtin_definitions() -> tuple[dict[str, Any], dict[tuple[str, str, str], str]]:
    """The newest Kubernetes definitions kubernetes-validate ships, and (group, version, kind)
    -> definition name."""
    root = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    newest = max(
        (p.name for p in root.iterdir() if p.name.endswith("-local")),
        key=lambda n: tuple(int(x) for x in n[1:].split("-")[0].split(".")),
    )
    definitions = json.loads(root.joinpath(newest, "_definitions.json").read_text())["$defs"]
    kinds = {
        (g["group"], g["version"], g["kind"]): name
        for name, d in definitions.items()
        for g in d.get("x-kubernetes-group-version-kind") or ()
    }
    return definitions, kinds


class Schemas:
    """The schema of each kind the emulator serves: built-ins, plus CRDs' own schemas."""

    def __init__(self) -> None:
        self._crds: dict[tuple[str, str, str], Mapping[str, Any]] = {}

    def add_crd_version(
        self, group: str, version: str, kind: str, schema: Mapping[str, Any] | None
    ) -> None:
        """A custom resource's openAPIV3Schema (None: no schema, lists merge atomically)."""
        self._crds[(group, version, kind)] = schema or {}

    def custom(self, api_version: str, kind: str) -> Mapping[str, Any] | None:
        """A custom resource's own schema (None for built-in kinds)."""
        group, _, version = api_version.rpartition("/")
        return self._crds.get((group, version, kind))

    def of(self, api_version: str, kind: str) -> SchemaNode:
        """The root schema node of a kind (empty for kinds without a schema)."""
        group, _, version = api_version.rpartition("/")
        if (group, version, kind) in self._crds:
            return SchemaNode(self._crds[(group, version, kind)], {})
        definitions, kinds = _builtin_definitions()
        name = kinds.get((group, version, kind))
        return SchemaNode(definitions.get(name) if name else None, definitions)


def apply_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """`value` with its structural schema's defaults filled in, as the API server defaults a
    custom resource on every write (and the tests that evaluate the CRD's CEL rules need).

    A missing property with a `default` gets a deep copy of it; defaults are then applied inside
    it too, only inside objects that are present. Array items and map values are defaulted too.
    """
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties") or {}
        out = dict(value)
        for name, sub in props.items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(sub, out[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for name in out.keys() - props.keys():
                out[name] = apply_defaults(extra, out[name])
        return out
    if isinstance(value, list) and schema.get("type") == "array" and "items" in schema:
        return [apply_defaults(schema["items"], v) for v in value]
    return value
