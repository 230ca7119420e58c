"""meta.k8s.io Tables, as an API server answers `kubectl get` (printer columns).

A client asks with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`. A custom resource's
columns are Name plus its CRD's additionalPrinterColumns (simple JSONPaths, evaluated here);
any other kind gets Name and Age. Like the real server, a `date` cell is sent as a human-readable
age ("5m10s") and a missing value as null.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

TABLE_GROUP = "meta.k8s.io"
NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "priority": 0,
    "description": "Name must be unique within a namespace.",
}
AGE_COLUMN = {
    "name": "Age",
    "type": "date",
    "format": "",
    "priority": 0,
    "description": "CreationTimestamp is a timestamp of when the object was created.",
}
_AGE_PATH = ".metadata.creationTimestamp"
_TOKEN = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_-]+)"""
    r"""|\[(?P<index>-?\d+|\*)\]"""
    r"""|\[\?\(@\.(?P<key>[A-Za-z0-9_.-]+)\s*==\s*(?P<quote>["'])(?P<value>.*?)(?P=quote)\)\]"""
)


class JsonPathError(ValueError):
    """A printer column JSONPath outside the simple subset served here."""


def table_version(accept: str | None) -> str | None:
    """The meta.k8s.io Table version an Accept header asks for first (v1 or v1beta1), or None."""
    for media_range in (accept or "").split(","):
        params = dict(p.strip().partition("=")[::2] for p in media_range.split(";")[1:])
        if (
            params.get("as") == "Table"
            and params.get("g") == TABLE_GROUP
            and params.get("v") in ("v1", "v1beta1")
        ):
            return params["v"]
    return None


def parse_jsonpath(path: str) -> list[tuple[str, Any]]:
    """`.a.b[0]`, `.a[*].b`, `.a[?(@.type=="Ready")].status` as (op, arg) steps."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    steps: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise JsonPathError(f"jsonPath: unsupported syntax at {text[pos:]!r} in {path!r}")
        if match.group("field") is not None:
            steps.append(("field", match.group("field")))
        elif match.group("index") is not None:
            index = match.group("index")
            steps.append(("all", None) if index == "*" else ("index", int(index)))
        else:
            steps.append(("filter", (match.group("key").split("."), match.group("value"))))
        pos = match.end()
    if not steps:
        raise JsonPathError(f"jsonPath: empty path {path!r}")
    return steps


def _dig(value: Any, keys: Sequence[str]) -> Any:
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def evaluate(path: str, obj: Any) -> list[Any]:
    """Every value the simple JSONPath selects in `obj` (empty when nothing matches)."""
    current = [obj]
    for op, arg in parse_jsonpath(path):
        found: list[Any] = []
        for value in current:
            if (op == "field" and isinstance(value, Mapping) and arg in value) or (
                op == "index" and isinstance(value, list) and -len(value) <= arg < len(value)
            ):
                found.append(value[arg])
            elif op == "all" and isinstance(value, list):
                found.extend(value)
            elif op == "filter" and isinstance(value, list):
                keys, wanted = arg
                found.extend(
                    item
                    for item in value
                    if _dig(item, keys) is not None and str(_dig(item, keys)) == wanted
                )
        current = found
    return current


def human_duration(seconds: float) -> str:
    """An age as Kubernetes prints it (k8s.io/apimachinery duration.HumanDuration)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, hours // 24 % 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def _age(timestamp: Any, now: datetime.datetime) -> str | None:
    if not isinstance(timestamp, str):
        return None
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return human_duration((now - then).total_seconds())


def _cell(column: Mapping[str, Any], obj: Mapping[str, Any], now: datetime.datetime) -> Any:
    """One cell: the column's first JSONPath result, typed like the real server's."""
    found = evaluate(column["jsonPath"], obj)
    if not found or found[0] is None:
        return None
    value, kind = found[0], column.get("type", "string")
    if kind == "date":
        return _age(value, now)
    if kind == "integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind == "number":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value).lower() if isinstance(value, bool) else str(value)


def printer_columns(columns: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Column specs (name, type, jsonPath, priority, ...) of a kind; Name + Age by default."""
    specs = [dict(NAME_COLUMN, jsonPath=".metadata.name")]
    given = list(columns or [])
    if not given:
        return [*specs, dict(AGE_COLUMN, jsonPath=_AGE_PATH)]
    for column in given:
        for field in ("name", "jsonPath"):
            if not column.get(field):
                raise JsonPathError(f"additionalPrinterColumns[].{field}: Required value")
        parse_jsonpath(column["jsonPath"])  # fail early on unsupported paths
        specs.append(
            {
                "name": column["name"],
                "type": column.get("type", "string"),
                "format": column.get("format", ""),
                "description": column.get("description", ""),
                "priority": int(column.get("priority", 0)),
                "jsonPath": column["jsonPath"],
            }
        )
    return specs


def _row_object(obj: Mapping[str, Any], include: str) -> Any:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": obj.get("metadata", {}),
    }


def render_table(
    objects: Iterable[Mapping[str, Any]],
    columns: list[dict[str, Any]],
    *,
    version: str = "v1",
    resource_version: str = "",
    include_object: str = "PartialObjectMetadata",
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """A meta.k8s.io Table of `objects` with `columns` (from printer_columns)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    definitions = [
        {k: c[k] for k in ("name", "type", "format", "description", "priority")} for c in columns
    ]
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [_cell(c, obj, now) for c in columns]}
        row_object = _row_object(obj, include_object)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    return {
        "apiVersion": f"{TABLE_GROUP}/{version}",
        "kind": "Table",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
