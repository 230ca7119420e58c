"""`engine: vllm` with our server in front (spec.vllm.front, the default): both engines render
one Service, probe and autoscaling shape aimed at the serving container; vLLM sits beside it on
localhost only, outside the Service, probed inside its container, its engine series relayed by
the front; bare vLLM (front false) keeps the single-container pod. Every rendered object is valid for Kubernetes 1.30 and 1.37, and
hostile values stay data."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
from test_render_injection import HOSTILE, shape

from render_helpers import make_cr
from reranker_contract import CONTAINER_NAME, PORT, PORT_NAME, READY_PATH, Env, HpaMetric
from reranker_operator.api.spec import InvalidSpecError
from reranker_operator.engines.vllm.facts import (
    VLLM_CONTAINER_NAME,
    VLLM_FRONTED_PORT,
    VLLM_HEALTH_PATH,
    VLLM_PROBE_COMMAND,
)
from reranker_operator.render.manifests import render_children

BASE: dict[str, Any] = {
    "model": {"name": "Qwen/Qwen3-Reranker-0.6B", "instruction": "Find the passage"},
    "resources": {"gpus": 1, "requests": {"cpu": "4", "memory": "16Gi"}},
    "server": {"apiKeySecret": {"name": "keys"}},
    "autoscaling": {"enabled": True, "maxReplicas": 4},
    "networkPolicy": {"enabled": True},
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    "scoreCheck": {"probes": [{"name": "p", "query": "q", "documents": ["a", "b"]}]},
}
VERSIONS = ("1.30", "1.37")
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject"}  # not in Kubernetes' schemas


def kids(engine: str, front: bool | None = None, **extra: Any) -> dict[str, dict[str, Any]]:
    spec = {**copy.deepcopy(BASE), "engine": engine, **extra}
    if front is not None:
        spec["vllm"] = {**spec.get("vllm", {}), "front": front}
    return {c["kind"]: c for c in render_children(make_cr(spec)) if c["kind"] != "ConfigMap"} | {
        f"ConfigMap/{c['metadata']['name']}": c
        for c in render_children(make_cr(spec))
        if c["kind"] == "ConfigMap"
    }


def containers(children: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    pod = children["Deployment"]["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"]}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_both_engines_render_one_service_probe_and_scaling_shape() -> None:
    ours, front = kids("transformers"), kids("vllm")
    for kind in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        if kind in ours:
            assert front[kind]["spec"] == ours[kind]["spec"], kind
    metrics = front["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert [m["pods"]["metric"]["name"] for m in metrics] == [HpaMetric.QUEUED_PAIRS]
    serving = next(iter(containers(front).values()))  # the first container serves
    assert serving["name"] == CONTAINER_NAME
    probes = ("startupProbe", "readinessProbe", "livenessProbe")
    served = containers(ours)[CONTAINER_NAME]
    assert [serving[p]["httpGet"] for p in probes] == [served[p]["httpGet"] for p in probes]
    assert serving["readinessProbe"]["httpGet"] == {"path": READY_PATH, "port": PORT_NAME}
    assert serving["ports"] == served["ports"]
    # the callers reach the same port, the scraper the front's /metrics (vLLM's series in it);
    # nothing is let in to vLLM, which listens on localhost only
    assert front["NetworkPolicy"]["spec"] == ours["NetworkPolicy"]["spec"]
    # one set of request alerts, the front's; vLLM's engine alerts besides
    alerts = [r["alert"] for r in front["PrometheusRule"]["spec"]["groups"][0]["rules"]]
    assert len(alerts) == len(set(alerts))
    ours_alerts = [r["alert"] for r in ours["PrometheusRule"]["spec"]["groups"][0]["rules"]]
    assert set(ours_alerts) - {"RerankerPrefixReuseLow", "RerankerGPUMemoryHigh"} <= set(alerts)
    assert "RerankerKVCacheFull" in alerts
    # the front holds no GPU: no GPU-memory alert or panel reading its (absent) device series;
    # vLLM's KV-cache usage stands for its memory
    assert "RerankerGPUMemoryHigh" in ours_alerts and "RerankerGPUMemoryHigh" not in alerts
    board = {"metrics": {**BASE["metrics"], "dashboard": {"enabled": True}}}
    ours_board = kids("transformers", **board)["ConfigMap/demo-dashboard"]
    front_board = kids("vllm", **board)["ConfigMap/demo-dashboard"]
    assert "gpu_memory" in str(ours["PrometheusRule"]) + str(ours_board)
    assert "gpu_memory" not in str(front["PrometheusRule"]) + str(front_board)
    assert "vllm:kv_cache_usage_perc" in str(front_board)


def test_vllm_sits_beside_the_front_outside_the_service() -> None:
    children = kids("vllm")
    pod = containers(children)
    assert list(pod) == [CONTAINER_NAME, VLLM_CONTAINER_NAME]
    front, vllm = pod[CONTAINER_NAME], pod[VLLM_CONTAINER_NAME]
    assert vllm["command"] == ["vllm", "serve"] and f"--port={VLLM_FRONTED_PORT}" in vllm["args"]
    # localhost only: no one outside the pod reaches vLLM's unauthenticated /score, NetworkPolicy
    # enforced or not; no container port to declare
    assert "--host=127.0.0.1" in vllm["args"] and vllm["ports"] == []
    service_ports = children["Service"]["spec"]["ports"]
    assert {p["targetPort"] for p in service_ports} == {PORT_NAME}
    assert VLLM_FRONTED_PORT not in {p["port"] for p in service_ports}
    # vLLM keeps its own probes (every container has a readiness probe: checkov CKV_K8S_9),
    # run inside its container against localhost; the front's readiness also waits for it
    health = f"http://127.0.0.1:{VLLM_FRONTED_PORT}{VLLM_HEALTH_PATH}"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert vllm[probe]["exec"] == {"command": [*VLLM_PROBE_COMMAND, health]}
        assert "httpGet" not in vllm[probe]
    # the GPU and spec.resources are vLLM's; the front asks modest CPU and memory, no GPU
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert vllm["resources"]["requests"]["cpu"] == "4"
    assert "nvidia.com/gpu" not in str(front["resources"])
    env = env_of(front)
    assert env[Env.ENGINE_URL] == f"http://127.0.0.1:{VLLM_FRONTED_PORT}"
    assert env[Env.DEVICE] == "cpu"
    assert env[Env.DEFAULT_INSTRUCTION] == "Find the passage"
    assert env[Env.API_KEY]["secretKeyRef"]["name"] == "keys"  # the front checks the key
    assert "VLLM_API_KEY" not in env_of(vllm)
    cache = next(m for m in front["volumeMounts"] if m["name"] == "model-cache")
    assert cache["readOnly"] is True  # the tokenizer only
    # the score check's probes are mounted in the front, which runs the check through vLLM
    assert "ConfigMap/demo-score-probes" in children
    assert {"score-probes", "score-record"} <= {m["name"] for m in front["volumeMounts"]}
    # one ServiceMonitor endpoint: the front on the Service's port, vLLM's series relayed in it
    endpoints = children["ServiceMonitor"]["spec"]["endpoints"]
    assert [e.get("port") for e in endpoints] == [PORT_NAME]


def test_front_false_is_bare_vllm() -> None:
    children = kids("vllm", front=False)
    [container] = containers(children).values()
    assert container["name"] == CONTAINER_NAME and container["command"] == ["vllm", "serve"]
    assert container["ports"][0] == {"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}
    assert "--host=0.0.0.0" in container["args"]  # the Service's endpoint
    assert container["readinessProbe"]["httpGet"] == {"path": VLLM_HEALTH_PATH, "port": PORT_NAME}
    assert "ConfigMap/demo-score-probes" not in children
    assert [e["port"] for e in children["ServiceMonitor"]["spec"]["endpoints"]] == [PORT_NAME]
    metrics = children["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert [m["pods"]["metric"]["name"] for m in metrics] != [HpaMetric.QUEUED_PAIRS]


@pytest.mark.parametrize("front", [True, False])
def test_every_child_is_valid_kubernetes(front: bool) -> None:
    for child in render_children(make_cr({**BASE, "engine": "vllm", "vllm": {"front": front}})):
        if child["kind"] in CRD_KINDS:
            continue
        for version in VERSIONS:
            kubernetes_validate.validate(child, version, strict=True)


@pytest.mark.parametrize(
    "path",
    [("model", "instruction"), ("env", 0, "value"), ("vllm", "extraArgs", 0)],
    ids=lambda p: ".".join(map(str, p)),
)
def test_hostile_values_stay_data(path: tuple[str | int, ...]) -> None:
    def rendered(value: str) -> list[dict[str, Any]]:
        spec: dict[str, Any] = {
            **copy.deepcopy(BASE),
            "engine": "vllm",
            "env": [{"name": "USER_SETTING", "value": "v"}],
            "vllm": {"extraArgs": ["--seed=1"]},
        }
        node: Any = spec
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = f"--seed={value}" if path[0] == "vllm" else value
        return render_children(make_cr(spec))

    benign = rendered("benign")
    for hostile in HOSTILE:
        if "\x00" in hostile and path[0] == "vllm":
            continue  # an argument with NUL is refused (argv cannot carry it), never spliced
        got = rendered(hostile)
        assert shape(got) == shape(benign), (path, hostile)


def test_the_front_gets_what_the_bundled_server_gets_of_access_and_features() -> None:
    server = {
        "auth": {
            "apiKeysSecret": {"name": "rotating"},
            "jwt": {"jwks": {"configMapName": "jwks"}, "issuer": "https://issuer.example"},
            "rateLimit": {
                "requestsPerMinute": 300,
                "pairsPerMinute": 9000,
                "tokensPerMinute": 600000,
            },
        },
        "scoreCache": {"enabled": True},
        "playground": False,
        "longDocuments": "chunk",
    }
    spec = {**BASE, "server": server}
    ours = containers(kids("transformers", server=spec["server"]))[CONTAINER_NAME]
    theirs = containers(kids("vllm", server=spec["server"]))[CONTAINER_NAME]
    assert env_of(ours)[Env.RATE_LIMIT_TOKENS_PER_MINUTE] == "600000"
    skip = {Env.DEVICE, Env.ENGINE_URL}  # the front's own
    assert {k: v for k, v in env_of(theirs).items() if k not in skip} == {
        k: v for k, v in env_of(ours).items() if k not in skip
    }
    front_mounts = {m["name"]: m["mountPath"] for m in theirs["volumeMounts"]}
    assert {"api-keys", "jwks"} <= set(front_mounts)
    with pytest.raises(InvalidSpecError) as err:
        kids("vllm", front=False, server=spec["server"])
    assert "vllm.front" in str(err.value)


def test_vllms_probe_command_tells_up_from_down() -> None:
    """The rendered exec probe, run as the kubelet runs it (this machine's python3 standing for
    the image's), against a local /health: exit 0 on 200, non-zero on 503 and on no answer."""
    import http.server
    import subprocess
    import threading

    from reranker_devtools.ports import free_port

    vllm = containers(kids("vllm"))[VLLM_CONTAINER_NAME]
    command = vllm["livenessProbe"]["exec"]["command"]
    status = {"code": 200}

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(status["code"] if self.path == VLLM_HEALTH_PATH else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    here = f"http://127.0.0.1:{server.server_address[1]}{VLLM_HEALTH_PATH}"

    def probe(url: str) -> int:
        argv = [*command[:-1], url]  # the rendered command, this machine's port
        return subprocess.run(argv, capture_output=True, timeout=30).returncode

    try:
        assert command[-1].endswith(f":{VLLM_FRONTED_PORT}{VLLM_HEALTH_PATH}")
        assert probe(here) == 0
        status["code"] = 503
        assert probe(here) != 0
    finally:
        server.shutdown()
    assert probe(f"http://127.0.0.1:{free_port()}{VLLM_HEALTH_PATH}") != 0
