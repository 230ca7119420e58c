"""A real Prometheus (Debian's `prometheus` and `promtool`, `make system-deps`) for the tests.

`scrape_job` turns a rendered ServiceMonitor (and the Service and pod it selects) into the
scrape job the Prometheus Operator would generate: the endpoint's path, interval and timeout, its
port name resolved through the Service to the container's port, and the labels its relabelings
give every series (`job` = the Service's name, `namespace`, `service`, `pod`, `container`,
`endpoint`). `start` runs Prometheus on it with rule files; `query` reads its HTTP API.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class PrometheusUnavailable(RuntimeError):
    """prometheus or promtool is not installed here."""


def tool(name: str) -> str:
    """The path of `prometheus` or `promtool`; PrometheusUnavailable when missing."""
    path = shutil.which(name)
    if path is None:
        raise PrometheusUnavailable(f"{name} is not installed (run `make system-deps` as root)")
    return path


# PromQL words that are not series names
_PROMQL_WORDS = frozenset(
    {"sum", "rate", "increase", "max", "histogram_quantile", "vector", "absent", "or", "and", "le"}
)


def series_read(expr: str) -> set[str]:
    """The series names a PromQL expression reads (strings, label matchers, ranges and
    grouping clauses removed; the functions and operators it uses are not series)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", s)
    return set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", s)) - _PROMQL_WORDS


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run promtool; the caller checks returncode / output."""
    return subprocess.run(
        [tool("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def rule_file(prometheus_rule: Mapping[str, Any]) -> str:
    """The rule file a PrometheusRule's spec is (what the Prometheus Operator hands Prometheus)."""
    return yaml.safe_dump(dict(prometheus_rule["spec"]), sort_keys=False)


@dataclass(frozen=True)
class Target:
    """One pod the ServiceMonitor selects, as this machine runs it."""

    pod: str
    address: str  # host:port where the pod's container port listens here
    container: str = "reranker"


def scrape_job(
    service_monitor: Mapping[str, Any],
    service: Mapping[str, Any],
    container_ports: Mapping[str, int],
    targets: Sequence[Target],
) -> dict[str, Any]:
    """The Prometheus scrape job for the ServiceMonitor's first endpoint.

    `container_ports` maps the pod's container port names to their numbers (as in the rendered
    Deployment); the endpoint's `port` names a Service port whose `targetPort` names one of them.
    The targets' addresses are where those pods listen on this machine.
    """
    [endpoint] = service_monitor["spec"]["endpoints"][:1]
    svc_port = next(p for p in service["spec"]["ports"] if p.get("name") == endpoint["port"])
    target_port = svc_port.get("targetPort", svc_port["port"])
    if isinstance(target_port, str) and target_port not in container_ports:
        raise ValueError(f"targetPort {target_port!r} names no container port")
    namespace = service["metadata"]["namespace"]
    name = service["metadata"]["name"]
    selector = service_monitor["spec"]["selector"].get("matchLabels", {})
    labels = service["metadata"].get("labels", {})
    if any(labels.get(k) != v for k, v in selector.items()):
        raise ValueError("the ServiceMonitor's selector does not match the Service")
    return {
        "job_name": f"serviceMonitor/{namespace}/{service_monitor['metadata']['name']}/0",
        "metrics_path": endpoint.get("path", "/metrics"),
        "scheme": endpoint.get("scheme", "http"),
        "scrape_interval": endpoint.get("interval", "30s"),
        "scrape_timeout": endpoint.get("scrapeTimeout", "10s"),
        "static_configs": [
            {
                "targets": [t.address],
                "labels": {
                    "job": name,
                    "namespace": namespace,
                    "service": name,
                    "pod": t.pod,
                    "container": t.container,
                    "endpoint": endpoint["port"],
                },
            }
            for t in targets
        ],
    }


def _get(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read())


@dataclass
class PrometheusServer:
    base_url: str
    process: subprocess.Popen
    workdir: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar as one sample) of `expr` now."""
        url = f"{self.base_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        data = _get(url)
        if data.get("status") != "success":
            raise ValueError(f"query failed: {expr}: {data}")
        result = data["data"]["result"]
        if data["data"]["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        return _get(f"{self.base_url}/api/v1/alerts")["data"]["alerts"]

    def targets_up(self) -> list[dict[str, Any]]:
        return _get(f"{self.base_url}/api/v1/targets")["data"]["activeTargets"]


@contextmanager
def start(
    jobs: Sequence[Mapping[str, Any]],
    rule_texts: Sequence[str],
    *,
    port: int,
    workdir: Path,
    evaluation_interval: str = "1s",
    timeout_s: float = 60.0,
) -> Iterator[PrometheusServer]:
    """Run Prometheus scraping `jobs` with the rule files `rule_texts`; yield once ready."""
    workdir.mkdir(parents=True, exist_ok=True)
    rules = []
    for i, text in enumerate(rule_texts):
        path = workdir / f"rules-{i}.yaml"
        path.write_text(text)
        rules.append(str(path))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": evaluation_interval},
        "rule_files": rules,
        "scrape_configs": list(jobs),
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    log = (workdir / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(
                    "prometheus did not start: " + (workdir / "prometheus.log").read_text()[-2000:]
                )
            time.sleep(0.2)
        yield PrometheusServer(base, proc, workdir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
