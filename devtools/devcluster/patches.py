"""Patch semantics: JSON merge patch, strategic merge patch, server-side apply."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

_MERGE_KEYS = ("name", "mountPath", "containerPort", "port", "devicePath", "type", "ip")


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
