"""`--target-p95`: the load one replica sustains within a latency target, by ramping
concurrency, and the replicas and `spec.autoscaling` values a peak needs."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from reranker_operator.tools.loadtest.report import Summary

# The share of the p95 target a pod's queued pairs may take to drain before it scales out.
QUEUE_SHARE = 0.25

# Run one step at a concurrency and return its summary.
Step = Callable[[int], Summary]


@dataclass(frozen=True)
class Sizing:
    target_p95_s: float
    steps: list[dict[str, Any]]  # concurrency, p95, pairs/s, requests/s, rejected, within
    sustained: dict[str, Any] | None  # the best step within the target
    peak_pairs_per_s: float | None
    replicas: int | None
    autoscaling: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _within(summary: Summary, target: float) -> bool:
    p95 = summary.latency_s["p95"]
    return (
        summary.ok > 0
        and summary.failed == 0
        and summary.rejected == 0
        and (p95 is not None and p95 <= target)
    )


def _row(summary: Summary, target: float) -> dict[str, Any]:
    return {
        "concurrency": summary.concurrency,
        "p95_s": summary.latency_s["p95"],
        "pairs_per_s": summary.pairs_per_s,
        "requests_per_s": summary.requests_per_s,
        "rejected": summary.rejected,
        "failed": summary.failed,
        "within": _within(summary, target),
    }


def ramp(step: Step, target_p95_s: float, *, max_concurrency: int = 256) -> list[Summary]:
    """Concurrency 1, 2, 4, ... until a step misses the target (or the cap); then bisect
    between the last step within it and the first beyond. Every step is a bounded run."""
    if not target_p95_s > 0:
        raise ValueError("target_p95: must be > 0")
    runs: dict[int, Summary] = {}
    good, bad, c = 0, None, 1
    while c <= max_concurrency:
        runs[c] = step(c)
        if runs[c].interrupted:  # Ctrl-C: report what was measured so far
            return [runs[k] for k in sorted(runs)]
        if not _within(runs[c], target_p95_s):
            bad = c
            break
        good, c = c, c * 2
    while bad is not None and good and bad - good > 1:
        mid = (good + bad) // 2
        runs[mid] = step(mid)
        if runs[mid].interrupted:
            break
        good, bad = (mid, bad) if _within(runs[mid], target_p95_s) else (good, mid)
    return [runs[k] for k in sorted(runs)]


def size(
    steps: list[Summary],
    target_p95_s: float,
    peak_pairs_per_s: float | None,
) -> Sizing:
    """The sustained load (the best step within the target) and what a peak needs."""
    within = [s for s in steps if _within(s, target_p95_s)]
    best = max(within, key=lambda s: s.pairs_per_s, default=None)
    replicas = autoscaling = None
    if best is not None and peak_pairs_per_s:
        replicas = max(1, math.ceil(peak_pairs_per_s / best.pairs_per_s))
        autoscaling = {
            "enabled": True,
            "minReplicas": 1,
            "maxReplicas": replicas,
            # a queue drains at the sustained rate (Little's law): scale out once the pairs
            # waiting in a pod would take a quarter of the latency target to drain
            "queuedPairsPerPod": max(1, round(QUEUE_SHARE * target_p95_s * best.pairs_per_s)),
            "p95LatencySeconds": f"{target_p95_s:g}",
        }
    return Sizing(
        target_p95_s=target_p95_s,
        steps=[_row(s, target_p95_s) for s in steps],
        sustained=None if best is None else _row(best, target_p95_s),
        peak_pairs_per_s=peak_pairs_per_s,
        replicas=replicas,
        autoscaling=autoscaling,
    )


def render_text(sizing: Sizing) -> str:
    lines = [f"ramp to p95 <= {sizing.target_p95_s:g}s:"]
    for row in sizing.steps:
        p95 = "n/a" if row["p95_s"] is None else f"{row['p95_s']:.3f}s"
        mark = "within" if row["within"] else "beyond"
        lines.append(
            f"  concurrency {row['concurrency']:>4}: p95 {p95:>8}, "
            f"{row['pairs_per_s']:8.1f} pairs/s, {row['rejected']} x 429  {mark}"
        )
    if sizing.sustained is None:
        first = sizing.steps[0] if sizing.steps else None
        if first is not None and first["failed"] and not first["pairs_per_s"]:
            lines.append(
                f"no step met the target: the server did not answer "
                f"({first['failed']} failed requests at concurrency 1; see above)"
            )
        else:
            lines.append(
                "no step met the target: even one request at a time is slower; "
                "use a bigger GPU, fp16/bf16, or fewer documents per request"
            )
        return "\n".join(lines)
    s = sizing.sustained
    lines.append(
        f"one replica sustains {s['pairs_per_s']:.1f} pairs/s "
        f"({s['requests_per_s']:.2f} requests/s) at concurrency {s['concurrency']}"
    )
    if sizing.replicas is not None and sizing.autoscaling is not None:
        a = sizing.autoscaling
        lines += [
            f"a peak of {sizing.peak_pairs_per_s:g} pairs/s needs {sizing.replicas} replicas:",
            "  spec:",
            "    autoscaling:",
            "      enabled: true",
            f"      minReplicas: {a['minReplicas']}",
            f"      maxReplicas: {a['maxReplicas']}",
            f"      queuedPairsPerPod: {a['queuedPairsPerPod']}   # drain in {QUEUE_SHARE:g} x the p95 target",
            f'      p95LatencySeconds: "{a["p95LatencySeconds"]}"',
        ]
    return "\n".join(lines)
