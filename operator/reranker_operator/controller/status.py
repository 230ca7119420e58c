"""A RerankerService's status: conditions from its Deployment and pods, and notable transitions.

Pure functions of values the pass decided once (generation, model, endpoint, the rollout, which
optional APIs are missing): the reconciler reads the objects, calls these, and patches the
status subresource only when the computed status differs from the stored one.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reranker_contract.score_check import SCORE_CHECK_FAILED_REASON
from reranker_operator.controller.podissues import not_started, unschedulable
from reranker_operator.render.kinds import OPTIONAL_KINDS, kind_named

READY, PROGRESSING, DEGRADED = "Ready", "Progressing", "Degraded"
SCALED_TO_ZERO = "ScaledToZero"  # only where autoscaling.keda.scaleToZero is on
MODEL_CACHE = "ModelCache"  # only where modelCache.existingClaim is shared by the replicas
OPTIONAL_CONDITIONS = tuple(k.kind for k in OPTIONAL_KINDS)  # each named after its kind
CONDITION_TYPES = (READY, PROGRESSING, DEGRADED, MODEL_CACHE, *OPTIONAL_CONDITIONS, SCALED_TO_ZERO)

INVALID_SPEC = "InvalidSpec"
MODEL_DOWNLOADING = "ModelDownloading"
DEPLOYMENT_UNAVAILABLE = "DeploymentUnavailable"
DEPLOYMENT_PROGRESSING = "DeploymentProgressing"
AVAILABLE = "Available"
RECONCILE_ERROR = "ReconcileError"
SCORE_CHECK_FAILED = SCORE_CHECK_FAILED_REASON  # a pod's score check holds the rollout
RUNNING = "Running"


def now_rfc3339() -> str:
    """The current UTC time as Kubernetes writes timestamps."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Condition:
    """A condition before its lastTransitionTime is decided."""

    type: str
    status: bool
    reason: str
    message: str


def _cond(type_: str, status: bool, reason: str, message: str) -> Condition:
    return Condition(type_, status, reason, message)


