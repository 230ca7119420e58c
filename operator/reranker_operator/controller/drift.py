"""Drift: would applying our manifest change the live object? Judged by the fields we own.

The API server records, per field manager, the fields it owns (`metadata.managedFields`, a
`fieldsV1` trie: `f:<field>`, `k:<key JSON>` for an item of a list keyed by some fields,
`v:<value JSON>` for a set member, `.` for the node itself). Applying our manifest changes
the object when a value we set differs, when we set a field or list item we do not own (someone
took it over, or removed it), or when we own one we no longer set (it would be removed). Entries
other managers added (a webhook's sidecar container, env var or volume, a controller's fields)
and defaulted fields are not ours and never drift. The same trie tells how each list merges: its
entries are keyed items, or the list is owned whole (atomic) and compared element by element.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reranker_operator.api.quantity import is_quantity, parse_quantity

FieldsV1 = Mapping[str, Any]
APPLY = "Apply"
# Never part of a managed field set (the API server strips them), though manifests carry them.
UNTRACKED = {
    "": frozenset({"apiVersion", "kind"}),
    ".metadata": frozenset(
        {
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        }
    ),
}

# Where the API server rewrites a quantity into its canonical form ("1000m" -> "1", 2 -> "2",
# "1024Mi" -> "1Gi"): resource requests/limits (containers, PVCs, quotas) and sizes.
_QUANTITY_MAPS = frozenset({"requests", "limits", "capacity", "hard"})
_QUANTITY_KEYS = frozenset({"sizeLimit", "averageValue"})
# Ports: an int and the same number spelled as a string name one port.
_PORT_KEYS = frozenset({"port", "targetPort", "containerPort", "hostPort", "number"})


def owned_fields(obj: Mapping[str, Any], manager: str) -> FieldsV1 | None:
    """The fields `manager` owns by server-side apply on the main resource, else None."""
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if (
            entry.get("manager") == manager
            and entry.get("operation") == APPLY
            and not entry.get("subresource")
            and entry.get("fieldsType", "FieldsV1") == "FieldsV1"
        ):
            return entry.get("fieldsV1") or {}
    return None


def _key_of(path: str) -> tuple[str, str]:
    """(parent key, key) of a drift path like ".spec.resources.limits.cpu"."""
    parts = [p for p in path.replace("[", ".[").split(".") if p and not p.startswith("[")]
    return (parts[-2] if len(parts) > 1 else "", parts[-1] if parts else "")


def _as_quantity(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        return parse_quantity(value) if is_quantity(str(value)) else None
    except ValueError:
        return None


def _same_scalar(want: Any, have: Any, path: str = "") -> bool:
    """Equal, or equal after the API server's normalisation of this field (by its path)."""
    if want == have and isinstance(want, bool) == isinstance(have, bool):
        return True
    parent, key = _key_of(path)
    if parent in _QUANTITY_MAPS or key in _QUANTITY_KEYS:
        mine, theirs = _as_quantity(want), _as_quantity(have)
        return mine is not None and mine == theirs
    if key in _PORT_KEYS and not isinstance(want, bool) and not isinstance(have, bool):
        return (
            isinstance(want, (int, str)) and isinstance(have, (int, str)) and str(want) == str(have)
        )
    return False


def _omitted_when_empty(value: Any) -> bool:
    """A value the API server drops on output (Go `omitempty`): "", [], {}, None."""
    return value is None or (isinstance(value, (str, list, dict)) and not value)


def _children(owned: FieldsV1 | None) -> dict[str, Any]:
    """The entries below a node (without its "." marker); empty for a leaf."""
    return {k: v for k, v in (owned or {}).items() if k != "."}


def drift(want: Any, have: Any, owned: FieldsV1 | None = None, path: str = "") -> str | None:
    """The first path where applying `want` would change `have`, else None.

    With `owned` (our fieldsV1 at this node) the comparison follows ownership as described in
    the module docstring. Without it (an atomic value, or no ownership known) values are
    compared: fields only `have` carries are not drift, nor are empty values `want` sets that
    the API server omits, nor spellings it normalises (quantities, int-or-string ports).
    """
    below = _children(owned)
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            return None if _omitted_when_empty(want) and have is None else path or "."
        return _mapping_drift(want, have, below if owned is not None and below else None, path)
    if isinstance(want, list):
        if not isinstance(have, list):
            return path
        if any(k.startswith(("k:", "v:")) for k in below):
            return _list_drift(want, have, below, path)
        if len(want) != len(have):
            return path
        for i, (w, h) in enumerate(zip(want, have)):
            found = drift(w, h, None, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if _same_scalar(want, have, path) else path


def _mapping_drift(
    want: Mapping[str, Any], have: Mapping[str, Any], owned: dict[str, Any] | None, path: str
) -> str | None:
    untracked = UNTRACKED.get(path, frozenset()) if owned is not None else frozenset()
    for key, value in want.items():
        if key not in have:
            if _omitted_when_empty(value):
                continue
            return f"{path}.{key}"
        child = None
        if owned is not None and key not in untracked:
            child = owned.get(f"f:{key}")
            if child is None:
                return f"{path}.{key}"  # we set it but do not own it: someone took it over
        found = drift(value, have[key], child, f"{path}.{key}")
        if found:
            return found
    for entry in owned or {}:
        if entry.startswith("f:") and entry[2:] not in want:
            return f"{path}.{entry[2:]}"  # ours, no longer set: applying would remove it
    return None


def _same_key(key: Mapping[str, Any], item: Any) -> bool:
    return isinstance(item, Mapping) and all(
        k in item and _same_scalar(v, item[k], f".{k}") for k, v in key.items()
    )


def _list_drift(want: list[Any], have: list[Any], owned: dict[str, Any], path: str) -> str | None:
    """A list whose items we own one by one (keyed items, or set members)."""
    keyed = {k: json.loads(k[2:]) for k in owned if k.startswith("k:")}
    members = [json.loads(k[2:]) for k in owned if k.startswith("v:")]
    fields = next(iter(keyed.values())).keys() if keyed else ()
    matched: set[str] = set()
    for i, item in enumerate(want):
        where = f"{path}[{i}]"
        if not keyed:
            if item not in members or item not in have:
                return where
            continue
        key = {f: item[f] for f in fields if isinstance(item, Mapping) and f in item}
        entry = next(
            (
                k
                for k, v in keyed.items()
                if k not in matched and _same_key(v, key) and len(v) == len(key)
            ),
            None,
        )
        live = next((h for h in have if _same_key(key, h)), None)
        if entry is None or live is None:
            return where
        matched.add(entry)
        found = drift(item, live, owned[entry], where)
        if found:
            return found
    if keyed and len(matched) != len(keyed):
        return path  # we own an item we no longer set
    if not keyed and len(members) != len(want):
        return path
    return None
