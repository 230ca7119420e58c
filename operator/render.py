"""Render a RerankerService into its child manifests (plain camelCase dicts) via jinja2 templates.

Every value reaches a template through the `toyaml` filter (a JSON flow value), so user input
is data and can never add keys, list items or documents to the output.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2
import yaml

from . import __version__
from reranker_contract import (
    LIVENESS_PATH,
    METRICS_PATH,
    MODEL_CACHE_PATH,
    PORT,
    PORT_NAME,
    READY_PATH,
    Env,
    HpaMetric,
    served_model_name,
)

from .constants import (
    CONFIG_HASH_ANNOTATION,
    CRD_GROUP,
    CRD_KIND,
    CRD_PLURAL,
    CRD_VERSION,
    GRAFANA_FOLDER_ANNOTATION,
    RETAINED_ANNOTATION,
)
from .labels import child_labels, model_cache_claim_name, owner_reference, selector_labels
from .monitoring import alert_rules, dashboard_config_map_name, dashboard_json
from .spec import DNS1035_LABEL, DNS1123_LABEL, InvalidSpecError, RerankerServiceSpec, parse_spec
from .yamlfilters import toyaml

__all__ = [
    "CRD_GROUP",
    "CRD_KIND",
    "CRD_PLURAL",
    "CRD_VERSION",
    "InvalidSpecError",
    "render_children",
    "service_endpoint",
]

# One template per child kind, in apply order; a template renders to nothing when not asked for.
_TEMPLATES = (
    "pvc.yaml.j2",
    "deployment.yaml.j2",
    "service.yaml.j2",
    "hpa.yaml.j2",
    "pdb.yaml.j2",
    "ingress.yaml.j2",
    "servicemonitor.yaml.j2",
    "prometheusrule.yaml.j2",
    "dashboard.yaml.j2",
)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """The template environment, loading `reranker_operator.templates` via importlib.resources."""
    root = resources.files("reranker_operator.templates")

    def load(name: str) -> str:
        resource = root.joinpath(name)
        if not resource.is_file():
            raise jinja2.TemplateNotFound(name)
        return resource.read_text(encoding="utf-8")

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["toyaml"] = toyaml
    return env


def _metadata_fields(cr: Mapping[str, Any]) -> tuple[str, str, str | None]:
    if not isinstance(cr, Mapping):
        raise InvalidSpecError("", "the RerankerService must be a mapping")
    meta = cr.get("metadata")
    if not isinstance(meta, Mapping):
        raise InvalidSpecError("metadata", "missing metadata")
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > 63 or not re.fullmatch(DNS1035_LABEL, name):
        raise InvalidSpecError(
            "metadata.name",
            f"{name!r} must be a DNS-1035 label (lowercase letters, digits, '-', "
            "starting with a letter, at most 63 characters): it names the Service",
        )
    namespace = meta.get("namespace") or "default"
    if (
        not isinstance(namespace, str)
        or not re.fullmatch(DNS1123_LABEL, namespace)
        or len(namespace) > 63
    ):
        raise InvalidSpecError("metadata.namespace", f"{namespace!r} is not a namespace name")
    uid = meta.get("uid")
    return name, namespace, uid if isinstance(uid, str) and uid else None


def _spec_of(cr: Mapping[str, Any]) -> RerankerServiceSpec:
    spec = cr.get("spec")
    if spec is None:
        raise InvalidSpecError("", "missing spec")
    return parse_spec(spec)


def _image(spec: RerankerServiceSpec) -> str:
    repo, tag = spec.image.repository, spec.image.tag or __version__
    return f"{repo}@{tag}" if tag.startswith("sha256:") else f"{repo}:{tag}"


def _server_env(spec: RerankerServiceSpec) -> list[dict[str, Any]]:
    """The server's settings as container env, user `env` entries overriding same-named ones."""
    m, s = spec.model, spec.server
    values: list[tuple[Env, str]] = [
        (Env.MODEL_NAME, m.name),
        (Env.MODEL_REVISION, m.revision),
        (Env.SERVED_MODEL_NAME, served_model_name(m.name, m.served_name)),
        (Env.MODEL_FAMILY, m.family),
        (Env.DTYPE, m.dtype),
        (Env.QUANTIZATION, m.quantization),
        (Env.TRUST_REMOTE_CODE, "true" if m.trust_remote_code else "false"),
        (Env.DEVICE, "cuda" if spec.resources.gpus > 0 else "cpu"),
        (Env.MAX_BATCH_TOKENS, str(s.max_batch_tokens)),
        (Env.BATCH_SIZE, str(s.max_batch_size)),
        (Env.MAX_CLIENT_BATCH_SIZE, str(s.max_client_batch_size)),
        (Env.MAX_CONCURRENT_REQUESTS, str(s.max_concurrent_requests)),
        (Env.LOG_LEVEL, s.log_level),
        (Env.PORT, str(PORT)),
        (Env.HF_HOME, MODEL_CACHE_PATH),
        (Env.CACHE_DIR, MODEL_CACHE_PATH),  # where the init container downloaded
        (Env.HF_HUB_OFFLINE, "1"),
    ]
    if m.max_length is not None:
        values.append((Env.MAX_SEQUENCE_LENGTH, str(m.max_length)))
    if m.instruction is not None:
        values.append((Env.DEFAULT_INSTRUCTION, m.instruction))
    env: list[dict[str, Any]] = [{"name": str(name), "value": value} for name, value in values]
    if s.api_key_secret is not None:
        ref = {"name": s.api_key_secret.name, "key": s.api_key_secret.key}
        env.append({"name": str(Env.API_KEY), "valueFrom": {"secretKeyRef": ref}})
    return _merge_env(env, [e.model_dump(by_alias=True, exclude_none=True) for e in spec.env])


