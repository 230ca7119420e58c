"""The opt-in monitoring overlay of the operator (deploy/overlays/monitoring/): it builds with
kustomize; built-in kinds validate strictly, the ServiceMonitor and PrometheusRule against the
prometheus-operator CRDs' schemas; the ServiceMonitor reaches the port the operator serves
/metrics on; the rules pass `promtool check rules` and `promtool test rules` shows each alert
firing (after its `for:`) on failing series and silent on healthy ones."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from reranker_devtools import REPO
from reranker_devtools import prometheus as prom
from reranker_operator.controller import metrics_overlay as overlay
from reranker_operator.controller.metrics import OperatorMetric as M

OVERLAY = "deploy/overlays/monitoring"
SCHEMAS = REPO.parent / "shared" / "schemas" / "prometheus-operator"
JOB = f'job="{overlay.METRICS_SERVICE}"'
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl missing")
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    done = subprocess.run(
        ["kubectl", "kustomize", str(REPO / OVERLAY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    [obj] = [o for o in objs if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return obj


def _crd_schema(kind: str) -> dict[str, Any]:
    plural = {"ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules"}[kind]
    crd = yaml.safe_load((SCHEMAS / f"monitoring.coreos.com_{plural}.yaml").read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


@needs_kubectl
@pytest.mark.parametrize("version", ["1.30", "1.37"])
def test_every_object_validates(built, version: str) -> None:
    kinds = set()
    for obj in built:
        kinds.add(obj["kind"])
        if obj["kind"] in ("ServiceMonitor", "PrometheusRule"):
            validator = jsonschema.Draft202012Validator(_crd_schema(obj["kind"]))
            errors = [e.message for e in validator.iter_errors(obj)]
            assert not errors, (obj["kind"], errors)
        elif obj["kind"] != "CustomResourceDefinition":
            kubernetes_validate.validate(obj, version, strict=True)
    assert {"ServiceMonitor", "PrometheusRule", "ConfigMap", "Service", "Deployment"} <= kinds


def test_the_crd_schema_check_can_fail() -> None:
    monitor = yaml.safe_load((REPO / OVERLAY / "servicemonitor.yaml").read_text())
    monitor["spec"]["endpoints"][0]["interval"] = "thirty seconds"
    validator = jsonschema.Draft202012Validator(_crd_schema("ServiceMonitor"))
    assert list(validator.iter_errors(monitor))


@needs_kubectl
def test_the_service_monitor_reaches_the_metrics_port(built) -> None:
    monitor = one(built, "ServiceMonitor")
    service = one(built, "Service", overlay.METRICS_SERVICE)
    deployment = one(built, "Deployment", "reranker-operator")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    job = prom.scrape_job(monitor, service, ports, [prom.Target("p", "127.0.0.1:1")])
    assert job["static_configs"][0]["labels"]["job"] == overlay.METRICS_SERVICE
    assert job["metrics_path"] == "/metrics"
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    [svc_port] = service["spec"]["ports"]
    port = ports[svc_port["targetPort"]]
    assert f"--metrics-bind-address=0.0.0.0:{port}" in container["args"]
    assert one(built, "PrometheusRule")["spec"] == overlay.prometheus_rule()["spec"]
    board = json.loads(
        one(built, "ConfigMap", overlay.DASHBOARD_NAME)["data"][overlay.DASHBOARD_FILE]
    )
    assert board["panels"][0]["type"] == "row"


def _series(metric: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{metric}{{{labels}}}", "values": values}


def _services(not_ready: str) -> list[dict[str, str]]:
    return [
        _series(M.RERANKER_SERVICES, f'{JOB},condition="Ready",status="False"', not_ready),
        _series(M.RERANKER_SERVICES, f'{JOB},condition="Ready",status="True"', "1x40"),
        _series(M.RERANKER_SERVICES, f'{JOB},condition="Ready",status="Unknown"', "0x40"),
    ]


# alert: (firing input, healthy input); 40 one-minute samples each
CASES: dict[str, tuple[list[dict[str, str]], list[dict[str, str]]]] = {
    "RerankerOperatorReconcileErrors": (
        [_series(M.RECONCILE_ERRORS_TOTAL, f'{JOB},controller="rerankerservice"', "0+3x40")],
        [
            # one failure (e.g. an invalid spec) is not sustained
            _series(M.RECONCILE_ERRORS_TOTAL, f'{JOB},controller="rerankerservice"', "0 1x39"),
            # another job's errors do not count
            _series(M.RECONCILE_ERRORS_TOTAL, 'job="other",controller="x"', "0+3x40"),
        ],
    ),
    "RerankerServiceNotReady": (_services("1x40"), _services("1x10 0x30")),
    "RerankerOperatorDown": (
        [_series("up", JOB, "0x40")],
        [_series("up", JOB, "1x40"), _series("up", 'job="other"', "0x40")],
    ),
    "RerankerOperatorNotWatching": (
        [_series(M.WATCHING, JOB, "0x40")],
        [_series(M.WATCHING, JOB, "1x40")],
    ),
}


def _minutes(duration: str) -> int:
    assert duration.endswith("m"), duration
    return int(duration[:-1])


@needs_promtool
def test_the_rules_pass_promtool_check(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(prom.rule_file(overlay.prometheus_rule()))
    done = prom.promtool("check", "rules", path.name, cwd=tmp_path)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


@needs_promtool
def test_every_alert_fires_on_failure_and_stays_silent_when_healthy(tmp_path: Path) -> None:
    rules = {r["alert"]: r for r in overlay.alert_rules()}
    assert set(rules) == set(CASES)  # a new alert needs its case here
    rule = overlay.prometheus_rule()
    for r in rule["spec"]["groups"][0]["rules"]:
        r.pop("annotations")  # promtool compares annotations verbatim; `check rules` parses them
    (tmp_path / "rules.yaml").write_text(prom.rule_file(rule))
    tests = []
    for alert, (firing, healthy) in CASES.items():
        wait = _minutes(rules[alert]["for"])
        before, after = f"{wait - 1}m", f"{wait + 6}m"  # rate windows need a few samples
        tests.append(
            {
                "interval": "1m",
                "input_series": firing,
                "alert_rule_test": [
                    {"eval_time": before, "alertname": alert, "exp_alerts": []},
                    {
                        "eval_time": after,
                        "alertname": alert,
                        "exp_alerts": [{"exp_labels": rules[alert]["labels"]}],
                    },
                ],
            }
        )
        tests.append(
            {
                "interval": "1m",
                "input_series": healthy,
                "alert_rule_test": [{"eval_time": after, "alertname": alert, "exp_alerts": []}],
            }
        )
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "tests": tests}, sort_keys=False)
    )
    done = prom.promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
