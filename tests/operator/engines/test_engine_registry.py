"""An engine is one package plus one registry line: a toy third engine, registered for one test,
renders through the real path (parse -> params -> templates) with each of its hooks in place;
and every registered engine implements the interface."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import toy_engine

from render_helpers import make_cr
from reranker_operator import engines
from reranker_operator.api.constants import CONFIG_HASH_ANNOTATION
from reranker_operator.api.spec import InvalidSpecError, parse_spec
from reranker_operator.engines.base import CheckPlace, Engine
from reranker_operator.render.kinds import CHILD_KINDS
from reranker_operator.render.manifests import render_children

TOY_SPEC: dict[str, Any] = {
    "engine": "toy",
    "model": {"name": "acme/toy-reranker"},
    "env": [{"name": "EXTRA", "value": "1"}],
    "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3, "queuedPairsPerPod": "40"},
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    },
    "networkPolicy": {"enabled": True},
}


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The toy engine in the registry (the one line a real engine adds), for this test only."""
    monkeypatch.setitem(engines.ENGINES, toy_engine.NAME, toy_engine.__name__)
    yield engines.engine(toy_engine.NAME)


def _by_kind(children: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for child in children:
        out.setdefault(child["kind"], []).append(child)
    return out


def test_a_toy_engine_renders_through_the_real_path(toy: Engine) -> None:
    kids = _by_kind(render_children(make_cr(TOY_SPEC)))
    # serving_container: the Deployment's container and its volumes
    [deployment] = kids["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == toy_engine.IMAGE
    assert container["command"] == ["toy-serve"]
    assert container["args"][0] == "--model=acme/toy-reranker"
    assert container["readinessProbe"]["httpGet"]["path"] == "/toy/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/toy/live"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env == {"TOY_MODE": "rerank", "EXTRA": "1"}
    assert {"name": "toy-config", "configMap": {"name": "demo-toy-config"}} in pod["volumes"]
    assert "model-download" in [c["name"] for c in pod.get("initContainers", [])]
    # children: its own ConfigMap, applied before the Deployment
    config = next(c for c in kids["ConfigMap"] if c["metadata"]["name"] == "demo-toy-config")
    assert config["data"] == {toy_engine.CONFIG_FILE: "model=acme/toy-reranker\n"}
    order = [c["kind"] for c in render_children(make_cr(TOY_SPEC))]
    assert order.index("ConfigMap") < order.index("Deployment")
    # metrics_port: the Service, the ServiceMonitor and the NetworkPolicy follow it
    [service] = kids["Service"]
    assert {
        "name": "metrics",
        "port": toy_engine.METRICS_PORT,
        "targetPort": "metrics",
        "protocol": "TCP",
    } in service["spec"]["ports"]
    [monitor] = kids["ServiceMonitor"]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    [policy] = kids["NetworkPolicy"]
    ports = [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]]
    assert toy_engine.METRICS_PORT in ports
    # queued_pairs_metric: what the HPA reads for queuedPairsPerPod
    [hpa] = kids["HorizontalPodAutoscaler"]
    metrics = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert metrics == [toy_engine.QUEUE_METRIC]
    # alerts (then the workload's) and panels (then the workload's)
    [rule] = kids["PrometheusRule"]
    alerts = [r["alert"] for r in rule["spec"]["groups"][0]["rules"]]
    assert alerts[0] == "ToyQueueLong" and "RerankerNoReplicasAvailable" in alerts
    board = next(c for c in kids["ConfigMap"] if c["metadata"]["name"] == "demo-dashboard")
    [board_json] = board["data"].values()
    titles = [p["title"] for p in json.loads(board_json)["panels"]]
    assert titles[0] == "Toy pairs waiting" and "Available replicas" in titles
    # restart_inputs: the config's text is part of the pod template's hash
    other = {**TOY_SPEC, "model": {"name": "acme/other-reranker"}}
    [moved] = _by_kind(render_children(make_cr(other)))["Deployment"]
    hashes = [
        d["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
        for d in (deployment, moved)
    ]
    assert hashes[0] != hashes[1]


def test_the_toy_engines_checks_and_name_join_the_spec(toy: Engine) -> None:
    assert parse_spec(TOY_SPEC).engine == "toy"
    with pytest.raises(InvalidSpecError) as err:
        parse_spec({**TOY_SPEC, "resources": {"gpus": 1}})
    assert err.value.field == "resources.gpus"
    assert err.value.message == "engine toy runs on CPUs only"
    # the other engines' checks do not apply to it, nor its to them
    parse_spec({**TOY_SPEC, "server": {"scoreCache": {"enabled": True}}})
    parse_spec({"model": {"name": "m"}, "resources": {"gpus": 1}})


def test_an_unregistered_engine_is_refused() -> None:
    with pytest.raises(InvalidSpecError) as err:
        parse_spec({"engine": "toy", "model": {"name": "m"}})
    assert err.value.field == "engine"
    assert err.value.message == "Input should be 'transformers' or 'vllm'"


def test_the_toy_engine_renders_nothing_for_the_other_engines(toy: Engine) -> None:
    kids = render_children(make_cr({"model": {"name": "acme/other"}}))
    assert "demo-toy-config" not in [c["metadata"]["name"] for c in kids]


@pytest.mark.parametrize("name", engines.engine_names())
def test_every_registered_engine_implements_the_interface(name: str) -> None:
    engine = engines.engine(name)
    assert isinstance(engine, Engine) and engine.name == name
    assert not inspect.isabstract(type(engine))
    assert engine.summary
    assert engine.queued_pairs_metric in {rule.name for rule in engine.adapter_rules}
    templates = resources.files("reranker_templates")
    for child in engine.children:
        assert templates.joinpath(child.template).is_file(), child.template
        assert child.kind in CHILD_KINDS, child.role
    spec = parse_spec({"engine": name, "model": {"name": "acme/m"}, "resources": {"gpus": 1}})
    for place in CheckPlace:  # a spec of its own that parses keeps every one of its rules
        for rule in engine.rules(place):
            assert rule.holds(spec), rule.message
