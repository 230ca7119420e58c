"""A real vLLM started from the operator's rendered `engine: vllm` Deployment.

The container's args and env are used as rendered, with only this machine's places swapped in:
the model path, the listen address and port, the score template (written from the rendered
ConfigMap), HF_HOME and /tmp. Where vLLM cannot start here, the test skips with vLLM's reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from reranker_contract import MODEL_CACHE_PATH
from reranker_devtools import peers, vllm
from reranker_devtools.ports import free_port
from reranker_operator.engines.vllm.facts import VLLM_TEMPLATE_DIR
from reranker_operator.render.manifests import render_children

NAMESPACE = "ml"
LOCAL_MODEL = "/models/tiny"  # the spec's model.name: a path in the image, nothing to download
# vLLM's CPU attention needs head_dim 32, 64 or 128 (../shared/notes).
QWEN3_SHAPE = {
    "hidden_size": 256,
    "num_layers": 2,
    "num_heads": 4,
    "num_kv_heads": 2,
    "head_dim": 64,
    "intermediate_size": 512,
}
CROSS_SHAPE = {"hidden_size": 256, "num_layers": 2, "num_heads": 4, "intermediate_size": 512}


def resource(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "rerankers.io/v1alpha1",
        "kind": "RerankerService",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}"},
        "spec": spec,
    }


def rendered_container(cr: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The rendered vLLM container and the files of the ConfigMaps it mounts (path -> text)."""
    children = render_children(cr)
    deployment = next(c for c in children if c["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    maps = {c["metadata"]["name"]: c for c in children if c["kind"] == "ConfigMap"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    files = {}
    for mount in container["volumeMounts"]:
        source = volumes[mount["name"]].get("configMap")
        if source:
            for key, text in maps[source["name"]]["data"].items():
                files[f"{mount['mountPath']}/{key}"] = text
    return container, files


def _swap(value: str, places: dict[str, str]) -> str:
    for old, new in places.items():
        if value == old or value.startswith(old + "/"):
            return new + value[len(old) :]
    return value


def local_command(
    cr: dict[str, Any], model_dir: Path, work: Path, port: int
) -> tuple[list[str], dict[str, str]]:
    """The rendered `vllm serve` args and env with this machine's places."""
    container, files = rendered_container(cr)
    assert container["command"] == ["vllm", "serve"], container["command"]
    places = {
        LOCAL_MODEL: str(model_dir),
        MODEL_CACHE_PATH: str(work / "cache"),
        VLLM_TEMPLATE_DIR: str(work / "template"),
        "/tmp": str(work / "tmp"),
    }
    for path, text in files.items():
        local = Path(_swap(path, places))
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text)
    args = []
    for arg in container["args"]:
        flag, eq, value = arg.partition("=")
        if flag == "--host":
            value = "127.0.0.1"
        elif flag == "--port":
            value = str(port)
        elif flag == "--served-model-name":  # a name clients send, not a place
            args.append(arg)
            continue
        args.append(f"{flag}{eq}{_swap(value, places)}" if eq else arg)
    env = {e["name"]: _swap(e["value"], places) for e in container["env"] if "value" in e}
    return args, env


@contextmanager
def rendered_vllm(cr: dict[str, Any], model_dir: Path, work: Path) -> Iterator[peers.PeerServer]:
    """vLLM serving `model_dir` as the rendered Deployment would; skips where it cannot run."""
    port = free_port()
    args, env = local_command(cr, model_dir, work, port)
    try:
        with vllm.start(args, port=port, log_path=work / "vllm.log", env=env) as server:
            print(f"vLLM started in {server.started_in_s:.0f}s from the rendered args {args}")
            yield server
    except peers.PeerUnavailable as exc:
        pytest.skip(f"vLLM cannot run here: {exc}")


def rerank(
    base_url: str, model: str, query: str, documents: list[str], **extra: Any
) -> list[float]:
    """Scores in document order from a /v1/rerank answer."""
    body = {"model": model, "query": query, "documents": documents, **extra}
    answer = httpx.post(f"{base_url}/v1/rerank", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    scores = {r["index"]: r["relevance_score"] for r in answer.json()["results"]}
    return [scores[i] for i in range(len(documents))]


def our_scores(client: Any, query: str, documents: list[str], **extra: Any) -> list[float]:
    """Scores in document order from our server's /v1/rerank (a server_helpers client)."""
    answer = client.post("/v1/rerank", json={"query": query, "documents": documents, **extra})
    assert answer.status_code == 200, answer.text
    scores = {r["index"]: r["relevance_score"] for r in answer.json()["results"]}
    return [scores[i] for i in range(len(documents))]


@contextmanager
def our_server(model_dir: Path, **settings: Any) -> Iterator[Any]:
    """Our server on `model_dir` in-process (server_helpers' client), closed afterwards."""
    from server_helpers import running_client, settings_for

    clients = running_client(settings_for(model_dir, **settings))
    try:
        yield next(clients)
    finally:
        clients.close()


def metric_names(text: str) -> set[str]:
    """Every series name in a Prometheus text exposition."""
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M)}


QUERY = "how do rerankers order passages for retrieval augmented generation"
DOCUMENTS = [
    "A reranker scores each query and passage pair and sorts the passages by that score.",
    "The weather in Lisbon is mild in winter and warm in summer.",
    "Cross-encoders read the query and the document together in one forward pass.",
    "Kubernetes schedules pods onto nodes that have the requested GPUs.",
    "Retrieval augmented generation puts the best passages into the prompt of a language model.",
    'Unicode test: naïve café — 東京 — emoji 🙂 and a "quoted" \\ backslash.',
]
