"""The rendered alerts through the real promtool: every PrometheusRule passes `promtool check
rules`, and `promtool test rules` shows each alert firing on series that should fire it (its
`for:` respected) and silent on healthy ones, including another service's series."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from render_helpers import REPO, make_cr
from reranker_operator.render.manifests import render_children

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (make system-deps)"
)

NS, NAME = "ml", "demo"
POD = "demo-5d9f8b7c6-x2k4p"  # a pod of the Deployment `demo`
SRV = f'namespace="{NS}",job="{NAME}",pod="{POD}"'  # what the ServiceMonitor's relabelings give


def _rule_of(spec: dict[str, Any]) -> dict[str, Any]:
    (rule,) = [
        c
        for c in render_children(make_cr(spec, name=NAME, namespace=NS))
        if c["kind"] == "PrometheusRule"
    ]
    return rule


def _rule_files() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "RerankerService":
                out += [
                    (path.name, c) for c in render_children(doc) if c["kind"] == "PrometheusRule"
                ]
    return out


def _promtool(*args: str, cwd: Path):
    import subprocess

    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_every_rendered_rule_passes_promtool_check(tmp_path: Path) -> None:
    files = _rule_files()
    files.append(
        (
            "causal",
            _rule_of(
                {
                    "model": {"name": "/m", "family": "qwen3-causal"},
                    "metrics": {"prometheusRule": {"enabled": True}},
                }
            ),
        )
    )
    assert len(files) >= 2
    for i, (where, rule) in enumerate(files):
        path = tmp_path / f"r{i}.yaml"
        path.write_text(yaml.safe_dump(rule["spec"]))
        done = _promtool("check", "rules", path.name, cwd=tmp_path)
        assert done.returncode == 0, f"{where}: {done.stdout}{done.stderr}"
        assert "SUCCESS" in done.stdout


def _series(metric: str, labels: str, values: str) -> dict[str, str]:
    """Counters grow from minute 0 (a rate needs two samples: true from minute 1); gauges start
    at minute 1 (`_` = no sample), so every condition holds from minute 1."""
    return {"series": f"{metric}{{{labels}}}", "values": values}


def _histogram(metric: str, labels: str, slow: bool) -> list[dict[str, str]]:
    """60 observations a minute, all in (1, 5] s when slow, all under 0.05 s otherwise."""
    out = []
    for le in ("0.05", "0.1", "1", "5", "+Inf"):
        fast_count = "0+60x20"
        slow_count = "0+60x20" if le in ("5", "+Inf") else "0+0x20"
        out.append(
            _series(f"{metric}_bucket", f'{labels},le="{le}"', slow_count if slow else fast_count)
        )
    return out


CASES: dict[str, tuple[list[dict[str, str]], list[dict[str, str]], dict[str, str]]] = {
    # alert: (firing input, healthy input, extra labels of the firing alert)
    "RerankerHighErrorRate": (
        [
            _series(
                "http_requests_total",
                f'{SRV},method="POST",endpoint="/v1/rerank",status="500"',
                "0+30x20",
            ),
            _series(
                "http_requests_total",
                f'{SRV},method="POST",endpoint="/v1/rerank",status="200"',
                "0+30x20",
            ),
        ],
        [
            _series(
                "http_requests_total",
                f'{SRV},method="POST",endpoint="/v1/rerank",status="200"',
                "0+60x20",
            ),
            # another service's errors never count for this one
            _series(
                "http_requests_total",
                'namespace="ml",job="other",method="POST",status="500"',
                "0+60x20",
            ),
        ],
        {},
    ),
    "RerankerHighLatency": (
        _histogram(
            "http_request_duration_seconds", f'{SRV},method="POST",endpoint="/v1/rerank"', True
        ),
        _histogram(
            "http_request_duration_seconds", f'{SRV},method="POST",endpoint="/v1/rerank"', False
        ),
        {},
    ),
    "RerankerQueueRejections": (
        [_series("reranker_requests_total", f'{SRV},status="rejected"', "0+60x20")],
        [
            _series("reranker_requests_total", f'{SRV},status="ok"', "0+600x20"),
            _series("reranker_requests_total", f'{SRV},status="rejected"', "0+0x20"),
        ],
        {},
    ),
    "RerankerQueueTimeHigh": (
        _histogram("reranker_queue_time_seconds", SRV, True),
        _histogram("reranker_queue_time_seconds", SRV, False),
        {},
    ),
    "RerankerNoReplicasAvailable": (
        [
            _series(
                "kube_deployment_status_replicas_available",
                f'namespace="{NS}",deployment="{NAME}"',
                "_ 0x20",
            ),
            _series(
                "kube_deployment_spec_replicas", f'namespace="{NS}",deployment="{NAME}"', "_ 2x20"
            ),
        ],
        [
            _series(
                "kube_deployment_status_replicas_available",
                f'namespace="{NS}",deployment="{NAME}"',
                "_ 2x20",
            ),
            _series(
                "kube_deployment_spec_replicas", f'namespace="{NS}",deployment="{NAME}"', "_ 2x20"
            ),
        ],
        {"deployment": NAME},
    ),
    "RerankerPodCrashLooping": (
        [
            _series(
                "kube_pod_container_status_waiting_reason",
                f'namespace="{NS}",pod="{POD}",container="reranker",reason="CrashLoopBackOff"',
                "_ 1x20",
            )
        ],
        [
            _series(
                "kube_pod_container_status_waiting_reason",  # another Deployment's pod
                f'namespace="{NS}",pod="demo-other-5d9f8b7c6-x2k4p",container="reranker",reason="CrashLoopBackOff"',
                "_ 1x20",
            ),
            _series(
                "kube_pod_container_status_waiting_reason",  # a sidecar of ours
                f'namespace="{NS}",pod="{POD}",container="istio-proxy",reason="CrashLoopBackOff"',
                "_ 1x20",
            ),
        ],
        {"pod": POD},
    ),
    "RerankerGPUMemoryHigh": (
        [
            _series("gpu_memory_reserved_bytes", f'{SRV},gpu_id="0"', "_ 76000000000x20"),
            _series("gpu_memory_total_bytes", f'{SRV},gpu_id="0"', "_ 80000000000x20"),
        ],
        [
            _series("gpu_memory_reserved_bytes", f'{SRV},gpu_id="0"', "_ 40000000000x20"),
            _series("gpu_memory_total_bytes", f'{SRV},gpu_id="0"', "_ 80000000000x20"),
        ],
        {"pod": POD, "gpu_id": "0"},
    ),
    "RerankerScoreCheckFailing": (
        [_series("reranker_score_check_passed", SRV, "_ 0x20")],
        [
            _series("reranker_score_check_passed", SRV, "_ 1x20"),
            # another service's failed check never counts for this one
            _series(
                "reranker_score_check_passed",
                f'namespace="{NS}",job="other",pod="other-5d9f8b7c6-x2k4p"',
                "_ 0x20",
            ),
        ],
        {"pod": POD},
    ),
    "RerankerPrefixReuseLow": (
        [
            _series("reranker_documents_per_request_sum", SRV, "0+600x20"),
            _series("reranker_prefix_cache_reuse_total", SRV, "0+60x20"),
        ],
        [
            _series("reranker_documents_per_request_sum", SRV, "0+600x20"),
            _series("reranker_prefix_cache_reuse_total", SRV, "0+570x20"),
        ],
        {},
    ),
}


def _unit_test_file(tmp_path: Path, rule: dict[str, Any], case: str, fire: bool) -> Path:
    """A promtool test of one alert: with `for: 5m` and data from minute 0 the condition holds
    from minute 1 (two samples for rate), so at minute 5 the alert is pending, at 7 firing."""
    spec = copy.deepcopy(rule["spec"])
    for group in spec["groups"]:
        for r in group["rules"]:
            r.pop("annotations", None)  # promtool compares annotations verbatim; the labels and
            # the expression are what is tested (`promtool check rules` parses the templates)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    firing, healthy, extra = CASES[case]
    labels = {
        "severity": next(
            r["labels"]["severity"]
            for g in spec["groups"]
            for r in g["rules"]
            if r["alert"] == case
        ),
        "rerankerservice": NAME,
        "namespace": NS,
        **extra,
    }
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": firing if fire else healthy,
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": case, "exp_alerts": []},  # `for:` not yet over
                    {
                        "eval_time": "7m",
                        "alertname": case,
                        "exp_alerts": [{"exp_labels": labels}] if fire else [],
                    },
                    {
                        "eval_time": "15m",
                        "alertname": case,
                        "exp_alerts": [{"exp_labels": labels}] if fire else [],
                    },
                ],
            }
        ],
    }
    path = tmp_path / f"test-{case}-{'fire' if fire else 'quiet'}.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def rule() -> dict[str, Any]:
    return _rule_of(
        {
            "model": {"name": "Qwen/Qwen3-Reranker-0.6B"},
            "metrics": {"prometheusRule": {"enabled": True}},
        }
    )


def test_every_alert_has_a_unit_test(rule) -> None:
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts == set(CASES)


@pytest.mark.parametrize("fire", [True, False], ids=["fires", "stays-silent"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_alert_fires_after_for_and_only_then(tmp_path: Path, rule, case: str, fire: bool) -> None:
    path = _unit_test_file(tmp_path, rule, case, fire)
    done = _promtool("test", "rules", path.name, cwd=tmp_path)
    assert done.returncode == 0, f"{case}: {done.stdout}{done.stderr}"


def test_the_unit_tests_can_fail(tmp_path: Path, rule) -> None:
    """A wrong expectation (the queue-time alert silent on slow series) makes promtool fail."""
    path = _unit_test_file(tmp_path, rule, "RerankerQueueTimeHigh", True)
    test = yaml.safe_load(path.read_text())
    test["tests"][0]["alert_rule_test"][1]["exp_alerts"] = []
    path.write_text(yaml.safe_dump(test))
    done = _promtool("test", "rules", path.name, cwd=tmp_path)
    assert done.returncode != 0 and "FAILED" in done.stdout + done.stderr
