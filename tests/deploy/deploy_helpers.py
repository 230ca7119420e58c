"""Small helpers for the deploy tests: Dockerfile stages and instructions, ENV/ARG pairs, the
kustomize build of deploy/, and polling."""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[2]
SECRET_NAME = re.compile(r"TOKEN|KEY|PASSWORD|PASSWD|SECRET|CREDENTIAL", re.IGNORECASE)
KUBECTL = shutil.which("kubectl")
T = TypeVar("T")


def kustomize_build() -> list[dict[str, Any]]:
    """The objects `kubectl kustomize deploy/` builds (skips the test without kubectl)."""
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    done = subprocess.run(
        [KUBECTL, "kustomize", str(REPO / "deploy")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def wait_for(probe: Callable[[], T], what: str, timeout: float = 30.0, every: float = 0.05) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Stage:
    """One FROM ... [AS name] block: its base image (ARGs resolved) and its instructions."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, value)

    def values(self, instruction: str) -> list[str]:
        return [value for kind, value in self.instructions if kind == instruction]


def parse_stages(text: str) -> list[Stage]:
    """Split a Dockerfile into stages; global ARG defaults are substituted into FROM lines."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for item in parser.structure:
        kind, value = item["instruction"], item["value"]
        if kind == "COMMENT":
            continue
        if kind == "FROM":
            words = value.split()
            words = [w for w in words if not w.startswith("--")]
            base = re.sub(
                r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), words[0]
            )
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(base=base, name=name))
        elif not stages:
            if kind == "ARG":
                global_args.update(assignments(value))
        else:
            stages[-1].instructions.append((kind, value))
    return stages


def assignments(value: str) -> dict[str, str]:
    """`A=1 B="x y"` (ENV/ARG/LABEL) -> {"A": "1", "B": "x y"}; a bare `ARG NAME` maps to ""."""
    words = shlex.split(value.replace("\\\n", " "))
    if len(words) >= 2 and "=" not in words[0]:  # legacy `ENV NAME value`
        return {words[0]: " ".join(words[1:])}
    out: dict[str, str] = {}
    for word in words:
        name, _, val = word.partition("=")
        out[name] = val
    return out


def baked_secrets(stages: list[Stage]) -> list[str]:
    """ENV/ARG names that look like credentials and carry a value (a bare `ARG X_TOKEN` is fine)."""
    found = []
    for stage in stages:
        for kind, value in stage.instructions:
            if kind in ("ENV", "ARG"):
                for name, val in assignments(value).items():
                    if SECRET_NAME.search(name) and val:
                        found.append(f"{kind} {name}")
    return found


def exec_form(value: str) -> list[str]:
    """The JSON (exec) form of ENTRYPOINT/CMD; raises ValueError for the shell form."""
    parsed = json.loads(value)
    if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
        raise ValueError(f"not an exec-form list: {value!r}")
    return parsed


def final_env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in stage.values("ENV"):
        env.update(assignments(value))
    return env
