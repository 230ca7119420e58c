"""Apply a RerankerService's children, prune the ones no longer wanted, and detect drift.

A child is written only when it is missing, when the hash of its desired manifest (kept in an
annotation) differs from the live one, or when a field we set differs from the live value
(someone edited it). A steady state therefore makes no write calls at all.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reranker_operator import status as status_mod
from reranker_operator.constants import (
    CHILD_RESOURCES,
    CRD_GROUP,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    MANAGER,
)
from reranker_operator.kube import PODS, RERANKER_SERVICES, KubeApiError, KubeClient, ResourceRef
from reranker_operator.quantity import is_quantity, parse_quantity
from reranker_operator.render import render_children
from reranker_operator.spec import InvalidSpecError

DESIRED_HASH_ANNOTATION = f"{CRD_GROUP}/desired-hash"
# Children whose API exists only when a CRD is installed (the Prometheus Operator's).
OPTIONAL_CHILDREN = tuple(c for c in CHILD_RESOURCES if c.kind in status_mod.OPTIONAL_APIS)


def desired_hash(manifest: Mapping[str, Any]) -> str:
    """A stable hash of a manifest (without its own hash annotation)."""
    clean = json.loads(json.dumps(manifest, sort_keys=True, default=str))
    meta = clean.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    annotations.pop(DESIRED_HASH_ANNOTATION, None)
    if not annotations:
        meta.pop("annotations", None)
    blob = json.dumps(clean, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def with_hash(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the manifest carrying its desired-hash annotation."""
    out = json.loads(json.dumps(manifest, default=str))
    meta = out.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}),
                           DESIRED_HASH_ANNOTATION: desired_hash(manifest)}
    return out


# Where the API server rewrites a quantity into its canonical form ("1000m" -> "1", 2 -> "2",
# "1024Mi" -> "1Gi"): resource requests/limits (containers, PVCs, quotas) and sizes.
_QUANTITY_MAPS = frozenset({"requests", "limits", "capacity", "hard"})
_QUANTITY_KEYS = frozenset({"sizeLimit", "averageValue"})
# Ports: an int and the same number spelled as a string name one port.
_PORT_KEYS = frozenset({"port", "targetPort", "containerPort", "hostPort", "number"})


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
        return (isinstance(want, (int, str)) and isinstance(have, (int, str))
                and str(want) == str(have))
    return False


def _omitted_when_empty(value: Any) -> bool:
    """A value the API server drops on output (Go `omitempty`): "", [], {}, None."""
    return value is None or (isinstance(value, (str, list, dict)) and not value)


