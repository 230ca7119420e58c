"""checkov (PyPI, a Kubernetes policy scanner; built by `make checkov-venv`) over manifest files.

checkov lives in a venv of its own (build/checkov-venv, from constraints/checkov-lock.txt): it
pins many packages of its own. It runs offline (`--skip-download`: no Prisma Cloud look-ups).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reranker_devtools import REPO, peers

VENV = Path(os.environ.get("RERANKER_CHECKOV_VENV", REPO / "build" / "checkov-venv"))


@dataclass(frozen=True)
class Finding:
    """One failed check on one resource (`resource` is checkov's id: Kind.namespace.name)."""

    check_id: str
    check_name: str
    resource: str
    file: str

    def __str__(self) -> str:
        return f"{self.check_id} ({self.check_name}) on {self.resource} in {self.file}"


def executable() -> Path:
    """The venv's checkov; peers.PeerUnavailable when `make checkov-venv` never finished."""
    return peers.venv_python(VENV, "checkov-venv").with_name("checkov")


def scan(directory: Path, timeout_s: float = 300.0) -> tuple[list[Finding], dict[str, Any]]:
    """(every failed check, checkov's summary) of the Kubernetes manifests under `directory`."""
    done = subprocess.run(
        [
            str(executable()),
            "-d",
            str(directory),
            "--framework",
            "kubernetes",
            "--quiet",
            "--compact",
            "-o",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        cwd=directory,
    )
    if done.returncode not in (0, 1):  # 1: some check failed
        raise RuntimeError(f"checkov exited {done.returncode}: {done.stderr[-2000:]}")
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    [report] = [r for r in reports if r.get("check_type") == "kubernetes"]
    if report["summary"].get("parsing_errors"):
        raise RuntimeError(f"checkov could not parse some files: {report['summary']}")
    findings = [
        Finding(c["check_id"], c["check_name"], c["resource"], c["file_path"].lstrip("/"))
        for c in report["results"]["failed_checks"]
    ]
    return findings, report["summary"]
