"""A real vLLM started from the operator's rendered `engine: vllm` Deployment.

The container's args and env are used as rendered, with only this machine's places swapped in:
the model path, the listen address and port, the score template (written from the rendered
ConfigMap), HF_HOME and /tmp. Where vLLM cannot start here, the test skips with vLLM's reason.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from reranker_contract import CONTAINER_NAME, MODEL_CACHE_PATH, Env
from reranker_contract.score_check import SCORE_CHECK_PATH, CheckState
from reranker_devtools import peers, vllm
from reranker_devtools.ports import free_port
from reranker_devtools.tiny_models import UNTRAINED_BUILTINS
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


def _rendered(
    cr: dict[str, Any], pick: Callable[[dict[str, Any]], bool]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The rendered container `pick` selects and the files of the rendered ConfigMaps it mounts
    (path -> text; a ConfigMap the operator does not render, such as the score record, is
    absent as in a pod before the operator writes it)."""
    children = render_children(cr)
    deployment = next(c for c in children if c["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if pick(c))
    maps = {c["metadata"]["name"]: c for c in children if c["kind"] == "ConfigMap"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    files = {}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        sources = [volume["configMap"]] if "configMap" in volume else []
        sources += [s["configMap"] for s in volume.get("projected", {}).get("sources", [])]
        for source in sources:
            data = maps.get(source["name"], {}).get("data", {})
            items = source.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                if item["key"] in data:
                    files[f"{mount['mountPath']}/{item['path']}"] = data[item["key"]]
    return container, files


def rendered_container(cr: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The rendered vLLM container (behind the front or bare) and the files it mounts."""
    return _rendered(cr, lambda c: c.get("command") == ["vllm", "serve"])


def rendered_front(cr: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The rendered front (our server in front of vLLM) and the files it mounts."""
    return _rendered(cr, lambda c: c["name"] == CONTAINER_NAME and "command" not in c)


def _swap(value: str, places: dict[str, str]) -> str:
    for old, new in places.items():
        if value == old or value.startswith(old + "/"):
            return new + value[len(old) :]
    return value


def _write_files(files: dict[str, str], places: dict[str, str]) -> None:
    for path, text in files.items():
        local = Path(_swap(path, places))
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text)


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
    _write_files(files, places)
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


def local_front_env(
    cr: dict[str, Any],
    model_dir: Path,
    work: Path,
    *,
    engine_url: str,
    port: int,
    secrets: dict[str, str],
) -> dict[str, str]:
    """The rendered front's env with this machine's places: the model, the cache and the
    mounted probe files under `work`, vLLM at `engine_url`, listening on 127.0.0.1:`port`, and
    each Secret reference's value from `secrets` (by Secret name)."""
    container, files = rendered_front(cr)
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    places = {
        LOCAL_MODEL: str(model_dir),
        MODEL_CACHE_PATH: str(work / "cache"),
        "/tmp": str(work / "tmp"),
        **{path: str(work / "mounts" / path.strip("/")) for path in mounts},
    }
    _write_files(files, places)
    env = {}
    for e in container["env"]:
        if "value" in e:
            value = e["value"]
            env[e["name"]] = (
                ",".join(_swap(v, places) for v in value.split(","))
                if (value.startswith("/"))
                else value
            )
        else:
            env[e["name"]] = secrets[e["valueFrom"]["secretKeyRef"]["name"]]
    assert env[Env.ENGINE_URL].startswith("http://127.0.0.1:"), env[Env.ENGINE_URL]
    env.update(
        {str(Env.ENGINE_URL): engine_url, str(Env.PORT): str(port), str(Env.HOST): "127.0.0.1"}
    )
    return env


@contextmanager
def rendered_front_server(
    cr: dict[str, Any],
    model_dir: Path,
    work: Path,
    *,
    engine_url: str,
    secrets: dict[str, str],
    extra_env: dict[str, str] | None = None,
) -> Iterator[peers.PeerServer]:
    """Our server started as the rendered front container runs it, in front of `engine_url`;
    up once its readiness probe's path answers."""
    container, _ = rendered_front(cr)
    port = free_port()
    env = local_front_env(cr, model_dir, work, engine_url=engine_url, port=port, secrets=secrets)
    env.update(extra_env or {})
    ready = container["readinessProbe"]["httpGet"]["path"]
    argv = [sys.executable, "-m", "reranker_server.cli", "serve"]
    with peers.start(
        argv,
        name="front",
        port=port,
        health_path=ready,
        log_path=work / "front.log",
        env=env,
        timeout_s=180,
    ) as server:
        yield server


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


def bundled_record(model_dir: Path, work: Path) -> Path:
    """The score record the operator writes (its own code) from a Ready pod of our bundled
    engine on `model_dir` (float32, max length 1024, the built-ins random weights pass)."""
    from reranker_operator.controller.score_gate import record_from
    from server_helpers import running_client, settings_for

    for client in running_client(settings_for(model_dir, max_sequence_length=1024)):
        report = client.get(SCORE_CHECK_PATH).json()
    assert report["state"] == CheckState.PASSED, report
    assert report["setup"]["engine"] == "transformers"
    path = work / "record.json"
    path.write_text(json.dumps(record_from(report, "bundled-0", "2026-12-03T00:00:00Z")))
    return path


def front_env(
    engine_url: str, model_dir: Path, served: str, port: int, record: Path | None = None
) -> dict[str, str]:
    """The env of our server in front of `engine_url` on 127.0.0.1:`port` (float32, max length
    1024, the built-ins random weights pass), with `record` as its mounted score record."""
    env = {
        "MODEL_NAME": str(model_dir),
        "SERVED_MODEL_NAME": served,
        "ENGINE_URL": engine_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MAX_SEQUENCE_LENGTH": "1024",
        "DTYPE": "float32",
        "SCORE_CHECK_BUILTINS": UNTRAINED_BUILTINS,
        "HF_HUB_OFFLINE": "1",
    }
    if record is not None:
        env["SCORE_RECORD_FILE"] = str(record)
    return env


FRONT_ARGV = [sys.executable, "-m", "reranker_server.cli", "serve"]


def front_report(
    engine_url: str, model_dir: Path, served: str, record: Path, log: Path, wait_s: float = 240.0
) -> tuple[int, dict[str, Any]]:
    """Our server in front of `engine_url` with `record` as its mounted score record; once its
    check has an outcome: (/ready's status, the report)."""
    port = free_port()
    env = front_env(engine_url, model_dir, served, port, record)
    # up once /healthz answers (liveness): /ready waits for the check, which may fail
    with peers.start(
        FRONT_ARGV,
        name="front",
        port=port,
        health_path="/healthz",
        log_path=log,
        env=env,
        timeout_s=180,
    ) as server:
        deadline = time.monotonic() + wait_s
        report: dict[str, Any] = {}
        while time.monotonic() < deadline:
            report = httpx.get(f"{server.base_url}{SCORE_CHECK_PATH}", timeout=30).json()
            if report["state"] in (CheckState.PASSED, CheckState.FAILED):
                return httpx.get(f"{server.base_url}/ready", timeout=30).status_code, report
            time.sleep(0.5)
    raise AssertionError(f"the front's check never finished: {report}")


def qwen3_spec(served: str, **model: Any) -> dict[str, Any]:
    """The spec of a Qwen3 yes/no reranker on engine vllm, at LOCAL_MODEL (float32, max length
    1024 unless `model` says otherwise)."""
    return {
        "model": {
            "name": LOCAL_MODEL,
            "servedName": served,
            "family": "qwen3-causal",
            "dtype": "float32",
            "maxLength": 1024,
            **model,
        },
        "engine": "vllm",
        "resources": {"gpus": 1},
    }
