"""Summaries, targets and the Markdown report of a benchmark run."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from cpu_info import cpu_label
from loadgen import LoadResult

AGREEMENT_TOLERANCE = 1e-3
# this server's pairs/s over vLLM's on the same load and dtype (issue 22 on the real 0.6B shape;
# 1.25 elsewhere, the first wave's target, above issue 22's 1.0 for the tiny loads)
VLLM_GOALS = {("qwen3-0.6b", ""): 1.25, ("qwen3-0.6b", "-bf16"): 1.5}


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in [0, 100]); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def ratio(a: float, b: float) -> float:
    """a / b, NaN when b is zero or NaN (a server that answered nothing)."""
    return a / b if b and not math.isnan(b) else float("nan")


def summarize(result: LoadResult, params: int, peak_gflops: float) -> dict:
    """Pairs/s, latency percentiles, the model GFLOP/s actually computed and that as a share of
    the matmul peak (model FLOPs utilisation), and the prompt tokens reused instead of computed."""
    wall = result.wall_s if result.wall_s > 0 else float("nan")
    gflops = result.flops / wall / 1e9
    return {
        "requests": result.completed,
        "errors": result.errors,
        "error_samples": result.error_samples,
        "pairs": result.pairs,
        "tokens": result.tokens,
        "wall_s": round(result.wall_s, 3),
        "pairs_per_s": result.pairs / wall,
        "p50_s": percentile(result.latencies_s, 50),
        "p95_s": percentile(result.latencies_s, 95),
        "model_gflops": gflops,
        "fraction_of_peak": gflops / peak_gflops,
        "reused_tokens_fraction": result.prefix_tokens_reused / result.tokens
        if result.tokens
        else 0.0,
    }


def compare_scores(reference: list[list[float]], other: list[list[float]]) -> dict:
    """Per request: same top-ranked index, and the largest absolute score difference."""
    top_match = []
    max_diff = 0.0
    for ref, oth in zip(reference, other, strict=True):
        top_ref = max(range(len(ref)), key=lambda i: ref[i])
        top_oth = max(range(len(oth)), key=lambda i: oth[i])
        # A different top index is only a mismatch if the two scores are not tied.
        tied = abs(ref[top_ref] - ref[top_oth]) <= AGREEMENT_TOLERANCE
        top_match.append(top_ref == top_oth or tied)
        diffs = [
            abs(a - b) if not (math.isnan(a) or math.isnan(b)) else math.inf
            for a, b in zip(ref, oth, strict=True)
        ]
        max_diff = max(max_diff, max(diffs))
    top3_changed = sum(
        1
        for ref, oth in zip(reference, other)
        if sorted(range(len(ref)), key=lambda i: -ref[i])[:3]
        != sorted(range(len(oth)), key=lambda i: -oth[i])[:3]
    )
    return {
        "requests": len(reference),
        "top_index_match": all(top_match),
        "max_abs_score_diff": max_diff,
        "top3_changed_share": top3_changed / len(reference) if reference else 0.0,
        "agree": all(top_match) and max_diff <= AGREEMENT_TOLERANCE,
    }


def targets(loads: dict) -> list[dict]:
    """PASS/FAIL of the benchmark's targets for the loads that ran."""
    out = []

    def add(name: str, measured: float, goal: str, ok: bool) -> None:
        out.append(
            {"target": name, "measured": measured, "goal": goal, "status": "PASS" if ok else "FAIL"}
        )

    if "qwen3" in loads:
        s = loads["qwen3"]["servers"]
        if "this" in s and "naive" in s:
            r = ratio(s["this"]["pairs_per_s"], s["naive"]["pairs_per_s"])
            add("qwen3 pairs/s this/naive", r, ">= 3.0", r >= 3.0)
            add(
                "qwen3 p95 this vs naive (s)",
                s["this"]["p95_s"],
                f"<= {s['naive']['p95_s']:.3f}",
                s["this"]["p95_s"] <= s["naive"]["p95_s"],
            )
    for load in ("qwen3", "qwen3-wide", "qwen3-0.6b"):
        s = loads.get(load, {}).get("servers", {})
        for suffix, vllm in itertools.product(("", "-bf16"), ("vllm", "vllm-allcores")):
            this, peer = s.get("this" + suffix), s.get(vllm + suffix)
            if this and peer:
                goal = VLLM_GOALS.get((load, suffix), 1.25)
                r = ratio(this["pairs_per_s"], peer["pairs_per_s"])
                add(f"{load} pairs/s this{suffix}/{vllm}{suffix}", r, f">= {goal}", r >= goal)
                add(
                    f"{load} p95 this{suffix} vs {vllm}{suffix} (s)",
                    this["p95_s"],
                    f"<= {peer['p95_s']:.3f}",
                    this["p95_s"] <= peer["p95_s"],
                )
    for load in ("qwen3", "qwen3-wide", "qwen3-0.6b"):  # issue 21: the front costs under 5%
        s = loads.get(load, {}).get("servers", {})
        for suffix in ("", "-bf16"):
            front, bare = s.get("front" + suffix), s.get("vllm" + suffix)
            if front and bare:
                r = ratio(front["pairs_per_s"], bare["pairs_per_s"])
                add(f"{load} pairs/s front{suffix}/vllm{suffix}", r, ">= 0.95", r >= 0.95)
                limit = 1.05 * bare["p95_s"]
                add(
                    f"{load} p95 front{suffix} vs vllm{suffix} (s)",
                    front["p95_s"],
                    f"<= {limit:.3f}",
                    front["p95_s"] <= limit,
                )
    this_bf16 = loads.get("qwen3-0.6b", {}).get("servers", {}).get("this-bf16")
    if this_bf16:  # issue 22: bf16 MFU on the real shape, against the bf16 peak
        mfu = this_bf16["fraction_of_peak"]
        add("qwen3-0.6b MFU this-bf16 (of the bf16 peak)", mfu, ">= 0.5", mfu >= 0.5)
    for load in ("cross", "cross-base"):
        s = loads.get(load, {}).get("servers", {})
        for base in ("naive", "st-naive"):
            if "this" in s and base in s:
                r = ratio(s["this"]["pairs_per_s"], s[base]["pairs_per_s"])
                add(f"{load} pairs/s this/{base}", r, ">= 1.5", r >= 1.5)
        for suffix in ("", "-bf16"):
            this, peer = s.get("this" + suffix), s.get("infinity" + suffix)
            if this and peer:
                r = ratio(this["pairs_per_s"], peer["pairs_per_s"])
                add(f"{load} pairs/s this{suffix}/infinity{suffix}", r, ">= 1.5", r >= 1.5)
    return out


