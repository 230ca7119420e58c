"""The rendered monitoring against a real Prometheus scraping real servers.

Two server processes (two "pods") on a tiny Qwen3 model, started from the rendered container's
env; Debian's Prometheus scraping them as the rendered ServiceMonitor says (path, port name
through the Service to the container port, interval, timeout, the pod/namespace/job labels the
Prometheus Operator's relabelings give); the rendered PrometheusRule loaded. A seeded load
(normal, then overload), then through Prometheus's HTTP API: every dashboard panel's queries
return data, each Prometheus Adapter rule (as the adapter expands it) returns one value per pod
under the name the rendered HPA asks for, the rendered KEDA ScaledObject's Prometheus triggers
return a value, the queued-pairs gauge rose under the burst and is back at zero, and the
queue-rejection alert goes pending.
"""

from __future__ import annotations

import copy
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reranker_contract import ADAPTER_RULES, Env
from reranker_contract.score_check import ScoreCheckEnv
from reranker_devtools import prometheus as prom
from reranker_devtools.ports import free_port
from reranker_devtools.tiny_models import UNTRAINED_BUILTINS
from reranker_operator import cli
from reranker_operator.render.manifests import render_children
from reranker_operator.render.monitoring import KUBE_STATE_METRICS, dashboard

NS, NAME = "ml", "live"
PODS = ("live-7c9d5b6f4-a1b2c", "live-7c9d5b6f4-d3e4f")
SPEC: dict[str, Any] = {
    "model": {"name": "Qwen/Qwen3-Reranker-0.6B", "family": "qwen3-causal"},
    "replicas": 2,
    "autoscaling": {
        "enabled": True,
        "minReplicas": 2,
        "maxReplicas": 4,
        "requestsPerSecond": "20",
        "p95LatencySeconds": "1",
        "queuedPairsPerPod": 16,
        "queuedTokensPerPod": "2k",
    },
    "server": {"maxConcurrentRequests": 2, "maxClientBatchSize": 64, "maxBatchSize": 8},
    "metrics": {
        "serviceMonitor": {"enabled": True, "interval": "1s", "scrapeTimeout": "1s"},
        "prometheusRule": {"enabled": True, "queueRejectionsPerSecond": 0.01},
        "dashboard": {"enabled": True},
    },
}
GPU_SERIES = {"gpu_memory_usage_bytes", "gpu_memory_reserved_bytes", "gpu_memory_total_bytes"}
pytestmark = pytest.mark.skipif(
    not all(map(__import__("shutil").which, ("prometheus", "promtool"))),
    reason="Debian's prometheus is not installed (make system-deps as root)",
)


