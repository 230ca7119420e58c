"""One pass over a RerankerService: apply its children, prune the ones no longer wanted, then
write its status.

A child is written only when it is missing or when applying its manifest would change it
(reranker_operator.controller.drift, judged by the fields our manager owns), and the status only when it
differs from the stored one, so a steady state makes no write calls at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from reranker_operator.api.constants import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGER
from reranker_operator.api.spec import InvalidSpecError
from reranker_operator.controller import podissues
from reranker_operator.controller import status as st
from reranker_operator.controller.drift import drift, owned_fields
from reranker_operator.controller.kube import (
    EVENTS,
    FIELD_MANAGER,
    PODS,
    RERANKER_SERVICES,
    KubeApiError,
    KubeClient,
    ResourceRef,
)
from reranker_operator.controller.metrics import OperatorMetrics
from reranker_operator.controller.score_gate import ScoreGate
from reranker_operator.render.kinds import (
    CHILD_KINDS,
    DEPLOYMENT,
    OPTIONAL_KINDS,
    PVC,
    SCALERS,
    ChildKind,
)
from reranker_operator.render.labels import score_record_config_map_name
from reranker_operator.render.manifests import render
from reranker_operator.render.service import ParsedService, parse_service


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


def apply_needed(manifest: Mapping[str, Any], live: Mapping[str, Any]) -> str | None:
    """Why `manifest` must be applied over `live` (the first differing path), or None."""
    owned = owned_fields(live, FIELD_MANAGER)
    if owned is None:
        return ".metadata.managedFields"  # not applied by us yet (or ownership was reset)
    return drift(manifest, live, owned)


class ApiDiscovery:
    """Caches whether optional APIs (their CRDs) are served, for `ttl` seconds."""

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
class Children:
    """The children after a pass, and which optional APIs the spec asks for are missing."""

    live: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    optional_apis: dict[str, bool] = field(default_factory=dict)  # kind -> API missing

    def child(self, kind: str) -> dict[str, Any] | None:
        """The (first) live child of a kind."""
        return next((obj for (_api, k, _name), obj in self.live.items() if k == kind), None)


OnApply = Callable[[Mapping[str, Any]], None]


async def reconcile_children(
    client: KubeClient,
    discovery: ApiDiscovery,
    svc: ParsedService,
    on_apply: OnApply | None = None,
    metrics: OperatorMetrics | None = None,
) -> Children:
    """Make the cluster match the rendered children of `svc`; `on_apply` sees each child as an
    apply left it, as soon as the answer arrives; `metrics` counts applies, drift and prunes."""
    desired = render(svc)
    result = Children()
    kinds: list[ChildKind] = list(CHILD_KINDS)
    wanted_kinds = {m["kind"] for m in desired}
    for optional in OPTIONAL_KINDS:
        missing = not await discovery.served(optional.api_version, optional.plural)
        if optional.kind in wanted_kinds:
            result.optional_apis[optional.kind] = missing
        if missing:  # neither applied nor listed for pruning
            desired = [m for m in desired if m["kind"] != optional.kind]
            kinds.remove(optional)

    live: dict[tuple[str, str, str], dict[str, Any]] = {}
    plurals = {(k.api_version, k.kind): k.plural for k in kinds}
    for kind in kinds:
        ref = ResourceRef(kind.api_version, kind.plural)
        for obj in await client.list(ref, svc.namespace, instance_selector(svc.name)):
            obj.setdefault("apiVersion", kind.api_version)
            obj.setdefault("kind", kind.kind)
            live[child_id(obj)] = obj

    # the score record is the operator's data, not a rendered child: never pruned
    wanted = {child_id(m) for m in desired} | {
        ("v1", "ConfigMap", score_record_config_map_name(svc.name))
    }

    async def prune(of_kinds: Collection[str]) -> None:
        for key, obj in list(live.items()):
            if key in wanted or key[1] not in of_kinds or not owned_by(obj, svc.uid):
                continue  # retained PVCs carry no owner reference and are never pruned
            await client.delete(ResourceRef(key[0], plurals[key[:2]]), svc.namespace, key[2])
            del live[key]
            if metrics is not None:
                metrics.child_pruned(key[1])

    await prune({k.kind for k in SCALERS})  # the old scaler goes before the new one comes
    for manifest in desired:
        key = child_id(manifest)
        current = live.get(key)
        if current is None or apply_needed(manifest, current) is not None:
            live[key] = await client.apply(manifest)
            if on_apply is not None:
                on_apply(live[key])
            if metrics is not None:
                metrics.child_applied(key[1], drifted=current is not None)
    await prune({k.kind for k in kinds})
    await _wake_for_hpa(client, svc, live)

    result.live = {k: v for k, v in live.items() if k in wanted}
    return result


async def _wake_for_hpa(
    client: KubeClient, svc: ParsedService, live: Mapping[tuple[str, str, str], Mapping[str, Any]]
) -> None:
    """An HPA leaves a Deployment at zero replicas alone (scaling is off there): after KEDA
    scaled it to zero and autoscaling moved to the HPA, scale it to minReplicas once."""
    a = svc.spec.autoscaling
    if not a.uses_hpa():
        return
    deployment = live.get((DEPLOYMENT.api_version, DEPLOYMENT.kind, svc.name))
    if deployment is not None and (deployment.get("spec") or {}).get("replicas") == 0:
        await client.scale(
            ResourceRef(DEPLOYMENT.api_version, DEPLOYMENT.plural),
            svc.namespace,
            svc.name,
            max(a.min_replicas, 1),
        )


@dataclass
class PassOutcome:
    """What one pass decided: the Events to post, why it failed, what it wrote."""

    events: list[tuple[str, str, str]]
    invalid: InvalidSpecError | None = None
    error: Exception | None = None
    written: dict[str, Any] | None = None  # the RerankerService as the status patch left it


def _raw_model_name(cr: Mapping[str, Any]) -> str | None:
    """spec.model.name of a spec that did not parse, when it is a string."""
    spec = cr.get("spec")
    model = spec.get("model") if isinstance(spec, Mapping) else None
    name = model.get("name") if isinstance(model, Mapping) else None
    return name if isinstance(name, str) else None


async def _children_status(
    client: KubeClient,
    discovery: ApiDiscovery,
    svc: ParsedService,
    previous: list[Mapping[str, Any]],
    now: str,
    on_apply: OnApply | None,
    metrics: OperatorMetrics | None,
    gate: ScoreGate | None,
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """The status after applying the children, and the score record's Events."""
    children = await reconcile_children(client, discovery, svc, on_apply, metrics)
    deployment = children.child("Deployment")
    pods: list[dict[str, Any]] = []
    issues: list[str] = []
    rollout = st.Rollout.of(deployment, [])
    key = (svc.namespace, svc.name)
    hold = None
    record_events: list[tuple[str, str, str]] = []
    if deployment is not None and (not rollout.complete or rollout.ready < rollout.desired):
        pods = await client.list(PODS, svc.namespace, instance_selector(svc.name))
        events: list[dict[str, Any]] = []
        if podissues.needs_events(pods):
            events = await client.list(
                EVENTS, svc.namespace, field_selector="involvedObject.kind=Pod,type=Warning"
            )
        issues = podissues.pod_issues(pods, events)
        if gate is not None:
            hold = await gate.hold(key, pods)
    elif deployment is not None and gate is not None:
        gate.holding.discard(key)
        marker = f"{deployment['metadata'].get('uid')}/{deployment['metadata'].get('generation')}"
        recordable = rollout.complete and rollout.desired > 0 and svc.uid is not None
        if recordable and gate.needs_record(key, marker):
            pods = await client.list(PODS, svc.namespace, instance_selector(svc.name))
            record_events = await gate.record(
                client,
                namespace=svc.namespace,
                service=svc.name,
                uid=svc.uid or "",
                pods=pods,
                marker=marker,
            )
    status = st.ready_status(
        st.Rollout.of(deployment, pods),
        generation=svc.generation,
        model=svc.spec.model.name,
        endpoint=svc.endpoint,
        selector=svc.selector,
        previous=previous,
        optional_apis=children.optional_apis,
        now=now,
        scales_to_zero=svc.scales_to_zero,
        pod_issues=issues,
        model_cache=await _model_cache_condition(client, svc),
        score_hold=hold.sentence() if hold is not None else None,
    )
    return status, record_events