def _fmt(value: float, digits: int = 2) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def versus_this(name: str, servers: dict) -> str:
    """The 'pairs/s vs this' cell: how many times a row's pairs/s this server's row of the same
    dtype makes ('this-bf16 is 1.24x'); on this server's bf16 row, its bf16 speed-up."""
    suffix = "-bf16" if name.endswith("-bf16") else ""
    if name == "this" + suffix:
        fp32 = servers.get("this")
        if suffix and fp32:
            return f"{_fmt(ratio(servers[name]['pairs_per_s'], fp32['pairs_per_s']))}x this"
        return "-"
    base = servers.get("this" + suffix)
    if base is None:
        return "-"
    return f"this{suffix} is {_fmt(ratio(base['pairs_per_s'], servers[name]['pairs_per_s']))}x"


def bf16_speedups(servers: dict) -> dict[str, float]:
    """pairs/s in bf16 over pairs/s in fp32, for every server that ran both."""
    out = {
        name: ratio(servers[f"{name}-bf16"]["pairs_per_s"], s["pairs_per_s"])
        for name, s in servers.items()
        if f"{name}-bf16" in servers
    }
    return {name: r for name, r in out.items() if math.isfinite(r) and r > 0}


def markdown(run: dict) -> str:
    """The human-readable report of one run (also printed)."""
    env = run["environment"]
    cpu = cpu_label(env)
    peaks = "; ".join(
        f"{dtype} {p['peak_gflops']:.1f} GFLOP/s (per size {p['per_size_gflops']}; before "
        f"{p['before_gflops']:.1f}, after {p['after_gflops']:.1f})"
        for dtype, p in run["peaks"].items()
    )
    lines = [
        f"# Reranker benchmark ({run['timestamp']})",
        "",
        f"**CPU: {cpu}.** Every figure below was measured on it.",
        "",
        (
            f"torch {env['torch']} ({env['torch_threads']} threads). Other processes used "
            f"{_fmt(100 * (env.get('background_cpu_fraction') or float('nan')), 1)}% of the "
            f"machine's CPU during the run (/proc/stat minus the benchmark's own process tree); "
            f"load average before/after: {env['loadavg_before']} / {env['loadavg_after']} (the "
            f"naive servers alone keep ~16 threads runnable); memory available at the start: "
            f"{env.get('mem_available_gib_before', 'n/a')} GiB."
        ),
        (
            "Matmul peaks (bench/peak.py, best of several square matmuls, the better of before "
            f"and after the loads): {peaks}. MFU is against the peak of the row's own dtype."
        ),
        f"Settings: {run['settings']}",
        "",
    ]
    for name, load in run["loads"].items():
        lines += [
            f"## Load `{name}`: {load['description']}",
            "",
            (
                f"Model: {load['model']} ({load['matmul_params'] / 1e6:.2f} M non-embedding params); "
                f"{load['concurrency']} clients, {load['docs_per_request']} docs per request; "
                f"measured on {cpu}."
            ),
            "",
            (
                "| server | requests | errors | pairs/s | p50 s | p95 s | model GFLOP/s | MFU % "
                "| prompt tokens reused % | pairs/s vs this | pairs/s per round |"
            ),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for server, s in load["servers"].items():
            lines.append(
                f"| {server} | {s['requests']} | {s['errors']} | {_fmt(s['pairs_per_s'], 1)} | "
                f"{_fmt(s['p50_s'])} | {_fmt(s['p95_s'])} | {_fmt(s['model_gflops'], 1)} | "
                f"{_fmt(100 * s['fraction_of_peak'], 1)} | "
                f"{_fmt(100 * s.get('reused_tokens_fraction', 0.0), 1)} | "
                f"{versus_this(server, load['servers'])} | "
                f"{', '.join(_fmt(x, 1) for x in s.get('rounds_pairs_per_s', []))} |"
            )
        lines.append("")
        for pair, agreement in load.get("agreement", {}).items():
            verdict = "AGREE" if agreement["agree"] else "DISAGREE"
            lines.append(
                f"- agreement {pair}: {verdict} on {agreement['requests']} requests "
                f"(top index match: {agreement['top_index_match']}, max |score diff| "
                f"{agreement['max_abs_score_diff']:.2e}, tolerance {AGREEMENT_TOLERANCE:g})"
            )
        speedups = bf16_speedups(load["servers"])
        if speedups:
            lines.append(
                "- bf16 speed-up (pairs/s of NAME-bf16 / NAME): "
                + ", ".join(f"{name} {_fmt(r)}x" for name, r in speedups.items())
            )
        for pair, cost in load.get("bf16_cost", {}).items():
            lines.append(
                f"- bf16 cost {pair}: max |score diff| {cost['max_abs_score_diff']:.2e} over "
                f"{cost['requests']} requests; top 3 changed in "
                f"{_fmt(100 * cost['top3_changed_share'], 0)}% of them"
            )
        for server, error in load.get("failed", {}).items():
            lines.append(f"- {server} FAILED: {error.splitlines()[0]}")
        for server, s in load["servers"].items():
            for sample in s["error_samples"]:
                lines.append(f"- {server} error: {sample}")
        lines.append("")
    if run["targets"]:
        lines += ["## Targets", "", "| target | measured | goal | result |", "|---|---:|---|---|"]
        for t in run["targets"]:
            lines.append(
                f"| {t['target']} | {_fmt(t['measured'], 3)} | {t['goal']} | {t['status']} |"
            )
        lines.append("")
    lines += [
        (
            "Model GFLOP/s = the model FLOPs a server actually computed / wall time: this server's "
            "own counter (reranker_model_flops_total: every forward's real tokens, from the "
            "architecture, with the prefix-cache and last-layer shortcuts taken into account); for "
            "the baselines the same estimate over all their tokens (plus the naive causal "
            "server's LM head at every position), less, for vLLM, the projections and MLPs of the "
            "prompt tokens its prefix cache served (vllm:prefix_cache_hits_total). MFU = that / "
            "the matmul peak of the row's dtype (fp32 or bf16) measured in the same run. Prompt "
            "tokens reused = tokens a server did not recompute (this server: "
            "reranker_prefix_tokens_saved_total; vLLM: its prefix-cache hits) / all prompt tokens. "
            "Padding is not counted as useful work. pairs/s = documents scored / wall time; "
            "latencies are per request, warm-up requests excluded."
        ),
        "",
    ]
    return "\n".join(lines)