def drift(want: Any, have: Any, path: str = "") -> str | None:
    """The first path where `have` lacks or differs from a value `want` sets, else None.

    Fields only `have` carries (defaults, status, other managers') are not drift, nor are
    empty values `want` sets that the API server omits, nor spellings it normalises
    (quantities, int-or-string ports).
    """
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            return None if _omitted_when_empty(want) and have is None else path or "."
        for key, value in want.items():
            if key not in have:
                if _omitted_when_empty(value):
                    continue
                return f"{path}.{key}"
            found = drift(value, have[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return path
        for i, (w, h) in enumerate(zip(want, have)):
            found = drift(w, h, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if _same_scalar(want, have, path) else path


def instance_selector(name: str) -> str:
    """The label selector of every child of one RerankerService."""
    return f"{LABEL_MANAGED_BY}={MANAGER},{LABEL_INSTANCE}={name}"


def child_id(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """(apiVersion, kind, name) of a manifest or live object."""
    return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])


def owned_by(obj: Mapping[str, Any], uid: str | None) -> bool:
    """Whether an ownerReference of `obj` points at `uid`."""
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return uid is not None and any(ref.get("uid") == uid for ref in refs)


class ApiDiscovery:
    """Caches whether optional APIs (the Prometheus Operator CRDs) are served, for `ttl` seconds."""

    def __init__(self, client: KubeClient, ttl: float = 30.0) -> None:
        self.client, self.ttl = client, ttl
        self._cache: dict[tuple[str, str], tuple[float, bool]] = {}

    async def served(self, api_version: str, plural: str) -> bool:
        key = (api_version, plural)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        value = await self.client.served(api_version, plural)
        self._cache[key] = (time.monotonic(), value)
        return value


@dataclass
class ReconcileResult:
    """What one pass did and saw."""

    live: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    # optional kind the spec asks for -> whether its API is missing (it was then skipped)
    optional_apis: dict[str, bool] = field(default_factory=dict)

    def child(self, kind: str) -> dict[str, Any] | None:
        """The (first) live child of a kind, after this pass."""
        for (_api, k, _name), obj in self.live.items():
            if k == kind:
                return obj
        return None


async def reconcile_children(client: KubeClient, discovery: ApiDiscovery,
                             cr: Mapping[str, Any]) -> ReconcileResult:
    """Make the cluster match render_children(cr); raises InvalidSpecError before any write."""
    desired = [with_hash(m) for m in render_children(cr)]
    result = ReconcileResult()
    kinds = list(CHILD_RESOURCES)
    wanted_kinds = {m["kind"] for m in desired}
    for optional in OPTIONAL_CHILDREN:
        missing = not await discovery.served(optional.api_version, optional.plural)
        if optional.kind in wanted_kinds:
            result.optional_apis[optional.kind] = missing
        if missing:  # neither applied nor listed for pruning
            desired = [m for m in desired if m["kind"] != optional.kind]
            kinds = [k for k in kinds if k != optional]

    meta = cr["metadata"]
    namespace, name, uid = meta.get("namespace") or "default", meta["name"], meta.get("uid")
    live: dict[tuple[str, str, str], dict[str, Any]] = {}
    for kind in kinds:
        ref = ResourceRef(kind.api_version, kind.plural)
        for obj in await client.list(ref, namespace, instance_selector(name)):
            obj.setdefault("apiVersion", kind.api_version)
            obj.setdefault("kind", kind.kind)
            live[child_id(obj)] = obj

    wanted = {child_id(m) for m in desired}
    for manifest in desired:
        key = child_id(manifest)
        current = live.get(key)
        if current is None or drift(manifest, current) is not None:
            live[key] = await client.apply(manifest)
            result.applied.append(f"{key[1]}/{key[2]}")

    for key, obj in list(live.items()):
        if key in wanted or not owned_by(obj, uid):
            continue  # retained PVCs carry no owner reference and are never pruned
        ref = ResourceRef(key[0], next(k.plural for k in kinds if k.kind == key[1]))
        await client.delete(ref, namespace, key[2])
        del live[key]
        result.deleted.append(f"{key[1]}/{key[2]}")

    result.live = {k: v for k, v in live.items() if k in wanted}
    return result


@dataclass
class PassOutcome:
    """The result of one full pass over a RerankerService (children, then status)."""

    status: dict[str, Any]
    events: list[tuple[str, str, str]]
    invalid: InvalidSpecError | None = None
    error: Exception | None = None
    children: ReconcileResult | None = None
    status_written: bool = False


async def reconcile_service(client: KubeClient, discovery: ApiDiscovery,
                            cr: Mapping[str, Any]) -> PassOutcome:
    """One pass: apply/prune children, then patch the status if (and only if) it changed.

    An invalid spec touches no child and yields Ready=False/InvalidSpec; an API failure yields
    ReconcileError. Either way the status is written (when changed) and the outcome says why.
    """
    meta = cr["metadata"]
    namespace, name = meta.get("namespace") or "default", meta["name"]
    invalid: InvalidSpecError | None = None
    error: Exception | None = None
    children: ReconcileResult | None = None
    try:
        children = await reconcile_children(client, discovery, cr)
        deployment = children.child("Deployment")
        pods: list[dict[str, Any]] = []
        if deployment is not None and not status_mod.Rollout.of(deployment, []).complete:
            pods = await client.list(PODS, namespace, instance_selector(name))
        new = status_mod.ready_status(
            cr, deployment, pods, optional_apis=children.optional_apis)
    except InvalidSpecError as exc:
        invalid = exc
        new = status_mod.failed_status(cr, status_mod.INVALID_SPEC, str(exc))
    except (KubeApiError, OSError) as exc:
        error = exc
        new = status_mod.failed_status(cr, status_mod.RECONCILE_ERROR,
                                       f"applying the children failed: {exc}")
    current = cr.get("status") or {}
    patch = status_mod.status_patch(current, new)
    if patch is not None:
        await client.patch_status(RERANKER_SERVICES, namespace, name, patch)
    events = status_mod.transitions(current.get("conditions") or [], new["conditions"])
    return PassOutcome(status=new, events=events, invalid=invalid, error=error,
                       children=children, status_written=patch is not None)
