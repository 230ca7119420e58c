"""Field sets as the API server's structured-merge-diff keeps them, and the apply merge.

A path is a tuple of elements: ("f", field), ("k", key JSON) for an item of a map list,
("v", value JSON) for a member of a set list. An object's field set holds every leaf (scalars,
empty maps, atomic lists and maps) and every list item. `to_fields_v1` / `from_fields_v1` convert
to and from the `metadata.managedFields[].fieldsV1` trie (`f:`, `k:`, `v:` keys, "." for a
member that also has children).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from reranker_devtools.devcluster.schema import SchemaNode

Element = tuple[str, str]
Path = tuple[Element, ...]

# Never part of a managed field set (the API server's stripMetaManager).
STRIPPED: frozenset[Path] = frozenset(
    {
        (("f", "apiVersion"),),
        (("f", "kind"),),
        (("f", "metadata"),),
        *(
            (("f", "metadata"), ("f", field))
            for field in (
                "name",
                "namespace",
                "creationTimestamp",
                "selfLink",
                "uid",
                "clusterName",
                "generation",
                "managedFields",
                "resourceVersion",
            )
        ),
    }
)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def item_key(item: Mapping[str, Any], keys: Iterable[str]) -> str:
    """The `k:` key of a map-list item: its key fields as compact sorted JSON."""
    return _json({k: item[k] for k in keys if k in item})


def fieldset(obj: Any, schema: SchemaNode) -> set[Path]:
    """Every leaf and list item of `obj`, minus the stripped metadata."""
    out: set[Path] = set()
    _walk(obj, schema, (), out)
    return {p for p in out if p and p not in STRIPPED and p[:2] not in STRIPPED}


def _walk(value: Any, schema: SchemaNode, prefix: Path, out: set[Path]) -> None:
    if isinstance(value, Mapping):
        if (not value or schema.atomic_map) and prefix:
            out.add(prefix)
            return
        for key, sub in value.items():
            _walk(sub, schema.child(key), (*prefix, ("f", key)), out)
        return
    if isinstance(value, list):
        kind = schema.list_type
        if kind.kind == "map" and all(isinstance(i, Mapping) for i in value):
            items = schema.items()
            for item in value:
                path = (*prefix, ("k", item_key(item, kind.keys)))
                out.add(path)
                for key, sub in item.items():
                    _walk(sub, items.child(key), (*path, ("f", key)), out)
            return
        if kind.kind == "set":
            out.update((*prefix, ("v", _json(v))) for v in value)
            return
    out.add(prefix)


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """The fieldsV1 trie of a set of paths."""
    paths = set(paths)
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for element in path:
            node = node.setdefault(f"{element[0]}:{element[1]}", {})
    for path in paths:
        node = root
        for element in path:
            node = node[f"{element[0]}:{element[1]}"]
        if node:
            node["."] = {}
    return root


def from_fields_v1(trie: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    """The paths of a fieldsV1 trie."""
    out: set[Path] = set()
    for key, sub in trie.items():
        if key == ".":
            out.add(prefix)
            continue
        kind, _, rest = key.partition(":")
        if kind in ("k", "v"):
            rest = _json(json.loads(rest))
        path = (*prefix, (kind, rest))
        if sub:
            out |= from_fields_v1(sub, path)
        else:
            out.add(path)
    return out


def _find(items: list[Any], element: Element) -> int | None:
    """The index of the list item a `k:` or `v:` element names."""
    kind, value = element
    keys = json.loads(value) if kind == "k" else None
    for i, item in enumerate(items):
        if kind == "v" and _json(item) == value:
            return i
        if keys is not None and isinstance(item, Mapping) and item_key(item, keys) == value:
            return i
    return None


def value_at(obj: Any, path: Path) -> tuple[bool, Any]:
    """(found, value) of a path in an object."""
    node = obj
    for element in path:
        if element[0] == "f":
            if not isinstance(node, Mapping) or element[1] not in node:
                return False, None
            node = node[element[1]]
        else:
            if not isinstance(node, list):
                return False, None
            index = _find(node, element)
            if index is None:
                return False, None
            node = node[index]
    return True, node


def merge(live: Any, config: Any, schema: SchemaNode) -> Any:
    """`config` merged into `live` as apply does: map lists by key, sets by value, atomic
    lists and maps replaced, other maps field by field."""
    if isinstance(config, Mapping) and isinstance(live, Mapping) and not schema.atomic_map:
        out = dict(live)
        for key, value in config.items():
            out[key] = merge(live.get(key), value, schema.child(key))
        return out
    if isinstance(config, list) and isinstance(live, list):
        kind = schema.list_type
        if kind.kind == "map":
            out_list = [copy.deepcopy(x) for x in live]
            for item in config:
                index = _find(out_list, ("k", item_key(item, kind.keys)))
                if index is None:
                    out_list.append(copy.deepcopy(item))
                else:
                    out_list[index] = merge(out_list[index], item, schema.items())
            return out_list
        if kind.kind == "set":
            return [copy.deepcopy(x) for x in live] + [
                copy.deepcopy(x) for x in config if x not in live
            ]
    return copy.deepcopy(config)


def remove(obj: dict[str, Any], paths: Iterable[Path], keep: set[Path]) -> dict[str, Any]:
    """`obj` without `paths`: a list item or map goes whole unless a path in `keep` lies
    beneath it (then only its removed leaves go). Maps left empty by a removal are dropped."""
    out = copy.deepcopy(obj)
    gone: set[Path] = set()
    for path in sorted(paths, key=len):
        if any(path[:i] in gone for i in range(1, len(path))):
            continue  # removed with its parent
        if any(len(k) > len(path) and k[: len(path)] == path for k in keep):
            continue
        _remove_one(out, path)
        gone.add(path)
    return out


def _remove_one(obj: Any, path: Path) -> None:
    parents: list[tuple[Any, Element]] = []
    node = obj
    for element in path[:-1]:
        found, child = value_at(node, (element,))
        if not found:
            return
        parents.append((node, element))
        node = child
    last = path[-1]
    if last[0] == "f":
        if isinstance(node, dict):
            node.pop(last[1], None)
    elif isinstance(node, list):
        index = _find(node, last)
        if index is not None:
            del node[index]
    for parent, element in reversed(parents):  # drop maps the removal emptied
        found, child = value_at(parent, (element,))
        if not (found and isinstance(child, dict) and not child and element[0] == "f"):
            break
        parent.pop(element[1])
