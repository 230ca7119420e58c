"""The real operator against the emulated API: switching `engine` on a live RerankerService
rolls the Deployment over (same object) and keeps the Service, the model cache and the
monitoring children."""

from __future__ import annotations

from typing import Any

from operator_helpers import children, example, wait_for
from reranker_contract import CONTAINER_NAME
from reranker_devtools.devcluster import RERANKERS, DevCluster
from reranker_operator.controller.handlers import Controller

NS = "default"
NAME = "qwen3-reranker-0-6b"


def test_switching_the_engine_rolls_the_deployment_and_keeps_the_rest(
    cluster: DevCluster, operator: Controller
) -> None:
    manifest = example("qwen3-reranker-0.6b.yaml")
    manifest["spec"]["metrics"] = {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
    }
    probe = {"name": "p", "query": "q", "documents": ["a", "b"]}
    manifest["spec"]["scoreCheck"] = {"probes": [probe]}  # kept: the front runs the check
    cluster.create(manifest)
    wanted = {f"Deployment/{NAME}", f"PrometheusRule/{NAME}", f"ConfigMap/{NAME}-score-probes"}
    before = wait_for(
        lambda: (c := children(cluster, NAME)) and wanted <= c.keys() and c,
        "the children",
    )
    kept = {k: v["metadata"]["uid"] for k, v in before.items() if not k.startswith("Deployment/")}
    deployment_uid = before[f"Deployment/{NAME}"]["metadata"]["uid"]

    cluster.patch(RERANKERS, NS, NAME, {"spec": {"engine": "vllm"}})

    def on_vllm() -> dict[str, Any] | None:
        got = children(cluster, NAME)
        pod = got[f"Deployment/{NAME}"]["spec"]["template"]["spec"]
        commands = [c.get("command") for c in pod["containers"]]
        rule = got.get(f"PrometheusRule/{NAME}")
        rules = rule["spec"]["groups"][0]["rules"] if rule else []
        engine_alerts = any("vllm:" in r["expr"] for r in rules)  # applied after the Deployment
        return got if ["vllm", "serve"] in commands and engine_alerts else None

    after = wait_for(on_vllm, "the vLLM Deployment and its engine alerts")
    assert after[f"Deployment/{NAME}"]["metadata"]["uid"] == deployment_uid  # rolled, not replaced
    assert f"ConfigMap/{NAME}-vllm-template" in after
    assert {k: after[k]["metadata"]["uid"] for k in kept} == kept  # Service, cache, monitoring
    # the front serves: the same Service and readiness; vLLM's engine alerts join the front's
    service = f"Service/{NAME}"
    assert after[service]["spec"]["ports"] == before[service]["spec"]["ports"]
    ready = [
        c["readinessProbe"]
        for c in before[f"Deployment/{NAME}"]["spec"]["template"]["spec"]["containers"]
    ]
    pod = after[f"Deployment/{NAME}"]["spec"]["template"]["spec"]
    front = [c for c in pod["containers"] if c["name"] == CONTAINER_NAME]
    assert [c["readinessProbe"] for c in front] == ready  # the Service's pods: the front's
    rules = after[f"PrometheusRule/{NAME}"]["spec"]["groups"][0]["rules"]
    assert any("vllm:" in r["expr"] for r in rules)  # the alerts follow the engine

    cluster.patch(RERANKERS, NS, NAME, {"spec": {"engine": "transformers"}})
    back = wait_for(
        lambda: (c := children(cluster, NAME)) and f"ConfigMap/{NAME}-vllm-template" not in c and c,
        "back on our server",
    )
    assert [
        c.get("command")
        for c in back[f"Deployment/{NAME}"]["spec"]["template"]["spec"]["containers"]
    ] == [None]
    assert {k: back[k]["metadata"]["uid"] for k in kept} == kept