def _merge_env(base: list[dict[str, Any]], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`base` with `extra` appended; an `extra` entry replaces a same-named `base` entry."""
    out = {e["name"]: e for e in base}
    for e in extra:
        out.pop(e["name"], None)
        out[e["name"]] = e
    return list(out.values())


def _resources(spec: RerankerServiceSpec, *, gpus: bool) -> dict[str, Any]:
    r = spec.resources
    requests = r.requests.model_dump(exclude_none=True)
    limits = r.limits.model_dump(exclude_none=True)
    if gpus and r.gpus > 0:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(r.gpus)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = {k: str(v) for k, v in requests.items()}
    if limits:
        out["limits"] = {k: str(v) for k, v in limits.items()}
    return out


def _downloads(spec: RerankerServiceSpec) -> bool:
    """Whether the model comes from the Hub (an init container fetches it) or a local path."""
    return not spec.model.name.startswith("/")


def _causal(spec: RerankerServiceSpec) -> bool:
    """Whether the model is a Qwen3-style causal reranker (its documents share a prompt prefix):
    said by model.family, or guessed from the name when the family is auto."""
    if spec.model.family != "auto":
        return spec.model.family == "qwen3-causal"
    return "qwen" in spec.model.name.lower()


def _config_hash(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _context(cr: Mapping[str, Any]) -> dict[str, Any]:
    name, namespace, uid = _metadata_fields(cr)
    spec = _spec_of(cr)
    owners = [owner_reference(name, uid)] if uid else []

    def meta(component: str, *, child: str = name, owned: bool = True, annotations=None):
        m: dict[str, Any] = {
            "name": child,
            "namespace": namespace,
            "labels": child_labels(name, component),
        }
        if annotations:
            m["annotations"] = dict(annotations)
        if owned and owners:
            m["ownerReferences"] = owners
        return m

    cache = spec.model_cache
    claim = (cache.existing_claim or model_cache_claim_name(name)) if cache.enabled else None
    env = _server_env(spec)
    env_from = [e.model_dump(by_alias=True, exclude_none=True) for e in spec.env_from]
    image = _image(spec)
    # `--opt=value` keeps a value that starts with "-" from being read as another option.
    download_args = [
        f"--model={spec.model.name}", f"--revision={spec.model.revision}",
        f"--cache-dir={MODEL_CACHE_PATH}",
    ]  # fmt: skip
    download_env: list[dict[str, Any]] = [{"name": str(Env.HF_HOME), "value": MODEL_CACHE_PATH}]
    if spec.hub_token_secret is not None:
        ref = {"name": spec.hub_token_secret.name, "key": spec.hub_token_secret.key}
        download_env.append({"name": str(Env.HF_TOKEN), "valueFrom": {"secretKeyRef": ref}})
    pod_labels = {**spec.pod_labels, **child_labels(name, "server")}
    config_hash = _config_hash(image, env, env_from, download_args, download_env, claim)
    pod_annotations = {**spec.pod_annotations, CONFIG_HASH_ANNOTATION: config_hash}
    pvc_annotations = {RETAINED_ANNOTATION: "true"} if cache.retain_on_delete else None
    dump = spec.model_dump(by_alias=True, exclude_none=True)
    rule, board = spec.metrics.prometheus_rule, spec.metrics.dashboard
    board_annotations = {GRAFANA_FOLDER_ANNOTATION: board.folder} if board.folder else None

    return {
        "spec": dump,
        "name": name,
        "namespace": namespace,
        "meta": {
            "pvc": meta(
                "model-cache",
                child=model_cache_claim_name(name),
                owned=not cache.retain_on_delete,
                annotations=pvc_annotations,
            ),
            "deployment": meta("server"),
            "service": meta("server", annotations=spec.service.annotations),
            "hpa": meta("autoscaler"),
            "pdb": meta("disruption-budget"),
            "ingress": meta("ingress", annotations=spec.ingress.annotations),
            "servicemonitor": {
                **meta("metrics"),
                "labels": {**spec.metrics.service_monitor.labels, **child_labels(name, "metrics")},
            },
            "prometheusrule": {
                **meta("alerts"),
                "labels": {**rule.labels, **child_labels(name, "alerts")},
            },
            "dashboard": {
                **meta("dashboard", child=dashboard_config_map_name(name),
                       annotations=board_annotations),
                "labels": {**board.labels, **child_labels(name, "dashboard")},
            },
        },
        "create_pvc": cache.enabled and cache.existing_claim is None,
        "claim_name": claim,
        "selector_labels": selector_labels(name),
        "pod_labels": pod_labels,
        "pod_annotations": pod_annotations,
        "image": image,
        "env": env,
        "env_from": env_from,
        "resources": _resources(spec, gpus=True),
        "init_resources": _resources(spec, gpus=False),
        "download": _downloads(spec),
        "download_args": download_args,
        "download_env": download_env,
        "pull_secrets": [{"name": s} for s in spec.image.pull_secrets],
        "container_port": PORT,
        "port_name": PORT_NAME,
        "ready_path": READY_PATH,
        "liveness_path": LIVENESS_PATH,
        "metrics_path": METRICS_PATH,
        "cache_path": MODEL_CACHE_PATH,
        "gpu_count": spec.resources.gpus,
        "rps_metric": str(HpaMetric.REQUESTS_PER_SECOND),
        "latency_metric": str(HpaMetric.P95_LATENCY_SECONDS),
        "alert_group": f"reranker.{namespace}.{name}",
        "alert_rules": alert_rules(name, namespace, rule, causal=_causal(spec)) if rule.enabled else [],
        "dashboard_file": f"reranker-{namespace}-{name}.json",
        "dashboard_json": dashboard_json(name, namespace) if board.enabled else "",
    }


def render_children(cr: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every child manifest of the RerankerService `cr`, in apply order.

    Owner references are set when the CR has a `metadata.uid` (always, from an API server);
    a retained model-cache PVC never gets one. Raises InvalidSpecError naming the bad field.
    """
    ctx = _context(cr)
    env = _environment()
    children: list[dict[str, Any]] = []
    for template in _TEMPLATES:
        text = env.get_template(template).render(ctx)
        for doc in yaml.safe_load_all(text):
            if doc:
                children.append(doc)
    return children


def service_endpoint(cr: Mapping[str, Any]) -> str:
    """The in-cluster base URL of the RerankerService's Service."""
    name, namespace, _ = _metadata_fields(cr)
    port = _spec_of(cr).service.port
    return f"http://{name}.{namespace}.svc.cluster.local:{port}"
