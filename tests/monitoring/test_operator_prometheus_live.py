"""The operator's monitoring overlay against the real operator and Debian's real Prometheus.

The real operator (kopf + our handlers) runs on the emulated API with its metrics port open;
Prometheus scrapes it as the overlay's ServiceMonitor says (the Service's port name through to
the container port, the `job` label the Prometheus Operator gives) and loads the overlay's
committed PrometheusRule, its `for:` shortened to 1 s (and the scrape interval to 1 s). One RerankerService becomes Ready, is
hand-edited (drift) and loses a child (prune); a second one meets injected 409, 403 and 500
answers. Then, through Prometheus's HTTP API: every metric the committed overlay's queries name
is scraped (a renamed metric fails here), every dashboard panel's query returns data, the
failures are counted by kind, and the reconcile-error and not-Ready alerts fire while the
operator-down and not-watching alerts stay silent.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from kopf.testing import KopfRunner

from operator_helpers import example, wait_for
from reranker_devtools import REPO
from reranker_devtools import prometheus as prom
from reranker_devtools.devcluster import DEPLOYMENTS, RERANKERS, DevCluster
from reranker_devtools.ports import free_port
from reranker_operator.controller.handlers import Controller, OperatorConfig
from reranker_operator.controller.runner import build

OVERLAY = REPO / "deploy" / "overlays" / "monitoring"
NS, BGE, BROKEN = "default", "bge-reranker-base", "broken"
pytestmark = pytest.mark.skipif(
    not all(map(__import__("shutil").which, ("prometheus", "promtool"))),
    reason="Debian's prometheus is not installed (make system-deps as root)",
)


def _committed(name: str) -> dict[str, Any]:
    [doc] = [d for d in yaml.safe_load_all((OVERLAY / name).read_text()) if d]
    return doc


def _alert_rules() -> list[dict[str, Any]]:
    return _committed("prometheusrule.yaml")["spec"]["groups"][0]["rules"]


def _panels() -> list[dict[str, Any]]:
    config_map = _committed("dashboard.yaml")
    [text] = config_map["data"].values()
    return [p for p in json.loads(text)["panels"] if p.get("targets")]


def _overlay_exprs() -> list[str]:
    return [r["expr"] for r in _alert_rules()] + [
        t["expr"] for p in _panels() for t in p["targets"]
    ]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("operator-live")
    port = free_port()
    with DevCluster() as cluster:
        kubeconfig = cluster.write_kubeconfig(work / "kubeconfig")
        config = OperatorConfig(
            resync_seconds=0.3,
            discovery_ttl_seconds=0.2,
            retry_seconds=0.2,
            kubeconfig=str(kubeconfig),
            metrics_address=f"127.0.0.1:{port}",
        )
        registry, settings, controller = build(config)
        settings.watching.reconnect_backoff = 0.2
        service = _committed("service.yaml")
        deployment = yaml.safe_load((REPO / "deploy" / "base" / "operator.yaml").read_text())
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        job = prom.scrape_job(
            _committed("servicemonitor.yaml"),
            service,
            ports,
            [prom.Target("reranker-operator-a1b2c", f"127.0.0.1:{port}", container="operator")],
        )
        job.update(scrape_interval="1s", scrape_timeout="1s")  # the overlay's 30 s, sped up
        rule = copy.deepcopy(_committed("prometheusrule.yaml"))
        for r in rule["spec"]["groups"][0]["rules"]:
            r["for"] = "1s"
        with (
            KopfRunner(
                ["run", "--standalone", "-n", NS], registry=registry, settings=settings, timeout=30
            ),
            prom.start([job], [prom.rule_file(rule)], port=free_port(), workdir=work) as server,
        ):
            _exercise(cluster, controller)
            yield {"prometheus": server, "cluster": cluster, "controller": controller}


def _exercise(cluster: DevCluster, ctl: Controller) -> None:
    """A healthy service (drift, prune), then a broken one (409, 403, then 500 answers)."""
    wait_for(lambda: ctl.metrics_port, "the metrics port")
    manifest = example("bge-reranker-cpu.yaml")
    manifest["spec"]["metrics"] = {"dashboard": {"enabled": True}}
    cluster.create(manifest)
    wait_for(lambda: cluster.get(DEPLOYMENTS, NS, BGE), "the Deployment")
    cluster.simulate_rollout(NS, BGE, "ready")
    cluster.patch(DEPLOYMENTS, NS, BGE, {"spec": {"revisionHistoryLimit": 99}})
    cluster.patch(RERANKERS, NS, BGE, {"spec": {"metrics": {"dashboard": {"enabled": False}}}})
    pruned = "reranker_operator_children_pruned_total"
    wait_for(
        lambda: ctl.metrics.registry.get_sample_value(pruned, {"kind": "ConfigMap"}), "the prune"
    )
    cluster.fail("patch", "v1/services", status=409, times=3)
    cluster.fail("patch", "v1/services", status=403, times=3)
    cluster.fail("patch", "v1/services", status=500, times=100_000)
    broken = copy.deepcopy(manifest)
    broken["metadata"]["name"] = BROKEN
    cluster.create(broken)


def _until(server: prom.PrometheusServer, expr: str, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        result = server.query(expr)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_every_metric_the_overlay_reads_is_exported(live) -> None:
    """Against the committed overlay files: a metric renamed in the operator (or in the overlay
    by hand) is missing from the scrape, and this fails."""
    text = httpx.get(f"http://127.0.0.1:{live['controller'].metrics_port}/metrics").text
    exported = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", text, re.MULTILINE))
    names = set().union(*(prom.series_read(e) for e in _overlay_exprs())) - {"up"}
    assert len(names) >= 10, names
    assert names <= exported, names - exported
    server = live["prometheus"]
    for name in sorted(names):
        assert _until(server, f'count({{__name__="{name}"}})'), f"{name} not in Prometheus"


def test_every_dashboard_panel_returns_data(live) -> None:
    server = live["prometheus"]
    panels = _panels()
    assert len(panels) >= 8
    for panel in panels:
        for target in panel["targets"]:
            result = _until(server, target["expr"])
            assert result, f"panel {panel['title']!r}: {target['expr']} returned nothing"


def test_injected_api_errors_are_counted_by_kind(live) -> None:
    server = live["prometheus"]
    expr = "sum by (kind) (reranker_operator_reconcile_failures_total) > 0"
    wanted = {"conflict", "forbidden", "other"}
    deadline = time.monotonic() + 20
    kinds: set[str] = set()
    while time.monotonic() < deadline and not wanted <= kinds:
        kinds = {s["metric"]["kind"] for s in server.query(expr)}
        time.sleep(0.5)
    assert wanted <= kinds, kinds
    codes = {s["metric"]["code"] for s in server.query("rest_client_requests_total")}
    assert {"200", "409", "403", "500"} <= codes, codes


def test_the_failure_alerts_fire_and_the_health_alerts_stay_silent(live) -> None:
    server = live["prometheus"]
    want = {"RerankerOperatorReconcileErrors", "RerankerServiceNotReady"}
    deadline = time.monotonic() + 30
    firing: set[str] = set()
    while time.monotonic() < deadline and not want <= firing:
        firing = {a["labels"]["alertname"] for a in server.alerts() if a["state"] == "firing"}
        time.sleep(0.5)
    assert want <= firing, server.alerts()
    assert not firing & {"RerankerOperatorDown", "RerankerOperatorNotWatching"}
    # those two watch series that are there: their inner queries return data
    assert server.query('up{job="reranker-operator-metrics"} == 1')
    assert server.query('reranker_operator_watching{job="reranker-operator-metrics"} == 1')
