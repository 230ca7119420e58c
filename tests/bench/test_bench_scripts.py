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


def test_gpu_run_dry_run_on_the_cpu(tmp_path: Path) -> None:
    done = _run("--dry-run", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for step in ("matmul peak", "half-precision vs fp32", "concurrency_1", "forced out of memory"):
        assert step in out, step
    assert out.rstrip().endswith("OK")
    # --out: the report of what ran, every model with the engine, compile and baseline rows
    import json

    (report_json,) = tmp_path.glob("gpu-*.json")
    run = json.loads(report_json.read_text())
    assert run["result"] == "OK" and set(run["models"]) == {"qwen3-0.6b", "bge-base"}
    assert {"this float32", "this bfloat16", "naive bfloat16"} <= set(run["models"]["bge-base"])
    assert "this bfloat16+compile" in run["models"]["qwen3-0.6b"]
    table = report_json.with_suffix(".md").read_text()
    assert (
        "| qwen3-0.6b | this bfloat16 | 2 |" in table and "| bge-base | naive bfloat16 |" in table
    )


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


def test_real_shape_loads_scale_down_unless_told() -> None:
    """The real-shape loads default to fewer clients and documents and a longer phase; what the
    command line gives explicitly wins; the tiny loads keep the global defaults."""
    import run

    args = run.parse_args(["--loads", "qwen3-0.6b,qwen3"])
    big = run.load_args(run.LOADS["qwen3-0.6b"], args)
    assert (big.concurrency, big.docs, big.warmup, big.duration) == (4, 8, 4, 180.0)
    tiny = run.load_args(run.LOADS["qwen3"], args)
    assert (tiny.concurrency, tiny.docs, tiny.warmup, tiny.duration) == (16, 32, 16, 60.0)
    told = run.load_args(run.LOADS["cross-base"], run.parse_args(["--docs", "12"]))
    assert (told.docs, told.concurrency) == (12, 4)
    assert run.LOADS["qwen3-0.6b"].shape["num_layers"] == 28
    assert "naive" not in run.LOADS["qwen3-0.6b"].servers


def test_mfu_is_against_the_peak_of_the_rows_dtype() -> None:
    """A bf16 row's MFU uses the bf16 peak, an fp32 row's the fp32 one."""
    import run

    loads = {
        "qwen3": {
            "servers": {
                "this": {"model_gflops": 100.0, "dtype": "float32"},
                "this-bf16": {"model_gflops": 150.0, "dtype": "bfloat16"},
            }
        }
    }
    run.apply_peaks(loads, {"float32": 200.0, "bfloat16": 600.0})
    servers = loads["qwen3"]["servers"]
    assert servers["this"]["fraction_of_peak"] == 0.5
    assert servers["this-bf16"]["fraction_of_peak"] == 0.25


def test_real_shape_targets_follow_issue_22() -> None:
    """0.6B shape: >= 1.25x vLLM in fp32, >= 1.5x in bf16, bf16 MFU >= 50% of the bf16 peak."""
    import report

    def row(pps: float, p95: float, mfu: float = 0.0) -> dict:
        return {"pairs_per_s": pps, "p95_s": p95, "fraction_of_peak": mfu}

    servers = {
        "this": row(13.0, 1.0),
        "vllm": row(10.0, 1.0),
        "this-bf16": row(14.0, 1.0, 0.55),
        "vllm-bf16": row(10.0, 1.0),
    }
    got = {t["target"]: t["status"] for t in report.targets({"qwen3-0.6b": {"servers": servers}})}
    assert got == {
        "qwen3-0.6b pairs/s this/vllm": "PASS",
        "qwen3-0.6b p95 this vs vllm (s)": "PASS",
        "qwen3-0.6b pairs/s this-bf16/vllm-bf16": "FAIL",  # 1.4x < 1.5x
        "qwen3-0.6b p95 this-bf16 vs vllm-bf16 (s)": "PASS",
        "qwen3-0.6b MFU this-bf16 (of the bf16 peak)": "PASS",
    }


def test_every_load_of_the_report_names_its_cpu() -> None:
    """The CPU model and its ISA are in the header and beside every load's table."""
    import report
    from cpu_info import MATMUL_ISA, cpu_environment, cpu_label

    env = {
        **cpu_environment(),
        "torch": "2.x",
        "torch_threads": 2,
        "loadavg_before": [0.0],
        "loadavg_after": [0.0],
    }
    assert set(env["isa"]) <= set(MATMUL_ISA)
    flags = next(
        (
            line
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        ),
        "",
    )
    assert ("avx512_bf16" in flags.split()) == ("avx512_bf16" in env["isa"])
    load = {
        "description": "d",
        "model": "m",
        "matmul_params": 1e6,
        "concurrency": 4,
        "docs_per_request": 8,
        "servers": {},
    }
    peak = {"peak_gflops": 1.0, "per_size_gflops": {}, "before_gflops": 1.0, "after_gflops": 1.0}
    text = report.markdown(
        {
            "timestamp": "t",
            "environment": env,
            "peaks": {"float32": peak, "bfloat16": peak},
            "settings": {},
            "loads": {"a": load, "b": load},
            "targets": [],
        }
    )
    assert text.count(cpu_label(env)) == 3  # the header and both loads


def test_slicing_bench_runs_both_modes_and_writes_its_report(tmp_path: Path) -> None:
    """bench/slicing.py end to end, small: a large request (more tokens than one batch) and
    small ones behind it, whole and sliced; the report names the CPU and has both rows."""
    import json

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    argv = ["--repeats", "1", "--small", "3", "--gap", "0.01", "--large-docs", "100"]
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "slicing.py"), *argv, "--workers", "1"]
        + ["--out-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [report] = tmp_path.glob("slicing-*.json")
    result = json.loads(report.read_text())
    assert result["cpu"] and result["large_prompt_tokens"] > 16384  # really larger than a batch
    assert [(r["model_workers"], r["mode"]) for r in result["rows"]] == [
        (1, "whole"),
        (1, "sliced"),
    ]
    assert all(r["small_p95_s"] > 0 and r["all_done_s"] > 0 for r in result["rows"])
    assert "CPU: " in (tmp_path / f"{report.stem}.md").read_text()


def test_vllms_work_leaves_out_what_its_prefix_cache_served() -> None:
    """The bench counts for vLLM every token less those its prefix cache served (their
    projections and MLPs, by hand below), and for this server its own counters."""
    from types import SimpleNamespace

    import run
    from loadgen import LoadResult
    from reranker_server.models.flops import FlopModel

    shape = {"hidden_size": 8, "num_attention_heads": 2, "head_dim": 4, "num_key_value_heads": 1}
    config = SimpleNamespace(
        **shape, intermediate_size=16, num_hidden_layers=3, model_type="qwen3", architectures=[]
    )
    flop_model = FlopModel.of(config)
    # per token and layer: q (8x8), k and v (8x4 each), o (8x8), gate/up/down (8x16 each)
    per_token = 3 * 2 * (8 * 8 + 2 * 8 * 4 + 8 * 8 + 3 * 8 * 16)
    vllm = LoadResult(tokens=1000, flops=5e6)
    run.account_work(
        vllm, {run.VLLM_HITS: 100.0}, {run.VLLM_HITS: 340.0}, flop_model
    )  # 240 prompt tokens served from its cache
    assert vllm.prefix_tokens_reused == 240 and vllm.flops == 5e6 - 240 * per_token
    ours = LoadResult(tokens=1000, flops=5e6)
    before = {run.FLOPS: 1e6, run.REUSED: 10.0}
    run.account_work(ours, before, {run.FLOPS: 3.5e6, run.REUSED: 410.0}, flop_model)
    assert ours.flops == 2.5e6 and ours.prefix_tokens_reused == 400
    other = LoadResult(tokens=1000, flops=5e6)  # a server that says nothing: the estimate
    run.account_work(other, {}, {}, flop_model)
    assert other.flops == 5e6 and other.prefix_tokens_reused == 0


def test_server_counters_read_vllms_prefix_cache_hits() -> None:
    """From a Prometheus exposition as vLLM writes it (per-engine labels summed)."""
    import http.server
    import threading

    import run

    text = (
        "# TYPE vllm:prefix_cache_hits_total counter\n"
        'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 1200.0\n'
        'vllm:prefix_cache_hits_total{engine="1",model_name="m"} 34.0\n'
        'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 5000.0\n'
    ).encode()

    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200 if self.path == "/metrics" else 404)
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        counters = run.server_counters(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
    assert counters == {run.VLLM_HITS: 1234.0}
    assert run.server_counters("http://127.0.0.1:9") == {}  # nothing listening
