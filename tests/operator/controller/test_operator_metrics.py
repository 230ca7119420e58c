"""The operator's own metrics and readiness, read from its /metrics and /readyz while the real
operator (kopf + our handlers) reconciles against the emulated API: passes by result, children
applied / drift corrected / pruned by kind, API calls by code and method, failures by kind
(injected 409 / 403 / 500 answers), RerankerServices by condition, and readiness = watching."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import httpx
import pytest
from kopf.testing import KopfRunner
from prometheus_client.parser import text_string_to_metric_families

from operator_helpers import example, wait_for
from reranker_devtools.devcluster import DEPLOYMENTS, RERANKERS, DevCluster
from reranker_operator.controller.handlers import Controller, OperatorConfig
from reranker_operator.controller.metrics import CONTROLLER, FailureKind, OperatorMetric
from reranker_operator.controller.runner import build

NS, BGE = "default", "bge-reranker-base"
M = OperatorMetric


@pytest.fixture
def metered(cluster: DevCluster) -> Iterator[Controller]:
    """The operator with /metrics and /readyz on a free port; always stopped."""
    config = OperatorConfig(
        resync_seconds=0.3,
        discovery_ttl_seconds=0.2,
        retry_seconds=0.3,
        kubeconfig=str(cluster.kubeconfig),  # type: ignore[attr-defined]
        metrics_address="127.0.0.1:0",
    )
    registry, settings, controller = build(config)
    settings.watching.reconnect_backoff = 0.2
    with KopfRunner(
        ["run", "--standalone", "-n", NS], registry=registry, settings=settings, timeout=30
    ):
        wait_for(lambda: controller.metrics_port, "the metrics port")
        yield controller


def scrape(ctl: Controller) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics by (name, labels)."""
    text = httpx.get(f"http://127.0.0.1:{ctl.metrics_port}/metrics", timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, metric: str, /, **labels: str) -> float:
    """The sum of the samples of `metric` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == metric and want <= lab)


def test_readyz_answers_once_watching(cluster: DevCluster, metered: Controller) -> None:
    url = f"http://127.0.0.1:{metered.metrics_port}/readyz"
    answer = wait_for(
        lambda: (r := httpx.get(url, timeout=5)).status_code == 200 and r.json(), "ready"
    )
    assert answer == {"ready": True, "started": True, "watching": True, "leader": True}
    assert value(scrape(metered), M.WATCHING) == 1
    assert value(scrape(metered), M.LEADER) == 1  # standalone: it always works


def test_readyz_fails_while_the_watch_cannot_be_reopened(
    cluster: DevCluster, metered: Controller
) -> None:
    url = f"http://127.0.0.1:{metered.metrics_port}/readyz"
    wait_for(lambda: httpx.get(url, timeout=5).status_code == 200, "ready")
    with cluster.outage():
        wait_for(lambda: httpx.get(url, timeout=5).status_code == 503, "not ready in the outage")
        assert value(scrape(metered), M.WATCHING) == 0
    wait_for(lambda: httpx.get(url, timeout=5).status_code == 200, "ready again")


def test_passes_children_and_conditions_are_counted(
    cluster: DevCluster, metered: Controller
) -> None:
    manifest = example("bge-reranker-cpu.yaml")
    manifest["spec"]["metrics"] = {"dashboard": {"enabled": True}}
    cluster.create(manifest)
    wait_for(lambda: cluster.get(DEPLOYMENTS, NS, BGE), "the Deployment")
    cluster.simulate_rollout(NS, BGE, "ready")
    samples = wait_for(
        lambda: (
            (s := scrape(metered))
            and value(s, M.RERANKER_SERVICES, condition="Ready", status="True") == 1
            and s
        ),
        "one Ready RerankerService counted",
    )
    ok = value(samples, M.RECONCILE_TOTAL, controller=CONTROLLER, result="success")
    assert ok >= 1
    assert value(samples, f"{M.RECONCILE_TIME}_count", controller=CONTROLLER) >= ok
    assert value(samples, M.CHILDREN_APPLIED_TOTAL, kind="Deployment") == 1
    assert value(samples, M.CHILDREN_APPLIED_TOTAL, kind="Service") == 1
    assert value(samples, M.WORKQUEUE_ADDS_TOTAL, name=CONTROLLER) >= ok
    assert value(samples, M.REST_CLIENT_REQUESTS_TOTAL, code="200", method="PATCH") >= 1
    assert value(samples, M.REST_CLIENT_REQUESTS_TOTAL, code="200", method="GET") >= 1
    assert value(samples, M.RERANKER_SERVICES, condition="Degraded", status="False") == 1

    # A hand edit of the Deployment is reverted and counted as drift.
    cluster.patch(DEPLOYMENTS, NS, BGE, {"spec": {"revisionHistoryLimit": 99}})
    wait_for(
        lambda: value(scrape(metered), M.DRIFT_CORRECTED_TOTAL, kind="Deployment"),
        "the drift counted",
    )
    # A child no longer wanted is pruned and counted.
    assert value(samples, M.CHILDREN_APPLIED_TOTAL, kind="ConfigMap") == 1
    cluster.patch(RERANKERS, NS, BGE, {"spec": {"metrics": {"dashboard": {"enabled": False}}}})
    wait_for(
        lambda: value(scrape(metered), M.CHILDREN_PRUNED_TOTAL, kind="ConfigMap"),
        "the prune counted",
    )


@pytest.mark.parametrize(
    ("status", "kind"),
    [(409, FailureKind.CONFLICT), (403, FailureKind.FORBIDDEN), (500, FailureKind.OTHER)],
)
def test_injected_api_errors_move_the_error_series(
    cluster: DevCluster, metered: Controller, status: int, kind: FailureKind
) -> None:
    cluster.fail("patch", "v1/services", status=status, times=2)
    cluster.create(example("bge-reranker-cpu.yaml"))
    samples = wait_for(
        lambda: ((s := scrape(metered)) and value(s, M.RECONCILE_FAILURES_TOTAL, kind=kind)) and s,
        f"a {kind} failure counted",
    )
    assert value(samples, M.RECONCILE_ERRORS_TOTAL, controller=CONTROLLER) >= 1
    assert value(samples, M.RECONCILE_TOTAL, result="error") >= 1
    assert value(samples, M.REST_CLIENT_REQUESTS_TOTAL, code=str(status)) >= 1
    others = [k for k in FailureKind if k != kind]
    assert all(value(samples, M.RECONCILE_FAILURES_TOTAL, kind=k) == 0 for k in others)
    # retried until it succeeds
    wait_for(lambda: cluster.get("v1/services", NS, BGE), "the Service after retries")


def test_an_invalid_spec_is_an_invalid_spec_failure(
    cluster: DevCluster, metered: Controller
) -> None:
    manifest = copy.deepcopy(example("bge-reranker-cpu.yaml"))
    manifest["spec"]["autoscaling"] = {"enabled": True, "minReplicas": 5, "maxReplicas": 2}
    cluster.create(manifest)
    wait_for(
        lambda: value(scrape(metered), M.RECONCILE_FAILURES_TOTAL, kind=FailureKind.INVALID_SPEC),
        "an invalid_spec failure counted",
    )


def test_controller_runtime_names_stay_what_dashboards_expect() -> None:
    """Dashboards made for controller-runtime operators read these names: renaming one here
    breaks them (and this test)."""
    assert {m.name: str(m) for m in M if not m.startswith("reranker_operator_")} == {
        "RECONCILE_TOTAL": "controller_runtime_reconcile_total",
        "RECONCILE_ERRORS_TOTAL": "controller_runtime_reconcile_errors_total",
        "RECONCILE_TIME": "controller_runtime_reconcile_time_seconds",
        "ACTIVE_WORKERS": "controller_runtime_active_workers",
        "WORKQUEUE_DEPTH": "workqueue_depth",
        "WORKQUEUE_ADDS_TOTAL": "workqueue_adds_total",
        "WORKQUEUE_QUEUE_DURATION": "workqueue_queue_duration_seconds",
        "REST_CLIENT_REQUESTS_TOTAL": "rest_client_requests_total",
    }
