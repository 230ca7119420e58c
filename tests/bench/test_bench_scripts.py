"""The benchmark scripts run (so they cannot rot): the GPU run's CPU dry run end to end, its
SKIP without CUDA, and the report's comparisons on known numbers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_gpu_run_skips_without_cuda() -> None:
    done = _run()
    assert done.returncode == 0 and done.stdout.startswith("SKIP: no CUDA device"), done.stderr


def test_gpu_run_dry_run_on_the_cpu() -> None:
    done = _run("--dry-run")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for step in ("matmul peak", "half-precision vs fp32", "concurrency_1", "forced out of memory"):
        assert step in out, step
    assert out.rstrip().endswith("OK")


def test_report_compares_scores_and_ranks() -> None:
    import report

    same = report.compare_scores([[0.1, 0.9, 0.5]], [[0.1, 0.9, 0.5]])
    assert same["agree"] and same["top3_changed_share"] == 0.0
    swapped = report.compare_scores([[0.1, 0.9, 0.5, 0.4]], [[0.1, 0.9, 0.3, 0.4]])
    assert not swapped["agree"] and swapped["top3_changed_share"] == 1.0
    assert abs(swapped["max_abs_score_diff"] - 0.2) < 1e-12


def test_the_fronts_cost_targets_follow_issue_21() -> None:
    """front/vllm pairs/s >= 0.95 and p95 within 5% of bare vLLM's, per load and dtype."""
    import report

    def loads(front_pps: float, front_p95: float) -> dict:
        servers = {
            "vllm-bf16": {"pairs_per_s": 100.0, "p95_s": 2.0},
            "front-bf16": {"pairs_per_s": front_pps, "p95_s": front_p95},
        }
        return {"qwen3": {"servers": servers}}

    ok = {t["target"]: t["status"] for t in report.targets(loads(96.0, 2.09))}
    assert ok == {
        "qwen3 pairs/s front-bf16/vllm-bf16": "PASS",
        "qwen3 p95 front-bf16 vs vllm-bf16 (s)": "PASS",
    }
    slow = {t["target"]: t["status"] for t in report.targets(loads(94.0, 2.2))}
    assert set(slow.values()) == {"FAIL"}
