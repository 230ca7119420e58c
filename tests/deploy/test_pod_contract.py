"""The server pod the operator renders fits the server image: the init container downloads the
model where the server reads it, every env value is one the server accepts, the probes and the
port are the server's, and the image's user and cache path match the pod's."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from deploy_helpers import REPO, exec_form, final_env, parse_stages, wait_for

from reranker_contract import DEFAULT_INSTRUCTION, Env
from reranker_contract.score_check import SCORE_CHECK_PATH, CheckState, ScoreCheckEnv
from reranker_devtools.tiny_models import UNTRAINED_BUILTINS
from reranker_operator.api.spec import parse_spec
from reranker_operator.render.manifests import render_children
from reranker_server.cli import build_parser
from reranker_server.config import Settings, load_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def _services(path: Path) -> list[dict[str, Any]]:
    return [
        d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "RerankerService"
    ]


def _pod(cr: dict[str, Any]) -> dict[str, Any]:
    [deployment] = [c for c in render_children(cr) if c["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]


def _plain_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's literal env values (valueFrom entries come from Secrets at run time)."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _example_object(kind: str, name: str) -> dict[str, Any]:
    """A Secret or ConfigMap shipped beside the examples."""
    for path in sorted((REPO / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == kind and doc["metadata"]["name"] == name:
                return doc
    raise AssertionError(f"no example {kind} {name}")


def _object_data(obj: dict[str, Any]) -> dict[str, str]:
    """A Secret's or ConfigMap's keys and their text, as a volume shows them: a Secret's data
    base64-decoded with stringData over it (as the API server merges them); a ConfigMap's data
    as it is."""
    if obj["kind"] == "ConfigMap":
        return dict(obj.get("data") or {})
    decoded = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    return decoded | dict(obj.get("stringData") or {})


def _config_map(ref: dict[str, Any], children: list[dict[str, Any]]) -> dict[str, Any]:
    """The ConfigMap a volume mounts: rendered by the operator (the score probes), shipped beside
    the examples, or none yet for an optional one the operator writes at run time (the score
    record): the kubelet mounts an empty directory."""
    for child in children:
        if child["kind"] == "ConfigMap" and child["metadata"]["name"] == ref["name"]:
            return child
    try:
        return _example_object("ConfigMap", ref["name"])
    except AssertionError:
        if ref.get("optional"):
            return {"kind": "ConfigMap", "data": {}}
        raise


def _mounted_files(
    pod: dict[str, Any], container: dict[str, Any], root: Path, children: list[dict[str, Any]]
) -> dict[str, str]:
    """What the kubelet does for Secret and ConfigMap volumes: their keys as files, under
    `root` here; returns {mountPath: local directory}."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    places = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        sources = (volume.get("projected") or {}).get("sources") or [volume]
        objects = []
        for source in sources:
            if "secret" in source:
                name = source["secret"].get("secretName") or source["secret"]["name"]
                objects.append(_example_object("Secret", name))
            elif "configMap" in source:
                objects.append(_config_map(source["configMap"], children))
        if not objects:
            continue
        local = root / mount["name"]
        local.mkdir(parents=True)
        for obj in objects:
            for key, text in _object_data(obj).items():
                (local / key).write_text(text)
        places[mount["mountPath"]] = str(local)
    return places


def _local_env(
    pod: dict[str, Any], container: dict[str, Any], root: Path, children: list[dict[str, Any]]
) -> dict[str, str]:
    """The container's env (Secret refs resolved) with mounted Secret/ConfigMap paths moved to
    local copies (`children`: the rendered objects, whose ConfigMaps a volume may mount)."""
    places = _mounted_files(pod, container, root, children)
    env = {}
    for e in container["env"]:
        value = e["value"] if "value" in e else _secret_value(e["valueFrom"]["secretKeyRef"])
        for mount, local in places.items():
            if value == mount or value.startswith(mount + "/"):
                value = local + value[len(mount) :]
        env[e["name"]] = value
    return env


HUB_CACHE = """
import json
from huggingface_hub import constants
print(json.dumps(constants.HF_HUB_CACHE))
"""


