"""docs/reference.md from the CRD schema (written by `make generate`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from reranker_operator.constants import CRD_API_VERSION, CRD_KIND, CRD_SHORT_NAMES
from reranker_operator.crdschema import load_crd, openapi_schema

_INTRO = f"""# RerankerService reference

`apiVersion: {CRD_API_VERSION}`, `kind: {CRD_KIND}` (namespaced; short names
{", ".join(f"`{n}`" for n in CRD_SHORT_NAMES)}). Generated from `crds/rerankerservices.yaml` by
`make generate`; a test keeps the two in sync.

Render the children of a manifest without a cluster: `reranker-operator render -f CR.yaml`.
"""

_CHILDREN = """## Children

All children are named after the RerankerService (the model cache claim is `<name>-model-cache`),
carry the labels `app.kubernetes.io/name: reranker`, `app.kubernetes.io/instance: <name>`,
`app.kubernetes.io/managed-by: reranker-operator`, `app.kubernetes.io/component` and
`app.kubernetes.io/part-of: reranker`, and a controller owner reference to the RerankerService
(except a claim with `modelCache.retainOnDelete`, which survives its deletion).

| Kind | When | Notes |
|---|---|---|
| PersistentVolumeClaim | `modelCache.enabled` without `existingClaim` | mounted at `/models-cache` (HF_HOME) |
| Deployment | always | init container `reranker-server download` fills the cache (skipped when `model.name` is an absolute path); server on port 8080 (`http`); probes `/ready` (startup, readiness) and `/healthz` (liveness); no `replicas` while autoscaling |
| Service | always | port `service.port` named `http` |
| HorizontalPodAutoscaler | `autoscaling.enabled` | autoscaling/v2 on the Deployment |
| PodDisruptionBudget | `podDisruptionBudget.enabled` | policy/v1 |
| Ingress | `ingress.enabled` | networking.k8s.io/v1 |
| ServiceMonitor | `metrics.serviceMonitor.enabled` | monitoring.coreos.com/v1, scrapes `/metrics` on port `http` |
| PrometheusRule | `metrics.prometheusRule.enabled` | monitoring.coreos.com/v1 alerts: error rate, p95 latency, queue rejections (429), no replicas available |
| ConfigMap `<name>-dashboard` | `metrics.dashboard.enabled` | Grafana dashboard JSON, labelled for the Grafana sidecar |

The pod template carries `rerankers.io/config-hash`, a hash of the image, environment and model
source, so a settings change rolls the pods.

## Autoscaling on request rate or latency (Prometheus Adapter)

`autoscaling.requestsPerSecond` and `autoscaling.p95LatencySeconds` become HPA `Pods` metrics named
`reranker_requests_per_second` and `reranker_request_latency_p95_seconds`. Kubernetes serves them
only through the custom metrics API, e.g. Prometheus Adapter scraping the server's `/metrics`
with rules such as:

```yaml
rules:
  - seriesQuery: 'reranker_requests_total{namespace!="",pod!=""}'
    resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
    name: {matches: "reranker_requests_total", as: "reranker_requests_per_second"}
    metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
  - seriesQuery: 'model_inference_duration_seconds_bucket{namespace!="",pod!=""}'
    resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
    name: {matches: "model_inference_duration_seconds_bucket", as: "reranker_request_latency_p95_seconds"}
    metricsQuery: 'histogram_quantile(0.95, sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (le, <<.GroupBy>>))'
```

`reranker_requests_total` counts rerank requests and `model_inference_duration_seconds` times
each request from submission to scores (queueing included). CPU and memory targets need only
metrics-server.
"""


def _type_of(schema: dict[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "int or string"
    t = schema.get("type", "any")
    if t == "array":
        return f"[]{_type_of(schema.get('items', {}))}"
    if t == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return f"map[string]{_type_of(extra)}"
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return "object (free-form)"
    return str(t)


def _constraints(schema: dict[str, Any]) -> str:
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    for key, label in (("minimum", "≥"), ("maximum", "≤"), ("minLength", "length ≥"),
                       ("maxLength", "length ≤"), ("minItems", "items ≥"),
                       ("maxItems", "items ≤")):  # fmt: skip
        if key in schema:
            parts.append(f"{label} {schema[key]}")
    if "pattern" in schema:
        parts.append(f"pattern `{schema['pattern']}`")
    return "; ".join(parts)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _rows(schema: dict[str, Any], path: str, required: bool) -> Iterator[str]:
    default = f"`{json.dumps(schema['default'])}`" if "default" in schema else ""
    req = "yes" if required else ""
    yield (
        f"| `{path}` | {_type_of(schema)} | {req} | {default} | "
        f"{_cell(schema.get('description', ''))} | {_cell(_constraints(schema))} |"
    )
    target = schema.get("items", {}) if schema.get("type") == "array" else schema
    suffix = "[]" if schema.get("type") == "array" else ""
    needed = set(target.get("required", []))
    for name, sub in target.get("properties", {}).items():
        yield from _rows(sub, f"{path}{suffix}.{name}", name in needed)


def _rules(schema: dict[str, Any], path: str) -> Iterator[str]:
    target = schema.get("items", {}) if schema.get("type") == "array" else schema
    suffix = "[]" if schema.get("type") == "array" else ""
    for rule in target.get("x-kubernetes-validations", []):
        yield f"- `{path}{suffix}`: {rule['message']} (CEL: `{' '.join(rule['rule'].split())}`)"
    for name, sub in target.get("properties", {}).items():
        yield from _rules(sub, f"{path}{suffix}.{name}")


def generate() -> str:
    """The whole reference as Markdown."""
    crd = load_crd()
    root = openapi_schema(crd)
    header = "| Field | Type | Required | Default | Description | Constraints |\n|---|---|---|---|---|---|"
    out = [_INTRO]
    for part in ("spec", "status"):
        schema = root["properties"][part]
        out.append(f"## `{part}`\n\n{_cell(schema['description'])}\n\n{header}")
        rows = list(_rows(schema, part, part in root.get("required", [])))
        out.append("\n".join(rows[1:]) + "\n")
    out.append(
        "## Validation rules\n\nEnforced by the API server (CEL) and again by the operator:\n"
    )
    out.append("\n".join(_rules(root["properties"]["spec"], "spec")) + "\n")
    out.append("## Printer columns\n\n| Column | JSONPath | Shown |\n|---|---|---|")
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    cols = [
        f"| {c['name']} | `{c['jsonPath']}` | {'-o wide' if c.get('priority') else 'always'} |"
        for c in version.get("additionalPrinterColumns", [])
    ]
    out.append("\n".join(cols) + "\n")
    out.append(_CHILDREN)
    return "\n".join(out)
