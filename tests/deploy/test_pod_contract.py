"""The server pod the operator renders fits the server image: the init container downloads the
model where the server reads it, every env value is one the server accepts, the probes and the
port are the server's, and the image's user and cache path match the pod's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import REPO, final_env, parse_stages
from reranker_operator.render import render_children
from reranker_server.cli import build_parser
from reranker_server.config import load_settings

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
    assert args.model == settings.model and args.revision == settings.revision
    volume_of = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
    server_volume_of = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    mount = next(p for p in volume_of if written_to.startswith(p))
    assert server_volume_of.get(mount) == volume_of[mount], (
        "init and server mount different volumes there"
    )


async def test_server_accepts_the_rendered_settings_and_serves_the_probes(
    cr: dict[str, Any],
) -> None:
    """Probe paths answered by the real app (no model loaded: liveness 200, readiness 503)."""
    import httpx
    from reranker_server.app import create_app

    server = _pod(cr)["containers"][0]
    settings = load_settings({}, env=_plain_env(server))  # raises ConfigError naming a bad value
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
