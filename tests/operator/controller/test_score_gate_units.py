"""The score gate's decisions on their own: which report holds a rollout, the conditions and
Events it gives, when the record is rewritten (the end-to-end test is test_score_gate_rollout)."""

from __future__ import annotations

import asyncio
from typing import Any

from reranker_contract.score_check import (
    SCORE_CHECK_FAILED_REASON,
    SCORE_RECORD_RESET_REASON,
    SCORE_RECORDED_REASON,
)
from reranker_operator.controller import status as st
from reranker_operator.controller.score_gate import (
    Hold,
    ScoreGate,
    hold_of,
    record_events,
    record_from,
    report_url,
    running_not_ready,
    same_scores,
)


def pod(name: str, *, ready: bool, phase: str = "Running", ip: str = "10.0.0.7") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "reranker",
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                }
            ]
        },
        "status": {
            "phase": phase,
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


REPORT = {
    "state": "passed",
    "identity": {"model": "m", "revision": "r1"},
    "setup": {"engine": "transformers", "dtype": "float32"},
    "probes": [{"name": "p", "query": "q", "documents": ["a", "b"], "scores": [0.9, 0.1]}],
}


def test_the_report_is_read_on_the_readiness_port_of_running_pods_not_ready() -> None:
    assert report_url(pod("a", ready=False)) == "http://10.0.0.7:8080/score-check"
    pods = [
        pod("ready", ready=True),
        pod("waiting", ready=False),
        pod("pending", ready=False, phase="Pending"),
    ]
    assert [p["metadata"]["name"] for p in running_not_ready(pods)] == ["waiting"]


def test_only_a_failed_report_holds_an_unknown_never_does() -> None:
    failed = {"state": "failed", "failed": "spread", "message": "scored [0.5, 0.5]"}
    assert hold_of([("a", None), ("b", {"state": "pending"})]) is None
    assert hold_of([("b", failed), ("a", None)]) == Hold("b", "spread", "scored [0.5, 0.5]")


def test_a_pod_that_does_not_answer_is_unknown() -> None:
    async def go() -> dict[str, Any] | None:
        gate = ScoreGate()
        try:  # nothing listens on this loopback address
            return await gate.report(pod("a", ready=False, ip="127.77.255.254"))
        finally:
            await gate.close()

    assert asyncio.run(go()) is None


def rollout(available: int, desired: int = 1) -> st.Rollout:
    return st.Rollout(desired, desired + 1, available, available, False, False, False)


def conditions(r: st.Rollout, hold: str | None) -> dict[str, tuple[str, str, str]]:
    status = st.ready_status(
        r,
        generation=2,
        model="m",
        endpoint="http://x",
        selector="s",
        previous=[],
        optional_apis={},
        now="t",
        score_hold=hold,
    )
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}


def test_a_hold_degrades_and_stops_progress_ready_while_old_pods_serve() -> None:
    hold = Hold("demo-x", "spread", "scored [0.5, 0.5]").sentence()
    serving = conditions(rollout(available=1), hold)
    assert serving[st.READY][:2] == ("True", st.AVAILABLE)
    assert serving[st.PROGRESSING][:2] == ("False", SCORE_CHECK_FAILED_REASON)
    assert serving[st.DEGRADED][:2] == ("True", SCORE_CHECK_FAILED_REASON)
    assert "demo-x" in serving[st.DEGRADED][2] and "'spread'" in serving[st.DEGRADED][2]
    none = conditions(rollout(available=0), hold)
    assert none[st.READY][:2] == ("False", SCORE_CHECK_FAILED_REASON)
    assert conditions(rollout(available=1), None)[st.DEGRADED][1] != SCORE_CHECK_FAILED_REASON


def test_one_warning_per_hold_not_per_pass() -> None:
    def dicts(r: st.Rollout, hold: str | None) -> list[dict[str, Any]]:
        return st.with_transition_times(
            [
                st.Condition(t, s == "True", reason, msg)
                for t, (s, reason, msg) in conditions(r, hold).items()
            ],
            [],
            "t",
        )

    before = dicts(rollout(1), None)
    held = dicts(rollout(1), Hold("a", "spread", "x").sentence())
    events = st.transitions(before, held)
    assert [(t, r) for t, r, _ in events] == [("Warning", SCORE_CHECK_FAILED_REASON)]
    again = dicts(rollout(1), Hold("b", "finite", "y").sentence())
    assert st.transitions(held, again) == []
    none = dicts(rollout(0), Hold("a", "spread", "x").sentence())
    assert ("Warning", SCORE_CHECK_FAILED_REASON) in [
        (t, r) for t, r, _ in st.transitions(held, none)
    ]


def test_the_record_is_rewritten_only_when_identity_setup_or_scores_differ() -> None:
    record = record_from(REPORT, "pod-1", "2026-01-01T00:00:00Z")
    later = record_from(REPORT, "pod-2", "2026-01-02T00:00:00Z")
    assert same_scores(record, later)  # another pod, another time: the same record
    assert not same_scores(None, later)
    bf16 = record_from(
        {**REPORT, "setup": {"engine": "transformers", "dtype": "bfloat16"}}, "p", "t"
    )
    assert not same_scores(record, bf16)
    moved = {**REPORT, "probes": [{**REPORT["probes"][0], "scores": [0.9, 0.2]}]}
    assert not same_scores(record, record_from(moved, "p", "t"))


def test_a_new_identity_resets_the_record_and_says_so() -> None:
    old = record_from(REPORT, "pod-1", "t")
    other = record_from({**REPORT, "identity": {"model": "n", "revision": None}}, "pod-2", "t")
    events = record_events(old, other, "demo")
    assert [(t, r) for t, r, _ in events] == [
        ("Normal", SCORE_RECORD_RESET_REASON),
        ("Normal", SCORE_RECORDED_REASON),
    ]
    assert "m@r1" in events[0][2] and "now n" in events[0][2]
    assert [r for _, r, _ in record_events(old, record_from(REPORT, "p", "t"), "demo")] == [
        SCORE_RECORDED_REASON
    ]
    assert "demo-score-record" in record_events(None, old, "demo")[0][2]
