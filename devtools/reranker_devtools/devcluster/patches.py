"""Patch semantics: JSON merge patch and strategic merge patch (server-side apply, which needs
the schema and the managed fields, is in `managed`)."""

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
