"""reranker_operator.controller.podissues: the sentences the status gets from pods, Events and an existing
claim, checked against hand-written pods in the shapes the kubelet and scheduler write."""

from __future__ import annotations

from typing import Any

import pytest

from reranker_operator.api.spec import parse_spec
from reranker_operator.controller import status as st
from reranker_operator.controller.podissues import claim_problem, needs_events, pod_issues

SCHED = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
ATTACH = 'Multi-Attach error for volume "pvc-1" Volume is already used by pod(s) p0'


def running(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"nodeName": "a"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "initContainerStatuses": [{"name": "d", "state": {"terminated": {"exitCode": 0}}}],
            "containerStatuses": [{"name": "s", "state": {"running": {}}}],
        },
    }


def pending(name: str, message: str = SCHED) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                }
            ],
        },
    }


def creating(name: str) -> dict[str, Any]:
    waiting = {"waiting": {"reason": "PodInitializing"}}
    return {
        "metadata": {"name": name},
        "spec": {"nodeName": "b"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "False"},
            ],
            "initContainerStatuses": [{"name": "d", "state": waiting}],
            "containerStatuses": [{"name": "s", "state": waiting}],
        },
    }


def event(pod: str, reason: str, message: str, when: str = "2026-01-01T00:00:00Z") -> dict:
    return {
        "involvedObject": {"kind": "Pod", "name": pod},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "lastTimestamp": when,
    }


def test_pending_pods_are_counted_per_scheduler_message() -> None:
    pods = [running("p0"), pending("p1"), pending("p2"), pending("p3", "other")]
    assert pod_issues(pods) == [f"2 of 4 pods Pending: {SCHED}", "1 of 4 pods Pending: other"]
    assert not needs_events(pods)


def test_pods_waiting_for_volumes_are_named_with_their_latest_volume_event() -> None:
    pods = [running("p0"), creating("p1")]
    assert needs_events(pods)
    events = [
        event("p1", "FailedAttachVolume", "old", "2026-01-01T00:00:00Z"),
        event("p1", "FailedAttachVolume", ATTACH, "2026-01-01T00:01:00Z"),
        event("p0", "FailedAttachVolume", "p0 runs: ignored"),
        event("p1", "BackOff", "not a volume event"),
    ]
    assert pod_issues(pods, events) == [f"pod p1: {ATTACH}"]


def test_pods_not_started_are_not_downloading_the_model() -> None:
    assert not st.Rollout.of(None, [pending("p1"), creating("p2")]).initializing
    downloading = creating("p3")
    downloading["status"]["initContainerStatuses"][0]["state"] = {"running": {}}
    assert st.Rollout.of(None, [downloading]).initializing


def test_issues_extend_only_the_conditions_that_are_not_available() -> None:
    rollout = st.Rollout(
        desired=3,
        replicas=3,
        ready=1,
        available=1,
        complete=False,
        deadline_exceeded=False,
        initializing=False,
    )
    conditions = st.with_pod_issues(st.rollout_conditions(rollout), ["1 of 3 pods Pending: x"])
    assert [c.message for c in conditions] == [
        "the Deployment is rolling out; 1/3 replicas available; 1 of 3 pods Pending: x"
    ] * 3


@pytest.mark.parametrize(
    ("spec", "claim", "reason"),
    [
        ({"replicas": 3}, {"spec": {"accessModes": ["ReadWriteOnce"]}}, "ClaimAttachableOnOneNode"),
        (
            {"replicas": 3},
            {
                "spec": {"accessModes": ["ReadWriteMany"]},
                "status": {"accessModes": ["ReadWriteOncePod"]},
            },
            "ClaimAttachableOnOneNode",
        ),
        ({"replicas": 3}, {"spec": {"accessModes": ["ReadWriteMany"]}}, None),
        ({"replicas": 3}, {"spec": {"accessModes": ["ReadOnlyMany", "ReadWriteOnce"]}}, None),
        ({"replicas": 1}, {"spec": {"accessModes": ["ReadWriteOnce"]}}, None),
        ({"replicas": 1}, None, "ClaimNotFound"),
    ],
)
def test_existing_claim_problems(spec: dict, claim: dict | None, reason: str | None) -> None:
    parsed = parse_spec(
        {"model": {"name": "m"}, "modelCache": {"enabled": True, "existingClaim": "c"}, **spec}
    )
    problem = claim_problem(parsed, claim)
    assert (problem and problem[0]) == reason
    if problem:
        assert problem[1].startswith("spec.modelCache.existingClaim: PersistentVolumeClaim 'c'")
        cond = st.model_cache_condition(problem)
        assert (cond.type, cond.status, cond.reason) == ("ModelCache", False, reason)


def test_a_model_cache_problem_is_a_warning_event() -> None:
    new = [{"type": "ModelCache", "status": "False", "reason": "ClaimNotFound", "message": "m"}]
    assert st.transitions([], new) == [("Warning", "ClaimNotFound", "ModelCache=False: m")]
    assert st.transitions(new, new) == []