def pods_initializing(pods: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any pod is still running its init containers (the model download); a pod not
    scheduled, or whose containers never started (volumes not attached), is not."""
    for pod in pods:
        status = pod.get("status") or {}
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        if unschedulable(pod) is not None or not_started(pod):
            continue
        for init in status.get("initContainerStatuses") or []:
            state = init.get("state") or {}
            terminated = state.get("terminated")
            if terminated is None or terminated.get("exitCode", 0) != 0:
                return True
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Initialized" and cond.get("status") == "False":
                return True
    return False


@dataclass(frozen=True)
class Rollout:
    """The facts about a Deployment the conditions are decided from."""

    desired: int
    replicas: int
    ready: int
    available: int
    complete: bool
    deadline_exceeded: bool
    initializing: bool

    @classmethod
    def of(cls, deployment: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]]) -> Rollout:
        if deployment is None:
            return cls(1, 0, 0, 0, False, False, pods_initializing(pods))
        spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
        desired = int(spec.get("replicas", 1))
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        progressing = conditions.get("Progressing") or {}
        observed = int(status.get("observedGeneration", 0)) >= int(
            deployment["metadata"].get("generation", 1)
        )
        updated = int(status.get("updatedReplicas", 0))
        return cls(
            desired=desired,
            replicas=int(status.get("replicas", 0)),
            ready=int(status.get("readyReplicas", 0)),
            available=int(status.get("availableReplicas", 0)),
            complete=(
                observed
                and progressing.get("reason") == "NewReplicaSetAvailable"
                and updated >= desired
            ),
            deadline_exceeded=(
                progressing.get("status") == "False"
                and progressing.get("reason") == "ProgressDeadlineExceeded"
            ),
            initializing=pods_initializing(pods),
        )


def scaled_to_zero_conditions(r: Rollout, endpoint: str) -> list[Condition]:
    """Ready / Progressing / Degraded / ScaledToZero of a Deployment KEDA scaled to zero: not
    serving (Ready is False) but not failing either; the first request wakes it."""
    msg = (
        f"no replica runs (scaled to zero while idle); the first request to {endpoint} "
        "starts one and waits for it"
    )
    return [
        _cond(READY, False, SCALED_TO_ZERO, msg),
        _cond(PROGRESSING, False, SCALED_TO_ZERO, msg),
        _cond(DEGRADED, False, SCALED_TO_ZERO, msg),
        _cond(SCALED_TO_ZERO, True, SCALED_TO_ZERO, msg),
    ]


def rollout_conditions(r: Rollout) -> list[Condition]:
    """Ready / Progressing / Degraded for a rollout."""
    serving = r.desired > 0 and r.available >= r.desired
    counts = f"{r.available}/{r.desired} replicas available"
    if r.deadline_exceeded:
        msg = f"the rollout exceeded its progress deadline; {counts}"
        return [
            _cond(READY, serving, AVAILABLE if serving else DEPLOYMENT_UNAVAILABLE, msg),
            _cond(PROGRESSING, False, DEPLOYMENT_UNAVAILABLE, msg),
            _cond(DEGRADED, True, DEPLOYMENT_UNAVAILABLE, msg),
        ]
    if not r.complete:
        reason = MODEL_DOWNLOADING if r.initializing else DEPLOYMENT_PROGRESSING
        msg = (
            "pods are downloading the model (init containers running); "
            if r.initializing
            else "the Deployment is rolling out; "
        ) + counts
        return [
            _cond(READY, serving, AVAILABLE if serving else reason, msg),
            _cond(PROGRESSING, True, reason, msg),
            _cond(DEGRADED, False, reason, msg),
        ]
    if serving:
        msg = f"all {r.desired} replicas are available"
        return [
            _cond(READY, True, AVAILABLE, msg),
            _cond(PROGRESSING, False, AVAILABLE, msg),
            _cond(DEGRADED, False, AVAILABLE, msg),
        ]
    msg = (
        "the Deployment is scaled to 0 replicas"
        if r.desired == 0
        else f"replicas became unavailable; {counts}"
    )
    return [
        _cond(READY, False, DEPLOYMENT_UNAVAILABLE, msg),
        _cond(PROGRESSING, False, DEPLOYMENT_UNAVAILABLE, msg),
        _cond(DEGRADED, True, DEPLOYMENT_UNAVAILABLE, msg),
    ]


def score_check_conditions(r: Rollout, hold: str) -> list[Condition]:
    """Ready / Progressing / Degraded while a pod's failed score check (`hold`: which pod, which
    check, what it scored) holds the rollout: Ready stays True while the old pods serve."""
    serving = r.desired > 0 and r.available >= r.desired
    msg = f"{hold}; the rollout is held, {r.available}/{r.desired} replicas available" + (
        " (the previous revision's pods serve)" if r.available else ""
    )
    return [
        _cond(READY, serving, AVAILABLE if serving else SCORE_CHECK_FAILED, msg),
        _cond(PROGRESSING, False, SCORE_CHECK_FAILED, msg),
        _cond(DEGRADED, True, SCORE_CHECK_FAILED, msg),
    ]


def failure_conditions(reason: str, message: str) -> list[Condition]:
    """Ready=False, Progressing=False, Degraded=True for an invalid spec or a failed pass."""
    return [
        _cond(READY, False, reason, message),
        _cond(PROGRESSING, False, reason, message),
        _cond(DEGRADED, True, reason, message),
    ]


def optional_api_condition(kind: str, missing: bool) -> Condition:
    """The condition of an optional child the spec asks for: applied, or its API missing."""
    child = kind_named(kind)
    api = child.optional
    if api is None:
        raise ValueError(f"{kind} is not an optional kind")
    if missing:
        return _cond(
            kind,
            False,
            api.missing_reason,
            f"the {child.api_version} {kind} API is not served (is {api.provider} "
            f"installed?); no {kind} was created. {api.consequence}",
        )
    return _cond(kind, True, AVAILABLE, f"the {kind} is applied")


def model_cache_condition(problem: tuple[str, str] | None) -> Condition:
    """The ModelCache condition of an existing claim (podissues.claim_problem's verdict)."""
    if problem is None:
        return _cond(
            MODEL_CACHE, True, AVAILABLE, "the existing claim can serve every replica spec allows"
        )
    return _cond(MODEL_CACHE, False, *problem)


def with_pod_issues(conditions: list[Condition], issues: Sequence[str]) -> list[Condition]:
    """Ready / Progressing / Degraded that are not all-good, their message extended with why
    pods do not run (podissues.pod_issues)."""
    if not issues:
        return conditions
    why = "; ".join(issues)
    return [
        Condition(c.type, c.status, c.reason, f"{c.message}; {why}")
        if c.type in (READY, PROGRESSING, DEGRADED) and c.reason != AVAILABLE
        else c
        for c in conditions
    ]


def with_transition_times(
    new: Iterable[Condition], old: Iterable[Mapping[str, Any]], now: str
) -> list[dict[str, Any]]:
    """Condition dicts; lastTransitionTime is kept unless the status flipped."""
    previous = {c.get("type"): c for c in old}
    out = []
    for cond in new:
        status = "True" if cond.status else "False"
        before = previous.get(cond.type)
        since = (
            before.get("lastTransitionTime") if before and before.get("status") == status else None
        ) or now
        out.append(
            {
                "type": cond.type,
                "status": status,
                "reason": cond.reason,
                "message": cond.message,
                "lastTransitionTime": since,
            }
        )
    return out


def ready_status(
    rollout: Rollout,
    *,
    generation: int,
    model: str,
    endpoint: str,
    selector: str,
    previous: Sequence[Mapping[str, Any]],
    optional_apis: Mapping[str, bool],
    now: str,
    scales_to_zero: bool = False,
    pod_issues: Sequence[str] = (),
    model_cache: Condition | None = None,
    score_hold: str | None = None,
) -> dict[str, Any]:
    """The full status of a RerankerService whose children were applied.

    `optional_apis` maps each optional kind the spec asks for to whether its API is missing;
    each gets a condition, in OPTIONAL_CONDITIONS order. `previous` are the stored conditions.
    `scales_to_zero`: KEDA may scale the Deployment to zero, which is then reported as such.
    `pod_issues`: why pods do not run, added to the rollout conditions' messages;
    `model_cache`: the ModelCache condition, where the spec mounts an existing claim;
    `score_hold`: a pod's failed score check (score_gate.Hold.sentence) holding the rollout.
    """
    at_zero = scales_to_zero and rollout.desired == 0 and rollout.replicas == 0
    if at_zero:
        conditions = scaled_to_zero_conditions(rollout, endpoint)
    elif score_hold is not None:
        conditions = score_check_conditions(rollout, score_hold)
    else:
        conditions = with_pod_issues(rollout_conditions(rollout), pod_issues)
    if model_cache is not None:
        conditions.append(model_cache)
    conditions += [
        optional_api_condition(kind, optional_apis[kind])
        for kind in OPTIONAL_CONDITIONS
        if kind in optional_apis
    ]
    if scales_to_zero and not at_zero:
        conditions.append(
            _cond(
                SCALED_TO_ZERO,
                False,
                RUNNING,
                f"{rollout.desired} replicas wanted; idle for the cooldown, "
                "KEDA scales them to zero",
            )
        )
    return {
        "observedGeneration": generation,
        "replicas": rollout.replicas,
        "readyReplicas": rollout.ready,
        "replicaSummary": f"{rollout.ready}/{rollout.desired}",
        "selector": selector,
        "endpoint": endpoint,
        "model": model,
        "conditions": with_transition_times(conditions, previous, now),
    }


def failed_status(
    reason: str,
    message: str,
    *,
    generation: int,
    model: str | None,
    previous: Sequence[Mapping[str, Any]],
    now: str,
) -> dict[str, Any]:
    """The status after an invalid spec or a failed pass; other fields keep their values."""
    return {
        "observedGeneration": generation,
        "model": model,
        "conditions": with_transition_times(failure_conditions(reason, message), previous, now),
    }


def status_patch(
    current: Mapping[str, Any] | None, new: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The merge patch that turns `current` into `new` for new's keys, or None if nothing changes."""
    current = current or {}
    patch = {k: v for k, v in new.items() if current.get(k) != v}
    return patch or None


def _event_type(cond: Mapping[str, Any]) -> str | None:
    """Which Event a condition's new state deserves, if any."""
    type_, status, reason = cond["type"], cond["status"], cond["reason"]
    if type_ == READY:
        failing = status == "False" and reason in (
            INVALID_SPEC,
            DEPLOYMENT_UNAVAILABLE,
            RECONCILE_ERROR,
            SCORE_CHECK_FAILED,
        )
        return "Warning" if failing else "Normal"
    if (type_, status) == (DEGRADED, "True") or (
        type_ in (*OPTIONAL_CONDITIONS, MODEL_CACHE) and status == "False"
    ):
        return "Warning"
    return None


def transitions(
    old: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]
) -> list[tuple[str, str, str]]:
    """(event type, reason, message) for conditions whose status or reason changed.

    Every change of Ready is an Event (Warning when it fails); Degraded=True and a missing
    optional API (ServiceMonitor, PrometheusRule) are Warnings; other changes post nothing.
    """
    before = {c.get("type"): c for c in old}
    events = []
    for cond in new:
        prev = before.get(cond["type"])
        if prev and (prev.get("status"), prev.get("reason")) == (cond["status"], cond["reason"]):
            continue
        kind = _event_type(cond)
        if kind is not None:
            message = f"{cond['type']}={cond['status']}: {cond['message']}"
            events.append((kind, cond["reason"], message))
    return events
