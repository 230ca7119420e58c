"""The operator's own Prometheus metrics and its readiness, served on their own port.

Names follow controller-runtime where it has one (so dashboards made for controller-runtime
operators work); the rest carry the `reranker_operator_` prefix. Labels are bounded: kinds,
verbs, codes, results, condition statuses, never a resource's name. `OperatorMetric` is the one
place the names live (deploy/overlays/monitoring/ and the tests read them from here).

`OperatorMetrics` owns a registry of its own (one per operator, so tests can run several);
`serve` answers `/metrics` and `/readyz` (200 once the operator watches RerankerServices).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any

from aiohttp import TraceConfig, TraceRequestEndParams, TraceRequestExceptionParams, web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from reranker_operator.api.constants import CRD_PLURAL

CONTROLLER = "rerankerservice"  # the `controller` / `name` label value of every series
PREFIX = "reranker_operator_"


class OperatorMetric(StrEnum):
    """Series names. Counters carry `_total`; histograms are the family name."""

    # controller-runtime's names
    RECONCILE_TOTAL = "controller_runtime_reconcile_total"  # {controller, result}
    RECONCILE_ERRORS_TOTAL = "controller_runtime_reconcile_errors_total"  # {controller}
    RECONCILE_TIME = "controller_runtime_reconcile_time_seconds"  # {controller}
    ACTIVE_WORKERS = "controller_runtime_active_workers"  # {controller}: passes in flight
    WORKQUEUE_DEPTH = "workqueue_depth"  # {name}: passes waiting for their object's lock
    WORKQUEUE_ADDS_TOTAL = "workqueue_adds_total"  # {name}: passes asked for
    WORKQUEUE_QUEUE_DURATION = "workqueue_queue_duration_seconds"  # {name}: wait before a pass
    REST_CLIENT_REQUESTS_TOTAL = "rest_client_requests_total"  # {code, method}: kopf's and ours
    # ours
    RECONCILE_FAILURES_TOTAL = PREFIX + "reconcile_failures_total"  # {kind: FailureKind}
    CHILDREN_APPLIED_TOTAL = PREFIX + "children_applied_total"  # {kind}: created or changed
    DRIFT_CORRECTED_TOTAL = PREFIX + "drift_corrected_total"  # {kind}: changed from outside
    CHILDREN_PRUNED_TOTAL = PREFIX + "children_pruned_total"  # {kind}
    RERANKER_SERVICES = PREFIX + "rerankerservices"  # {condition, status}: watched, by condition
    WATCHING = PREFIX + "watching"  # 1 while the watch of RerankerServices is open
    LEADER = PREFIX + "leader"  # 1 while this replica works (peered: the highest priority)
    SCORE_GATE_HOLDS = PREFIX + "score_gate_holds"  # RerankerServices a failed score check holds


class Result(StrEnum):
    """`result` label of RECONCILE_TOTAL (controller-runtime's values)."""

    SUCCESS = "success"
    ERROR = "error"  # an API failure (retried after a delay) or an invalid spec (not retried)


class FailureKind(StrEnum):
    """`kind` label of RECONCILE_FAILURES_TOTAL."""

    CONFLICT = "conflict"  # 409
    FORBIDDEN = "forbidden"  # 401, 403
    INVALID_SPEC = "invalid_spec"
    TIMEOUT = "timeout"  # no answer in time, 504
    OTHER = "other"


CONDITIONS = ("Ready", "Progressing", "Degraded")
CONDITION_STATUSES = ("True", "False", "Unknown")


def failure_kind(status: int, reason: str = "") -> FailureKind:
    """The kind of an API failure from its HTTP status (0 = no answer) and reason."""
    if status == 409:
        return FailureKind.CONFLICT
    if status in (401, 403):
        return FailureKind.FORBIDDEN
    if status == 504 or (status == 0 and "Timeout" in reason):
        return FailureKind.TIMEOUT
    return FailureKind.OTHER


class _ServicesByCondition:
    """A collector: the watched RerankerServices counted by condition and status, read at
    scrape time from what the watch last delivered."""

    def __init__(self, bodies: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        self.bodies = bodies

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            OperatorMetric.RERANKER_SERVICES,
            "Watched RerankerServices by condition status",
            labels=["condition", "status"],
        )
        counts = {(c, s): 0 for c in CONDITIONS for s in CONDITION_STATUSES}
        for body in self.bodies():
            found = {
                c.get("type"): c.get("status")
                for c in ((body.get("status") or {}).get("conditions") or [])
            }
            for cond in CONDITIONS:
                status = found.get(cond)
                counts[(cond, status if status in CONDITION_STATUSES else "Unknown")] += 1
        for (cond, status), n in counts.items():
            family.add_metric([cond, status], n)
        yield family


class OperatorMetrics:
    """Every series of one operator, on its own registry."""

    def __init__(self) -> None:
        self.watch_answered = False  # the watch of RerankerServices answered 200
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.reconcile_total = Counter(
            OperatorMetric.RECONCILE_TOTAL,
            "Reconcile passes by result",
            ["controller", "result"],
            registry=r,
        )
        self.reconcile_errors = Counter(
            OperatorMetric.RECONCILE_ERRORS_TOTAL,
            "Reconcile passes that failed",
            ["controller"],
            registry=r,
        )
        self.reconcile_time = Histogram(
            OperatorMetric.RECONCILE_TIME,
            "Duration of a reconcile pass",
            ["controller"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.leader = Gauge(
            OperatorMetric.LEADER,
            "1 while this replica works, 0 while it stands by or has not announced itself "
            "(peered: kopf's highest live priority; standalone: always 1)",
            registry=r,
        )
        self.active = Gauge(
            OperatorMetric.ACTIVE_WORKERS, "Passes in flight", ["controller"], registry=r
        )
        self.depth = Gauge(
            OperatorMetric.WORKQUEUE_DEPTH,
            "Passes waiting for their RerankerService's previous pass",
            ["name"],
            registry=r,
        )
        self.adds = Counter(
            OperatorMetric.WORKQUEUE_ADDS_TOTAL,
            "Passes asked for (events, timers, coalesced child events)",
            ["name"],
            registry=r,
        )
        self.queue_duration = Histogram(
            OperatorMetric.WORKQUEUE_QUEUE_DURATION,
            "Time a pass waited for its RerankerService's previous pass",
            ["name"],
            buckets=(0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60),
            registry=r,
        )
        self.requests = Counter(
            OperatorMetric.REST_CLIENT_REQUESTS_TOTAL,
            "Kubernetes API calls (kopf's and the reconciler's) by HTTP code and method",
            ["code", "method"],
            registry=r,
        )
        self.failures = Counter(
            OperatorMetric.RECONCILE_FAILURES_TOTAL,
            "Failed reconcile passes by kind of failure",
            ["kind"],
            registry=r,
        )
        self.applied = Counter(
            OperatorMetric.CHILDREN_APPLIED_TOTAL,
            "Children applied (created, or changed)",
            ["kind"],
            registry=r,
        )
        self.drift = Counter(
            OperatorMetric.DRIFT_CORRECTED_TOTAL,
            "Children re-applied because they differed from their manifest",
            ["kind"],
            registry=r,
        )
        self.pruned = Counter(
            OperatorMetric.CHILDREN_PRUNED_TOTAL, "Children deleted", ["kind"], registry=r
        )
        self.score_gate_holds = Gauge(
            OperatorMetric.SCORE_GATE_HOLDS,
            "RerankerServices whose rollout a pod's failed score check holds (the old pods serve)",
            registry=r,
        )
        self.watching = Gauge(
            OperatorMetric.WATCHING,
            "1 once the watch of RerankerServices answered, 0 once reopening it failed",
            registry=r,
        )
        for result in Result:
            self.reconcile_total.labels(CONTROLLER, result)
        self.reconcile_errors.labels(CONTROLLER)
        for kind in FailureKind:
            self.failures.labels(kind)
        self.adds.labels(CONTROLLER)
        self.depth.labels(CONTROLLER)
        self.active.labels(CONTROLLER)
        self.reconcile_time.labels(CONTROLLER)
        self.queue_duration.labels(CONTROLLER)

    def watch_services(self, bodies: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        """Count the RerankerServices `bodies` returns at each scrape."""
        self.registry.register(_ServicesByCondition(bodies))

    # --- call sites

    def pass_done(self, seconds: float, *, error: BaseException | None, invalid: bool) -> None:
        """A finished pass: its duration, result and, when it failed, the kind of failure."""
        self.reconcile_time.labels(CONTROLLER).observe(seconds)
        failed = error is not None or invalid
        self.reconcile_total.labels(CONTROLLER, Result.ERROR if failed else Result.SUCCESS).inc()
        if not failed:
            return
        self.reconcile_errors.labels(CONTROLLER).inc()
        if error is None:
            kind = FailureKind.INVALID_SPEC
        else:
            kind = failure_kind(getattr(error, "status", -1), getattr(error, "reason", ""))
        self.failures.labels(kind).inc()

    def child_applied(self, kind: str, *, drifted: bool) -> None:
        self.applied.labels(kind).inc()
        if drifted:
            self.drift.labels(kind).inc()

    def child_pruned(self, kind: str) -> None:
        self.pruned.labels(kind).inc()

    def tracer(self) -> TraceConfig:
        """An aiohttp trace counting every API call on the session (kopf's watches included),
        and following the watch of RerankerServices: watching once it answers 200, not watching
        once an attempt to (re)open it fails."""
        trace = TraceConfig()

        def watched(ok: bool) -> None:
            self.watch_answered = ok
            self.watching.set(1 if ok else 0)

        def service_watch(url: Any) -> bool:
            return url.query.get("watch") == "true" and url.path.endswith(f"/{CRD_PLURAL}")

        async def ended(_s: Any, _c: Any, params: TraceRequestEndParams) -> None:
            status = params.response.status
            self.requests.labels(str(status), params.method).inc()
            if service_watch(params.url):
                watched(status == 200)

        async def failed(_s: Any, _c: Any, params: TraceRequestExceptionParams) -> None:
            self.requests.labels("<error>", params.method).inc()
            if service_watch(params.url):
                watched(False)

        trace.on_request_end.append(ended)
        trace.on_request_exception.append(failed)
        return trace

    def render(self) -> bytes:
        return generate_latest(self.registry)


def pass_timer() -> Callable[[], float]:
    """Seconds since the call (a pass's duration)."""
    start = time.monotonic()
    return lambda: time.monotonic() - start


def parse_address(address: str) -> tuple[str, int]:
    """("host", port) of "HOST:PORT" or ":PORT" (all addresses)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"metrics address must be HOST:PORT or :PORT, not {address!r}")
    return (host.strip("[]") or "0.0.0.0", int(port))


async def serve(
    metrics: OperatorMetrics, address: str, ready: Callable[[], dict[str, Any]]
) -> tuple[web.AppRunner, int]:
    """Serve `/metrics` and `/readyz` at `address`; returns the runner and the bound port.

    `ready()` says whether the operator is ready (`"ready": bool`) and why; `/readyz` answers
    it as JSON with 200 or 503.
    """

    async def metrics_page(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def readyz(_request: web.Request) -> web.Response:
        state = ready()
        return web.json_response(state, status=200 if state.get("ready") else 503)

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics_page), web.get("/readyz", readyz)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = parse_address(address)
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    for address_info in runner.addresses:
        bound = int(address_info[1])
    return runner, bound