async def _model_cache_condition(client: KubeClient, svc: ParsedService) -> st.Condition | None:
    """The ModelCache condition where the replicas share an existing claim (its access modes
    are known only from the claim itself), else None."""
    cache = svc.spec.model_cache
    if not cache.is_shared() or cache.existing_claim is None:
        return None
    claim = await client.get(
        ResourceRef(PVC.api_version, PVC.plural), svc.namespace, cache.existing_claim
    )
    return st.model_cache_condition(podissues.claim_problem(svc.spec, claim))


async def reconcile_service(
    client: KubeClient,
    discovery: ApiDiscovery,
    cr: Mapping[str, Any],
    on_apply: OnApply | None = None,
    metrics: OperatorMetrics | None = None,
    gate: ScoreGate | None = None,
) -> PassOutcome:
    """One pass: parse the spec once, apply/prune children, then patch the status if (and only
    if) it changed.

    An invalid spec touches no child and yields Ready=False/InvalidSpec; an API failure yields
    ReconcileError. Either way the status is written (when changed) and the outcome says why.
    """
    meta = cr["metadata"]
    namespace, name = meta.get("namespace") or "default", meta["name"]
    current = cr.get("status") or {}
    previous = list(current.get("conditions") or [])
    now = st.now_rfc3339()
    invalid: InvalidSpecError | None = None
    error: Exception | None = None
    extra_events: list[tuple[str, str, str]] = []
    try:
        svc = parse_service(cr)
    except InvalidSpecError as exc:
        invalid = exc
        new = st.failed_status(
            st.INVALID_SPEC,
            str(exc),
            generation=int(meta.get("generation", 1)),
            model=_raw_model_name(cr),
            previous=previous,
            now=now,
        )
    else:
        try:
            new, extra_events = await _children_status(
                client, discovery, svc, previous, now, on_apply, metrics, gate
            )
        except KubeApiError as exc:
            error = exc
            new = st.failed_status(
                st.RECONCILE_ERROR,
                f"applying the children failed: {exc}",
                generation=svc.generation,
                model=svc.spec.model.name,
                previous=previous,
                now=now,
            )
    patch = st.status_patch(current, new)
    written = None
    if patch is not None:
        try:
            written = await client.patch_status(RERANKER_SERVICES, namespace, name, patch)
        except KubeApiError as exc:
            if exc.status == 404:
                return PassOutcome(events=[])  # deleted while the pass ran: nothing to report
            # The status stays as stored; the pass is retried like any failed API call.
            return PassOutcome(events=[], invalid=invalid, error=error or exc)
    events = st.transitions(previous, new["conditions"]) + extra_events
    return PassOutcome(events=events, invalid=invalid, error=error, written=written)