@pytest.fixture(scope="module")
def cluster(tiny_qwen3_path: Path, tmp_path_factory) -> Iterator[dict[str, Any]]:
    cr = {
        "apiVersion": "rerankers.io/v1alpha1",
        "kind": "RerankerService",
        "metadata": {"name": NAME, "namespace": NS, "uid": "u-1"},
        "spec": SPEC,
    }
    kids = {c["kind"]: c for c in render_children(cr)}
    container = kids["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    work = tmp_path_factory.mktemp("live")
    ports = [free_port() for _ in PODS]
    procs = []
    for pod, port in zip(PODS, ports):  # the rendered env, with this machine's paths and ports
        run_env = {
            "PATH": os.environ["PATH"],
            **env,
            str(Env.MODEL_NAME): str(tiny_qwen3_path),
            str(Env.DEVICE): "cpu",
            str(Env.PORT): str(port),
            str(Env.HOST): "127.0.0.1",
            str(Env.HF_HOME): str(work),
            str(Env.CACHE_DIR): str(work),
            str(ScoreCheckEnv.SCORE_CHECK_BUILTINS): UNTRAINED_BUILTINS,  # random weights
        }
        log = (work / f"{pod}.log").open("w")
        procs.append(
            subprocess.Popen(
                [str(Path(sys.executable).with_name("reranker-server"))],
                env=run_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        for port, proc in zip(ports, procs):
            for _ in range(600):
                assert proc.poll() is None, "a server exited"
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        job = prom.scrape_job(
            kids["ServiceMonitor"],
            kids["Service"],
            named,
            [prom.Target(pod, f"127.0.0.1:{port}") for pod, port in zip(PODS, ports)],
        )
        with prom.start(
            [job],
            [prom.rule_file(kids["PrometheusRule"])],
            port=free_port(),
            workdir=work / "prometheus",
        ) as server:
            urls = [f"http://127.0.0.1:{p}" for p in ports]
            _until_scraped(server, 2)  # the counters' values before the load are in Prometheus
            for url in urls:  # normal load on both pods
                _loadtest(url, "-c", "2", "-n", "12", "--documents", "8")
            for url in urls:  # few documents: requests that cannot use the prefix path
                _loadtest(url, "-c", "1", "-n", "4", "--documents", "1")
            # a burst of large requests: each is 8 batches of 8 pairs, most of them queued
            _loadtest(urls[0], "-c", "2", "-d", "4", "--documents", "64")
            _loadtest(urls[0], "-c", "12", "-d", "6", "--documents", "8")  # overload: 429s
            time.sleep(4)  # a few scrapes and rule evaluations
            yield {"prometheus": server, "children": kids, "urls": urls}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def _until_scraped(server, pods: int, timeout: float = 60.0) -> None:
    """Until every pod's target is up and has been scraped more than once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = server.query(f'count_over_time(up{{namespace="{NS}",job="{NAME}"}}[1m])')
        if len(counts) == pods and all(float(c["value"][1]) >= 2 for c in counts):
            return
        time.sleep(0.5)
    raise AssertionError(f"targets not scraped: {server.targets_up()}")


def _loadtest(url: str, *args: str) -> dict:
    import json

    out = io.StringIO()
    cli.main(["loadtest", url, *args, "--json"], stdout=out)
    return json.loads(out.getvalue())


def _wait_for(server, expr: str, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        result = server.query(expr)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(1)


def test_both_pods_are_scraped_with_the_operators_labels(cluster) -> None:
    targets = cluster["prometheus"].targets_up()
    assert len(targets) == 2, targets
    assert all(t["health"] == "up" for t in targets), [
        (t["health"], t["lastError"]) for t in targets
    ]
    series = cluster["prometheus"].query(f'up{{namespace="{NS}",job="{NAME}"}}')
    assert {s["metric"]["pod"] for s in series} == set(PODS)


def test_every_dashboard_panel_returns_data(cluster) -> None:
    board = dashboard(NAME, NS)
    server = cluster["prometheus"]
    elsewhere = KUBE_STATE_METRICS_SET | GPU_SERIES  # no kube-state-metrics, no GPU here
    checked, skipped = [], []
    for panel in board["panels"]:
        exprs = [t["expr"] for t in panel["targets"]]
        names = set().union(*(prom.series_read(e) for e in exprs))
        if names <= elsewhere:
            skipped.append(panel["title"])
            continue
        for target in panel["targets"]:
            if prom.series_read(target["expr"]) <= elsewhere:
                continue
            result = _wait_for(server, target["expr"])
            assert result, f"panel {panel['title']!r}: {target['expr']} returned nothing"
        checked.append(panel["title"])
    assert len(checked) >= 12, checked
    # only the panels that read kube-state-metrics or GPU series alone are left out
    assert set(skipped) == {"GPU memory used", "Available replicas", "Server restarts (1h)"}


KUBE_STATE_METRICS_SET = set(KUBE_STATE_METRICS)


def _expand(rule, pods: tuple[str, ...]) -> str:
    """The metricsQuery as Prometheus Adapter expands it for `kubectl get --raw
    /apis/custom.metrics.k8s.io/v1beta1/namespaces/NS/pods/*/METRIC`."""
    matchers = f'namespace="{NS}",pod=~"{"|".join(pods)}"'
    return (
        rule.metrics_query.replace("<<.Series>>", rule.series)
        .replace("<<.LabelMatchers>>", matchers)
        .replace("<<.GroupBy>>", "pod")
    )


def test_adapter_rules_serve_one_value_per_pod_under_the_hpas_names(cluster) -> None:
    hpa = cluster["children"]["HorizontalPodAutoscaler"]
    asked = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    by_name = {str(r.name): r for r in ADAPTER_RULES}
    assert asked and asked <= set(by_name), f"the HPA asks for {asked - set(by_name)}"
    server = cluster["prometheus"]
    for name in asked:
        rule = by_name[name]
        discovered = server.query(f'{rule.series}{{namespace!="",pod!=""}}')
        assert {s["metric"]["pod"] for s in discovered} >= set(PODS), name
        values = _wait_for(server, _expand(rule, PODS))
        assert sorted(v["metric"]["pod"] for v in values) == sorted(PODS), (name, values)
        assert all(float(v["value"][1]) == float(v["value"][1]) for v in values), (name, values)


def test_the_queue_rejection_alert_goes_pending_under_overload(cluster) -> None:
    server = cluster["prometheus"]
    deadline = time.monotonic() + 30
    while True:
        alerts = {a["labels"]["alertname"]: a for a in server.alerts()}
        if "RerankerQueueRejections" in alerts or time.monotonic() > deadline:
            break
        time.sleep(1)
    alert = alerts.get("RerankerQueueRejections")
    assert alert is not None, f"not pending: {sorted(alerts)}"
    assert alert["state"] in ("pending", "firing")
    assert alert["labels"]["rerankerservice"] == NAME and alert["labels"]["namespace"] == NS
    # healthy signals stay quiet: no 5xx, and both pods answered
    assert "RerankerHighErrorRate" not in alerts


def test_diagnose_reads_prometheus_and_finds_the_overload(cluster) -> None:
    import json

    out = io.StringIO()
    status = cli.main(
        [
            "diagnose",
            NAME,
            "-n",
            NS,
            "--prometheus",
            cluster["prometheus"].base_url,
            "--window",
            "1m",
            "--family",
            "qwen3-causal",
            "--json",
        ],
        stdout=out,
    )
    assert status == 0
    result = json.loads(out.getvalue())
    sig = result["signals"]
    assert sig["requests_per_s"] > 0 and sig["rejected_per_s"] > 0 and sig["documents_per_s"] > 0
    assert sig["queue_time_p95_s"] is not None and sig["batch_size_mean"] is not None
    assert "queue-bound" in [v["name"] for v in result["verdicts"]]


def test_keda_triggers_return_a_value_from_the_same_series(cluster) -> None:
    server = cluster["prometheus"]
    spec = copy.deepcopy(SPEC)
    spec["autoscaling"]["keda"] = {"enabled": True, "prometheusAddress": server.base_url}
    cr = {
        "apiVersion": "rerankers.io/v1alpha1",
        "kind": "RerankerService",
        "metadata": {"name": NAME, "namespace": NS, "uid": "u-1"},
        "spec": spec,
    }
    kids = {c["kind"]: c for c in render_children(cr)}
    assert "HorizontalPodAutoscaler" not in kids
    triggers = [t for t in kids["ScaledObject"]["spec"]["triggers"] if t["type"] == "prometheus"]
    assert {t["name"] for t in triggers} >= {
        "reranker-queued-pairs-per-pod",
        "reranker-queued-tokens-per-pod",
    }
    for trigger in triggers:
        assert trigger["metadata"]["serverAddress"] == server.base_url
        values = _wait_for(server, trigger["metadata"]["query"])
        assert len(values) == 1, (trigger["name"], values)  # KEDA reads one number
        value = float(values[0]["value"][1])
        assert value == value and value >= 0, (trigger["name"], value)


def test_the_queued_pairs_gauge_rose_under_the_burst_and_is_back_at_zero(cluster) -> None:
    server = cluster["prometheus"]
    depth = f'reranker_queue_depth{{namespace="{NS}",job="{NAME}"}}'
    peaks = {
        s["metric"]["pod"]: float(s["value"][1])
        for s in server.query(f"max_over_time({depth}[10m])")
    }
    assert peaks.get(PODS[0], 0) > 0, peaks  # the overloaded pod queued pairs
    deadline = time.monotonic() + 30
    while True:  # the burst is over: every pod's queue drains to zero
        now = {s["metric"]["pod"]: float(s["value"][1]) for s in server.query(depth)}
        if (set(now) == set(PODS) and not any(now.values())) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert now == dict.fromkeys(PODS, 0.0), now
    tokens = server.query(f'max_over_time(reranker_queued_tokens{{namespace="{NS}"}}[10m])')
    assert max(float(s["value"][1]) for s in tokens) > 0
