"""Hostile values are data: they cannot add a key, container, volume or document to a child."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from render_helpers import FULL_SPEC, make_cr
from reranker_operator.api.spec import InvalidSpecError
from reranker_operator.render.manifests import render_children
from reranker_operator.render.yamlfilters import toyaml

HOSTILE = [
    "x\n- name: evil\n  image: evil:latest",
    "a: b\nkind: Secret",
    "{evil: 1}, {more: 2}",
    '"\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: stolen}\n',
    "' # \\ \t}] ]]",
    "&anchor *alias !!python/object/apply:os.system ['id']",
    "{{ 7*7 }} {% if true %}jinja{% endif %} ${HOME}",
    "\u2028line\x85break\ufeff😀 é\x00",
    "- name: evil\n  emptyDir: {}\nvolumes:\n  - name: evil",
]

# Paths of free-text spec fields (no pattern) that reach a rendered child.
TEXT_FIELDS: list[tuple[str, ...]] = [
    ("model", "name"),
    ("model", "revision"),
    ("model", "servedName"),
    ("model", "instruction"),
    ("image", "repository"),
    ("image", "tag"),
    ("env", 0, "value"),
    ("envFrom", 0, "prefix"),
    ("service", "annotations", "a.example.com/x"),
    ("podAnnotations", "team"),
    ("ingress", "annotations", "k"),
    ("ingress", "className"),
    ("modelCache", "storageClassName"),
    ("priorityClassName",),
    ("runtimeClassName",),
    ("tolerations", 0, "key"),
    ("hubTokenSecret", "key"),
    ("server", "apiKeySecret", "key"),
    ("metrics", "dashboard", "folder"),
]


def shape(value: Any) -> Any:
    """The structure of a value: dict keys and list lengths, with every scalar replaced by its type."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def with_value(path: tuple[str | int, ...], value: str) -> dict[str, Any]:
    spec = copy.deepcopy(FULL_SPEC)
    node: Any = spec
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return spec


def strings_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *strings_in(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("path", TEXT_FIELDS, ids=lambda p: ".".join(map(str, p)))
def test_hostile_text_fields_keep_the_structure(path: tuple[str | int, ...]) -> None:
    benign = render_children(make_cr(with_value(path, "benign-value")))
    for hostile in HOSTILE:
        rendered = render_children(make_cr(with_value(path, hostile)))
        assert len(rendered) == len(benign)
        assert shape(rendered) == shape(benign), (path, hostile)
        found = [s for s in strings_in(rendered) if hostile in s]
        assert found, (path, hostile)  # the value arrived intact somewhere


def test_hostile_annotation_key_is_one_key() -> None:
    # Annotation keys are validated; a hostile key is refused, never spliced.
    for hostile in HOSTILE:
        spec = copy.deepcopy(FULL_SPEC)
        spec["podAnnotations"] = {hostile: "v"}
        with pytest.raises(InvalidSpecError) as err:
            render_children(make_cr(spec))
        assert err.value.field == "podAnnotations"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda s: s["podLabels"].update(team="a\nb: c"), "podLabels"),
        (
            lambda s: s["metrics"]["serviceMonitor"]["labels"].update(x="y\n---"),
            "metrics.serviceMonitor.labels",
        ),
        (lambda s: s["ingress"].update(host="evil.com\n- host: x"), "ingress.host"),
        (lambda s: s["modelCache"].update(size="1Gi\nfoo: bar"), "modelCache.size"),
        (lambda s: s["env"][0].update(name="A\n- name: B"), "env[0].name"),
        (lambda s: s["image"]["pullSecrets"].append("x\n- name: y"), "image.pullSecrets[1]"),
        (
            lambda s: s["metrics"]["serviceMonitor"].update(interval="30s\nfoo: bar"),
            "metrics.serviceMonitor.interval",
        ),
        (
            lambda s: s["metrics"]["prometheusRule"].update({"for": "5m\n- alert: Evil"}),
            "metrics.prometheusRule.for",
        ),
        (
            lambda s: s["metrics"]["prometheusRule"].update(errorRateThreshold="0.05 or vector(1)"),
            "metrics.prometheusRule.errorRateThreshold",
        ),
        (
            lambda s: s["metrics"]["prometheusRule"].update(p95LatencySeconds=True),
            "metrics.prometheusRule.p95LatencySeconds",
        ),
        (
            lambda s: s["metrics"]["prometheusRule"]["labels"].update(x="y\n---"),
            "metrics.prometheusRule.labels",
        ),
        (
            lambda s: s["metrics"]["dashboard"]["labels"].update(x="y\nkind: Secret"),
            "metrics.dashboard.labels",
        ),
    ],
)
def test_hostile_values_in_constrained_fields_are_rejected(mutate, field: str) -> None:
    spec = copy.deepcopy(FULL_SPEC)
    mutate(spec)
    with pytest.raises(InvalidSpecError) as err:
        render_children(make_cr(spec))
    assert err.value.field == field


