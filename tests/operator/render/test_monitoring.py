"""The PrometheusRule and the Grafana dashboard ConfigMap: schema-valid, scoped to one Service,
reading only metrics the server really exports, with the spec's thresholds."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from promql_helpers import metric_names
from render_helpers import FULL_SPEC, make_cr, prometheus_operator_schema
from reranker_operator.api.spec import InvalidSpecError
from reranker_operator.render.manifests import render_children

# kube-state-metrics series (not the server's): available and desired replicas of a Deployment,
# and the server containers of its pods.
DEPLOYMENT_KSM = {"kube_deployment_status_replicas_available", "kube_deployment_spec_replicas"}
POD_KSM = {"kube_pod_container_status_waiting_reason", "kube_pod_container_status_restarts_total"}
KUBE_STATE_METRICS = DEPLOYMENT_KSM | POD_KSM
SERVER_PANELS = [
    "requests/s by status",
    "latency",
    "documents per request",
    "tokens per request",
    "work held per pod",
    "batch size",
    "padding ratio",
    "prefix-cache reuse",
    "gpu memory",
    "time per stage",
    "forward passes",
    "model throughput",
    "refused requests",
    "server restarts",
]


def exported_metric_names() -> set[str]:
    """Every sample name the server's /metrics can carry, from the prometheus_client registry."""
    import prometheus_client

    import reranker_server.engine.metrics
    import reranker_server.metrics  # noqa: F401  # registers the metrics

    suffixes = {
        "counter": ["_total", "_created"],
        "gauge": [""],
        "info": ["_info"],
        "histogram": ["_bucket", "_sum", "_count", "_created"],
        "summary": ["", "_sum", "_count", "_created"],
    }
    names = set()
    for family in prometheus_client.REGISTRY.collect():
        names.update(family.name + s for s in suffixes.get(family.type, [""]))
    return names


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric, {label: 'op value'}) of every `metric{...}` in an expression."""
    out = []
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}", expr):
        found = re.findall(r'(\w+)\s*(=~|!=|!~|=)\s*"([^"]*)"', m.group(2))
        out.append((m.group(1), {k: f"{op}{v}" for k, op, v in found}))
    return out


def monitoring_children(cr: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    kids = {c["kind"]: c for c in render_children(cr)}
    return kids["PrometheusRule"], kids["ConfigMap"]


def rules_of(rule: dict[str, Any]) -> list[dict[str, Any]]:
    (group,) = rule["spec"]["groups"]
    return group["rules"]


def dashboard_of(config_map: dict[str, Any]) -> dict[str, Any]:
    (key,) = config_map["data"]
    assert key.endswith(".json")
    return json.loads(config_map["data"][key])


def all_expressions(cr: dict[str, Any]) -> list[str]:
    rule, cm = monitoring_children(cr)
    exprs = [r["expr"] for r in rules_of(rule)]
    exprs += [t["expr"] for p in dashboard_of(cm)["panels"] for t in p["targets"]]
    return exprs


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(a_bucket{job="x",status=~"5.."}[5m])))'
        ' / on (namespace) group_left b_total > 1e-05 and c{d="e"} == 0'
    )
    assert metric_names(expr) == ["a_bucket", "b_total", "c"]
    assert selectors('x{a="1",b=~"2.."} / y') == [("x", {"a": "=1", "b": "=~2.."})]


def test_every_expression_reads_only_exported_metrics() -> None:
    known = exported_metric_names() | KUBE_STATE_METRICS
    assert {"http_requests_total", "reranker_queue_depth", "gpu_memory_usage_bytes"} <= known
    exprs = all_expressions(make_cr(FULL_SPEC))
    assert len(exprs) >= 12
    used = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        unknown = set(names) - known
        assert not unknown, f"{expr} reads {unknown}, which the server does not export"
        used.update(names)
    # the alerts and panels the brief asks for read these
    assert {
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "reranker_requests_total",
        "reranker_documents_per_request_sum",
        "reranker_tokens_per_request_sum",
        "reranker_queue_depth",
        "reranker_batch_size_sum",
        "reranker_padding_ratio_sum",
        "reranker_prefix_cache_reuse_total",
        "gpu_memory_usage_bytes",
        "kube_deployment_status_replicas_available",
    } <= used


@pytest.mark.parametrize(("name", "namespace"), [("demo", "ml"), ("other", "search")])
def test_every_selector_is_scoped_to_one_service(name: str, namespace: str) -> None:
    exprs = all_expressions(make_cr(FULL_SPEC, name=name, namespace=namespace))
    count = 0
    for expr in exprs:
        for metric, matchers in selectors(expr):
            count += 1
            assert matchers["namespace"] == f"={namespace}", expr
            if metric in POD_KSM:  # the Deployment's pods, server container only
                assert matchers["pod"] == f"=~{name}-[a-z0-9]+-[a-z0-9]+", expr
                assert matchers["container"] == "=reranker", expr
                continue
            key = "deployment" if metric in DEPLOYMENT_KSM else "job"
            assert matchers[key] == f"={name}", expr
        # a series without a selector would mix every service's series
        assert len(selectors(expr)) == len(metric_names(expr)), expr
    assert count >= len(exprs)


def test_two_services_get_distinct_groups_and_dashboards() -> None:
    a = monitoring_children(make_cr(FULL_SPEC, name="a", namespace="x"))
    b = monitoring_children(make_cr(FULL_SPEC, name="b", namespace="x"))
    assert a[0]["spec"]["groups"][0]["name"] != b[0]["spec"]["groups"][0]["name"]
    assert dashboard_of(a[1])["uid"] != dashboard_of(b[1])["uid"]
    assert set(a[1]["data"]) != set(b[1]["data"])  # distinct file names for the sidecar


def _threshold(expr: str) -> float:
    """The number an alert expression compares against last (`... > N`)."""
    return float(re.search(r">\s*([0-9.eE+-]+)\s*$", expr).group(1))


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {},
            {
                "RerankerHighErrorRate": 0.05,
                "RerankerHighLatency": 2.0,
                "RerankerQueueRejections": 0.1,
                "RerankerQueueTimeHigh": 0.2,
                "RerankerGPUMemoryHigh": 0.9,
                "for": "5m",
            },
        ),
        (
            {
                "errorRateThreshold": 0.2,
                "p95LatencySeconds": 0.25,
                "queueRejectionsPerSecond": 3,
                "queueTimeP95Seconds": 0.05,
                "gpuMemoryRatio": 0.8,
                "for": "1h30m",
            },
            {
                "RerankerHighErrorRate": 0.2,
                "RerankerHighLatency": 0.25,
                "RerankerQueueRejections": 3.0,
                "RerankerQueueTimeHigh": 0.05,
                "RerankerGPUMemoryHigh": 0.8,
                "for": "1h30m",
            },
        ),
    ],
)
def test_alerts_carry_the_spec_thresholds(settings: dict[str, Any], expected: dict) -> None:
    spec = {"model": {"name": "m"}, "metrics": {"prometheusRule": {"enabled": True, **settings}}}
    (rule,) = [c for c in render_children(make_cr(spec)) if c["kind"] == "PrometheusRule"]
    rules = {r["alert"]: r for r in rules_of(rule)}
    assert set(rules) == {
        "RerankerHighErrorRate",
        "RerankerHighLatency",
        "RerankerQueueRejections",
        "RerankerNoReplicasAvailable",
        "RerankerQueueTimeHigh",
        "RerankerPodCrashLooping",
        "RerankerGPUMemoryHigh",
        "RerankerScoreCheckFailing",
    }
    for alert, value in expected.items():
        if alert != "for":
            assert _threshold(rules[alert]["expr"]) == pytest.approx(value), alert
    for r in rules.values():
        assert r["for"] == expected["for"]
        assert r["labels"]["severity"] in {"critical", "warning"}
        assert r["labels"]["rerankerservice"] == "demo" and r["labels"]["namespace"] == "ml"
        assert r["annotations"]["summary"].strip() and r["annotations"]["description"].strip()
    assert 'status=~"5.."' in rules["RerankerHighErrorRate"]["expr"]
    # queue-full refusals, not a client over its rate limit (also 429)
    assert "reranker_requests_total{" in rules["RerankerQueueRejections"]["expr"]
    assert 'status="rejected"' in rules["RerankerQueueRejections"]["expr"]
    assert "gpu_memory_total_bytes" in rules["RerankerGPUMemoryHigh"]["expr"]  # no fixed size
    assert "histogram_quantile(0.95" in rules["RerankerHighLatency"]["expr"]


def test_prometheus_rule_schema_is_not_vacuous() -> None:
    schema = prometheus_operator_schema("prometheusrules")
    (rule, _cm) = monitoring_children(make_cr(FULL_SPEC))
    jsonschema.validate(rule, schema)
    broken = copy.deepcopy(rule)
    del broken["spec"]["groups"][0]["rules"][0]["expr"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    broken = copy.deepcopy(rule)
    broken["spec"]["groups"][0]["rules"][0]["for"] = "five minutes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_dashboard_config_map() -> None:
    _rule, cm = monitoring_children(make_cr(FULL_SPEC))
    for version in ("1.30", "1.37"):
        kubernetes_validate.validate(cm, version, strict=True)
    meta = cm["metadata"]
    assert meta["name"] == "demo-dashboard"
    assert meta["labels"]["grafana_dashboard"] == "1" and meta["labels"]["team"] == "ml"
    assert meta["annotations"] == {"grafana_folder": "Search / Rerankers"}
    board = dashboard_of(cm)
    assert 0 < len(board["uid"]) <= 40 and "ml/demo" in board["title"]
    titles = [p["title"].lower() for p in board["panels"]]
    for wanted in SERVER_PANELS:
        assert any(wanted in t for t in titles), wanted
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        area = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & area, p["title"]  # panels do not overlap
        cells |= area
        assert p["targets"] and all(t["expr"] for t in p["targets"])
        assert p["datasource"]["uid"] == "${datasource}"
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource"]


def test_dashboard_defaults_to_the_grafana_sidecar_label() -> None:
    spec = {"model": {"name": "m"}, "metrics": {"dashboard": {"enabled": True}}}
    (cm,) = [c for c in render_children(make_cr(spec)) if c["kind"] == "ConfigMap"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "annotations" not in cm["metadata"]


def test_each_child_follows_its_own_switch() -> None:
    def kinds(metrics: dict[str, Any]) -> set[str]:
        return {
            c["kind"]
            for c in render_children(make_cr({"model": {"name": "m"}, "metrics": metrics}))
        }

    assert {"PrometheusRule", "ConfigMap"}.isdisjoint(kinds({}))
    assert "PrometheusRule" in kinds({"prometheusRule": {"enabled": True}}) - kinds({})
    assert kinds({"dashboard": {"enabled": True}}) - kinds({}) == {"ConfigMap"}


@pytest.mark.parametrize(
    ("metrics", "field"),
    [
        (
            {"prometheusRule": {"errorRateThreshold": 1.5}},
            "metrics.prometheusRule.errorRateThreshold",
        ),
        ({"prometheusRule": {"p95LatencySeconds": 0}}, "metrics.prometheusRule.p95LatencySeconds"),
        (
            {"prometheusRule": {"queueRejectionsPerSecond": -1}},
            "metrics.prometheusRule.queueRejectionsPerSecond",
        ),
        ({"prometheusRule": {"for": "soon"}}, "metrics.prometheusRule.for"),
        ({"prometheusRule": {"labels": {"bad key!": "v"}}}, "metrics.prometheusRule.labels"),
        ({"dashboard": {"enabled": True, "labels": {}}}, "metrics.dashboard.labels"),
        ({"dashboard": {"folder": ""}}, "metrics.dashboard.folder"),
    ],
)
def test_bad_monitoring_settings_name_the_field(metrics: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        render_children(make_cr({"model": {"name": "m"}, "metrics": metrics}))
    assert err.value.field == field


@pytest.mark.parametrize(
    ("model", "family", "wanted"),
    [
        ("Qwen/Qwen3-Reranker-0.6B", "auto", True),
        ("/m", "qwen3-causal", True),
        ("BAAI/bge-reranker-base", "auto", False),
        ("qwen-ish", "cross-encoder", False),
    ],
)
def test_prefix_reuse_alert_only_for_causal_models(model: str, family: str, wanted: bool) -> None:
    spec = {
        "model": {"name": model, "family": family},
        "metrics": {"prometheusRule": {"enabled": True, "prefixReuseRatio": 0.4}},
    }
    (rule,) = [c for c in render_children(make_cr(spec)) if c["kind"] == "PrometheusRule"]
    rules = {r["alert"]: r for r in rules_of(rule)}
    assert ("RerankerPrefixReuseLow" in rules) is wanted
    if wanted:
        expr = rules["RerankerPrefixReuseLow"]["expr"]
        assert "< 0.4 and" in expr and "reranker_prefix_cache_reuse_total" in expr


def test_every_panel_has_a_unit_and_a_description() -> None:
    _rule, cm = monitoring_children(make_cr(FULL_SPEC))
    for panel in dashboard_of(cm)["panels"]:
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert len(panel["description"]) > 20, panel["title"]
