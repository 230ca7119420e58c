"""`make demo` end to end: emulated API + real operator + kubectl + real server on a tiny model."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="the demo needs kubectl")


def test_demo_runs_end_to_end() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "reranker_devtools.demo"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    # the operator created the children and kubectl saw them
    assert "rerankerservice.rerankers.io/qwen3-reranker-0-6b created" in text
    assert "deployment.apps/qwen3-reranker-0-6b" in text
    assert "horizontalpodautoscaler.autoscaling/qwen3-reranker-0-6b" in text
    # the status followed the simulated rollout
    for reason in ("ModelDownloading", "DeploymentProgressing", "Available"):
        assert reason in text
    assert "http://qwen3-reranker-0-6b.default.svc.cluster.local:8080  1/1" in text
    # the real server ranked the README's documents: top_n=3 lines, each with a score
    ranked = [line for line in text.splitlines() if line.strip()[:3] in ("1. ", "2. ", "3. ")]
    assert len(ranked) == 3, text[-2000:]
    assert "family=qwen3-causal" in text