def test_hostile_name_is_rejected() -> None:
    for hostile in HOSTILE:
        with pytest.raises(InvalidSpecError) as err:
            render_children(make_cr(FULL_SPEC, name=hostile))
        assert err.value.field == "metadata.name"


def test_hostile_affinity_and_env_value_from_stay_nested() -> None:
    spec = copy.deepcopy(FULL_SPEC)
    spec["affinity"] = {"nodeAffinity": {HOSTILE[0]: [HOSTILE[3]]}}
    spec["env"][1]["valueFrom"] = {"secretKeyRef": {"name": HOSTILE[1], "key": HOSTILE[8]}}
    kids = {c["kind"]: c for c in render_children(make_cr(spec))}
    pod = kids["Deployment"]["spec"]["template"]["spec"]
    assert pod["affinity"] == spec["affinity"]
    assert pod["containers"][0]["env"][-1] == {
        "name": "FROM_SECRET",
        "valueFrom": spec["env"][1]["valueFrom"],
    }
    assert len(pod["containers"]) == 1
    assert [v["name"] for v in pod["volumes"]] == ["model-cache", "tmp", "score-record"]


@pytest.mark.parametrize("value", [*HOSTILE, 1, 2.5, True, None, [], {}, {"a": [1, {"b": "\n"}]}])
def test_toyaml_round_trips(value: Any) -> None:
    text = toyaml(value)
    assert "\n" not in text
    assert yaml.safe_load(f"key: {text}") == {"key": value}
    assert yaml.safe_load(f"- {text}") == [value]
    assert yaml.safe_load(f"outer:\n  inner: {text}\n  next: 1") == {
        "outer": {"inner": value, "next": 1}
    }


def test_every_template_expression_goes_through_toyaml() -> None:
    from importlib import resources

    root = resources.files("reranker_templates")
    templates = [p for p in root.iterdir() if p.name.endswith(".yaml.j2")]
    assert {p.name for p in templates} == {
        "deployment.yaml.j2",
        "model-download-init.yaml.j2",
        "pvc.yaml.j2",
        "service.yaml.j2",
        "hpa.yaml.j2",
        "pdb.yaml.j2",
        "ingress.yaml.j2",
        "servicemonitor.yaml.j2",
        "prometheusrule.yaml.j2",
        "dashboard.yaml.j2",
        "vllm-template.yaml.j2",
        "scaledobject.yaml.j2",
        "interceptorroute.yaml.j2",
        "httpscaledobject.yaml.j2",
        "proxy-service.yaml.j2",
        "networkpolicy.yaml.j2",
        "resourceclaimtemplate.yaml.j2",
        "score-probes.yaml.j2",
    }
    for path in templates:
        expressions = re.findall(r"\{\{(.*?)\}\}", path.read_text(), flags=re.DOTALL)
        assert expressions, path.name
        for expr in expressions:
            assert re.search(r"\|\s*toyaml\s*$", expr), (
                f"{path.name}: {{{{{expr}}}}} is not | toyaml"
            )


@pytest.mark.parametrize("path", TEXT_FIELDS, ids=lambda p: ".".join(map(str, p)))
def test_libyaml_and_the_pure_python_parser_read_every_hostile_render_alike(
    path: tuple[str | int, ...],
) -> None:
    """render uses libyaml's SafeLoader for speed; it must read what the pure-Python one does."""
    if not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML without libyaml: render uses the pure-Python parser")
    from reranker_operator.render.kinds import CHILDREN
    from reranker_operator.render.manifests import _environment
    from reranker_operator.render.service import parse_service

    for hostile in HOSTILE:
        svc = parse_service(make_cr(with_value(path, hostile)))
        for child in CHILDREN:
            params = child.build(svc)
            if params is None:
                continue
            text = _environment().get_template(child.template).render(kind=child.kind, p=params)
            assert yaml.load(text, Loader=yaml.CSafeLoader) == yaml.safe_load(text), child.role
