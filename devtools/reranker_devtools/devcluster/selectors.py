"""Kubernetes label selectors and metadata field selectors."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any


@functools.lru_cache(maxsize=1024)
def _parse_selector(text: str) -> tuple[tuple[str, str, frozenset[str]], ...]:
    """Label selector terms as (key, operator, values); operators: = != in notin exists !."""
    terms: list[tuple[str, str, frozenset[str]]] = []
    for part in re.split(r",(?![^()]*\))", text.strip()):
        part = part.strip()
        if not part:
            continue
        if m := re.fullmatch(r"([^\s!=]+)\s+(in|notin)\s+\((.*)\)", part):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            terms.append((m.group(1), m.group(2), values))
        elif m := re.fullmatch(r"([^\s!=]+)\s*(==|=|!=)\s*(\S*)", part):
            terms.append((m.group(1), "!=" if m.group(2) == "!=" else "=", frozenset({m.group(3)})))
        elif part.startswith("!"):
            terms.append((part[1:].strip(), "!", frozenset()))
        else:
            terms.append((part, "exists", frozenset()))
    return tuple(terms)


def selector_matches(labels: Mapping[str, str], selector: str | None) -> bool:
    """Whether labels satisfy a Kubernetes label selector string."""
    for key, op, values in _parse_selector(selector or ""):
        present = key in labels
        value = labels.get(key)
        ok = {
            "=": present and value in values,
            "!=": not present or value not in values,
            "in": present and value in values,
            "notin": not present or value not in values,
            "exists": present,
            "!": not present,
        }[op]
        if not ok:
            return False
    return True


def _field(obj: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (metadata.name, involvedObject.kind, reason), or None."""
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def field_selector_matches(obj: Mapping[str, Any], selector: str | None) -> bool:
    """Equality field selectors on a dotted path (metadata.name, metadata.namespace, and the
    fields an Event is selected by: involvedObject.kind/name, reason, type)."""
    for part in (selector or "").split(","):
        if not part.strip():
            continue
        key, _, value = part.partition("=")
        negate = key.endswith("!")
        key, value = key.rstrip("!").strip(), value.lstrip("=").strip()
        ok = _field(obj, key) == value
        if ok == negate:
            return False
    return True
