"""`spec.termination`: how a pod goes away without failing a request, and the grace period.

Kubernetes deletes a pod in parallel on two paths: the EndpointSlice controller and every
node's kube-proxy (or an ingress controller) stop routing to it, which takes seconds on a big
cluster, while the kubelet runs the preStop hook and then sends SIGTERM. The preStop sleep keeps
the pod serving until the endpoint removal has propagated; after SIGTERM the server drains
(readiness 503, still serving what arrives) for `drainSeconds`, then finishes the requests in
flight (each ends within `spec.server.requestTimeoutSeconds`) and exits. The grace period
(`grace_period_seconds`, the one place of the formula) covers all of it, so the kubelet's
SIGKILL never lands on a request.
"""

from __future__ import annotations

from pydantic import Field

from reranker_contract import DEFAULTS
from reranker_operator.api.base import SpecModel

GRACE_MARGIN_SECONDS = 5  # process exit, the engine's stop, the kubelet's own timing
DESCRIPTION = (
    "How a pod leaves on scale-down, rolling updates and node drains without failing a "
    "request: the pod's terminationGracePeriodSeconds is preStopSeconds + drainSeconds + "
    f"server.requestTimeoutSeconds + {GRACE_MARGIN_SECONDS}."
)


class TerminationSpec(SpecModel):
    """How a pod leaves without failing a request (DESCRIPTION, grace_period_seconds)."""

    pre_stop_seconds: int = Field(
        15,
        ge=0,
        le=3600,
        description="Seconds the pod keeps serving after its deletion before SIGTERM (a preStop "
        "sleep), while the endpoint removal reaches every kube-proxy and ingress controller: "
        "longer than that propagation on your cluster (a few seconds on a small cluster, 10-30 "
        "on a big or busy one). 0: no preStop hook.",
    )
    drain_seconds: int = Field(
        DEFAULTS.drain_seconds,
        ge=0,
        le=3600,
        description="After SIGTERM, seconds the server keeps accepting requests (readiness "
        "503) before it closes its listener and finishes what is in flight (DRAIN_SECONDS; "
        "vLLM has no such phase).",
    )


def grace_period_seconds(termination: TerminationSpec, request_timeout_seconds: int) -> int:
    """terminationGracePeriodSeconds: preStop, then the drain, then the longest request, and
    a margin. Kubernetes counts the grace period from the deletion, the preStop hook included."""
    return (
        termination.pre_stop_seconds
        + termination.drain_seconds
        + request_timeout_seconds
        + GRACE_MARGIN_SECONDS
    )