def _hub_cache_under(env: dict[str, str]) -> str:
    """huggingface_hub's default cache directory for a process started with `env`."""
    done = subprocess.run(
        [sys.executable, "-c", HUB_CACHE],
        env={**env, "PATH": "/usr/bin:/bin"},
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _mounted(container: dict[str, Any], path: str) -> bool:
    return any(
        path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")
        for m in container.get("volumeMounts", [])
    )


@pytest.fixture(params=[p.name for p in EXAMPLES if _services(p)], ids=str)
def cr(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _services(REPO / "examples" / request.param)[0]


@pytest.fixture(
    params=[
        p.name
        for p in EXAMPLES
        if _services(p) and _services(p)[0]["spec"].get("engine", "transformers") == "transformers"
    ],
    ids=str,
)
def server_cr(request: pytest.FixtureRequest) -> dict[str, Any]:
    """An example our server runs (engine vllm: tests/vllm start vLLM from the rendered pod)."""
    return _services(REPO / "examples" / request.param)[0]


def test_init_container_downloads_where_the_server_reads(cr: dict[str, Any]) -> None:
    pod = _pod(cr)
    server = pod["containers"][0]
    settings = load_settings({}, env=_plain_env(server))
    read_from = settings.cache_dir or _hub_cache_under(_plain_env(server))
    assert _mounted(server, read_from), f"the server reads {read_from}, which is not a volume"
    inits = [c for c in pod.get("initContainers", []) if c["name"] == "model-download"]
    if not inits:  # a local model path: nothing is downloaded
        assert settings.model.startswith("/")
        return
    [init] = inits
    argv = init["command"] + init.get("args", [])
    assert argv[:2] == ["reranker-server", "download"]
    args = build_parser().parse_args(argv[1:])
    written_to = args.cache_dir or _hub_cache_under(_plain_env(init))
    assert written_to == read_from, (
        f"the init container downloads into {written_to}, the server reads {read_from}"
    )
    if server.get("command") == ["vllm", "serve"]:  # engine vllm: what `vllm serve` loads
        flags = dict(a.split("=", 1) for a in server["args"] if a.startswith("--") and "=" in a)
        assert (args.model, args.revision) == (flags["--model"], flags["--revision"])
    else:
        assert args.model == settings.model and args.revision == settings.revision
    volume_of = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
    server_volume_of = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    mount = next(p for p in volume_of if written_to.startswith(p))
    assert server_volume_of.get(mount) == volume_of[mount], (
        "init and server mount different volumes there"
    )


async def test_server_accepts_the_rendered_settings_and_serves_the_probes(
    server_cr: dict[str, Any],
    tmp_path: Path,
) -> None:
    """Probe paths answered by the real app (no model loaded: liveness 200, readiness 503)."""
    cr = server_cr
    import httpx

    from reranker_server.app import create_app

    pod = _pod(cr)
    server = pod["containers"][0]
    env = _local_env(pod, server, tmp_path, render_children(cr))
    settings = load_settings({}, env=env)  # raises ConfigError naming a bad value
    [port] = [p for p in server["ports"] if p["name"] == "http"]
    assert settings.port == port["containerPort"]
    app = create_app(settings)  # lifespan not started: the model never loads
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://pod"
    ) as client:
        assert (await client.get("/no-such-path")).status_code == 404
        answers = {}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = server[probe]["httpGet"]
            assert get["port"] in ("http", port["containerPort"])
            answers[probe] = (await client.get(get["path"])).status_code
    assert answers == {"startupProbe": 503, "readinessProbe": 503, "livenessProbe": 200}


def test_pod_user_and_cache_match_the_server_image(cr: dict[str, Any]) -> None:
    image = parse_stages((REPO / "Dockerfile.server").read_text())[-1]
    image_uid = int(image.values("USER")[-1].split(":")[0])
    pod = _pod(cr)
    assert pod["securityContext"]["runAsUser"] == image_uid
    assert pod["securityContext"]["fsGroup"] == image_uid  # the cache volume is writable by it
    server = pod["containers"][0]
    assert _plain_env(server)["HF_HOME"] == final_env(image)["HF_HOME"]
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert _mounted(server, "/tmp") and _mounted(server, final_env(image)["HF_HOME"])


# -- every setting the operator renders reaches a running server --------------------------------
ENV_FIELD = {str(f.metadata["env"]): f for f in dataclasses.fields(Settings)}
# What this machine changes in the rendered container: no hub (a tiny model of the same family,
# random weights: the score check without `relevance`), no GPU, a free port, cache directories
# under the test's temp dir.
MAPPED = {
    Env.MODEL_NAME,
    Env.DEVICE,
    Env.PORT,
    Env.HOST,
    Env.HF_HOME,
    Env.CACHE_DIR,
    ScoreCheckEnv.SCORE_CHECK_BUILTINS,
}


def _secret_value(ref: dict[str, str]) -> str:
    """A secretKeyRef resolved from the Secret manifests shipped beside the examples."""
    data = _object_data(_example_object("Secret", ref["name"]))
    assert ref["key"] in data, f"no key {ref['key']} in the example Secret {ref['name']}"
    return data[ref["key"]]


def _as_text(value: Any) -> str:
    """A setting as the env text that would give it (true/false for booleans)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _entrypoint() -> list[str]:
    image = parse_stages((REPO / "Dockerfile.server").read_text())[-1]
    return exec_form(image.values("ENTRYPOINT")[-1])


def test_every_rendered_setting_reaches_the_running_server(
    server_cr: dict[str, Any], tiny_qwen3_path: Path, tiny_cross_encoder_path: Path, tmp_path: Path
) -> None:
    """Start the real server from exactly the rendered container (entrypoint, args, env; only
    MAPPED changed) and read back through /info what it runs with."""
    cr = server_cr
    spec = parse_spec(cr["spec"])
    pod = _pod(cr)
    container = pod["containers"][0]
    env = _local_env(pod, container, tmp_path / "mounts", render_children(cr))
    unknown = set(env) - set(ENV_FIELD) - {Env.HF_HOME, Env.HF_HUB_OFFLINE}
    assert not unknown, f"rendered env the server never reads: {sorted(unknown)}"
    qwen = spec.model.family == "qwen3-causal" or (
        spec.model.family == "auto" and "qwen" in spec.model.name.lower()
    )
    port = free_port()
    mapped = {
        Env.MODEL_NAME: str(tiny_qwen3_path if qwen else tiny_cross_encoder_path),
        Env.DEVICE: "cpu",
        Env.PORT: str(port),
        Env.HOST: "127.0.0.1",
        Env.HF_HOME: str(tmp_path / "hf"),
        Env.CACHE_DIR: str(tmp_path / "hf"),
        ScoreCheckEnv.SCORE_CHECK_BUILTINS: UNTRAINED_BUILTINS,
    }
    assert set(mapped) == MAPPED
    [program, *entry_args] = _entrypoint()
    argv = [str(Path(sys.executable).with_name(program)), *entry_args]
    argv += container.get("command", [])[1:] + container.get("args", [])
    run_env = {"PATH": os.environ["PATH"], **env}
    run_env.update({str(k): v for k, v in mapped.items()})
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(argv, env=run_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        report = wait_for(lambda: _checked(base, proc), "the server's score check", timeout=180)
        # random weights may miss the resource's own probes' expectations (written for the real
        # model), nothing else; the rendered probes did reach the server
        own = {p["name"] for p in (cr["spec"].get("scoreCheck") or {}).get("probes") or ()}
        assert own <= {p["name"] for p in report["probes"]}, report["message"]
        missed = [c for c in report["checks"] if c["passed"] is False]
        assert all(c["kind"] == "probe" and c["name"] in own for c in missed), missed
        if not missed:
            wait_for(lambda: _ready(base, proc), "the server to be ready", timeout=10)
        keys = _client_keys(cr)  # with credentials required, /info shows settings to a client
        sent = {"Authorization": f"Bearer {keys[0]}"} if keys else {}
        info = httpx.get(f"{base}/info", headers=sent, timeout=10).json()
        body = {"query": "q", "documents": ["a", "b"]}
        if keys:  # every key of the mounted Secret scores; no key is refused
            for key in keys:
                answer = httpx.post(
                    f"{base}/v1/rerank",
                    json=body,
                    timeout=60,
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert answer.status_code == 200, answer.text
            assert httpx.post(f"{base}/v1/rerank", json=body, timeout=60).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    settings = info["settings"]
    for name, text in env.items():
        if name not in ENV_FIELD or name == Env.API_KEY:
            continue
        value, want = settings[ENV_FIELD[name].name], mapped.get(name, text)
        if isinstance(value, bool):  # on/off, 1/0, yes/no: as the server reads the env
            want = _as_text(want.strip().lower() in ("1", "true", "yes", "on"))
        got = _as_text(value)
        assert got.lower() == want.lower(), f"{name}={want!r} arrived as {got!r}"
    # and in the resource's own terms
    assert info["model"] == (spec.model.served_name or spec.model.name)
    auth = spec.server.auth
    assert info["auth_required"] is (
        spec.server.api_key_secret is not None
        or auth.api_keys_secret is not None
        or auth.jwt is not None
    )
    assert info["limits"] == {
        "max_client_batch_size": spec.server.max_client_batch_size,
        "max_batch_size": spec.server.max_batch_size,
        "max_batch_tokens": spec.server.max_batch_tokens,
        "max_concurrent_requests": spec.server.max_concurrent_requests,
        "score_cache_size": spec.server.score_cache.entries(),
    }
    if spec.model.dtype != "auto":
        assert info["dtype"] == spec.model.dtype
    if spec.model.family != "auto":
        assert info["family"] == spec.model.family
    if spec.model.max_length is not None:
        assert info["max_length"] <= spec.model.max_length
    if info["family"] == "qwen3-causal":
        assert info["default_instruction"] == (spec.model.instruction or DEFAULT_INSTRUCTION)
    assert settings["log_level"] == spec.server.log_level


def _client_keys(cr: dict[str, Any]) -> list[str]:
    """The API keys a client of this example may send (from the example Secrets)."""
    server = cr["spec"].get("server") or {}
    keys = []
    if "apiKeySecret" in server:
        keys.append(_secret_value(server["apiKeySecret"]))
    mounted = ((server.get("auth") or {}).get("apiKeysSecret") or {}).get("name")
    if mounted:
        for text in _object_data(_example_object("Secret", mounted)).values():
            keys += [line.strip() for line in text.splitlines() if line.strip()]
    return keys


def _checked(base: str, proc: subprocess.Popen) -> dict[str, Any] | None:
    """The server's score-check report once the check ran, else None."""
    if proc.poll() is not None:
        raise AssertionError(f"the server exited with {proc.returncode}")
    try:
        report = httpx.get(f"{base}{SCORE_CHECK_PATH}", timeout=2).json()
    except httpx.HTTPError:
        return None
    return report if report["state"] != CheckState.PENDING else None


def _ready(base: str, proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"the server exited with {proc.returncode}")
    try:
        return httpx.get(f"{base}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
