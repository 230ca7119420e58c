"""A tiny run of bench/operator_scale.py (3 RerankerServices): it converges, stays quiet when
idle, recovers from an outage, and reports its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_operator_scale_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "operator_scale.py"),
            "-n",
            "3",
            "--phases",
            "create,idle,change,outage",
            "--idle",
            "3",
            "--resync",
            "1",
            "--outage",
            "1",
            "--timeout",
            "60",
            "--poll",
            "0.2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    figures = {f["phase"]: f for f in json.loads(out.read_text())["figures"]}
    assert list(figures) == ["create", "idle", "change", "outage"]
    assert figures["create"]["notes"]["children"] == 24  # 8 each: the cache is per pod
    assert all(figures[p]["seconds"] is not None for p in ("create", "change", "outage"))
    assert figures["idle"]["requests"] > 0 and figures["idle"]["writes"] == 0
    assert "operator_scale: 3 RerankerServices x 8 children" in done.stdout
    assert "[create]" in done.stderr  # the progress line
