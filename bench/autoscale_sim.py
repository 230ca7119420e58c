"""Which autoscaling target keeps p95 flat? A simulation of the HPA on a reranker's load curve.

    .venv/bin/python bench/autoscale_sim.py [--resource examples/qwen3-reranker-0.6b.yaml]
        [--pairs-per-replica N | (measured)] [--documents 32] [--png bench/results/autoscale.png]

The load follows the deployment guides' curve: 50 -> 80 -> 120 concurrent clients, then back
down (after 10 minutes at 50 that let each target settle) (closed loop, each client waits for its answer, thinks `--think-seconds`, sends again; every
request carries a lognormal number of pairs with mean `--documents`, clipped to 1-1000; one
phase carries twice larger requests). Each replica serves `--pairs-per-replica` pairs/s (by
default measured here: the real server on the tiny offline model under `reranker-operator
loadtest`), first-come first-served; a new replica serves after `--startup-seconds`. The Service
spreads requests at random over ready replicas.

The HPA follows its documented algorithm: every 15 s, desired = ceil(current x value / target)
per metric (skipped within the 10% tolerance), the largest over metrics, bounded by the
stabilisation windows and the scale-up/scale-down policies of the rendered HPA (`--resource`:
minReplicas, maxReplicas and `behavior` come from the HPA the operator renders for it; defaults
otherwise), then by min/max. Three targets side by side:

- cpu: 70% CPU utilisation. A GPU pod's CPU is mostly idle while its GPU is saturated: the model
  assumes a saturated pod uses `--cpu-at-saturation` of its CPU request (0.45) on tokenisation
  and the HTTP layer, plus 5% idle;
- rps: requests per second per pod, as Prometheus Adapter's 2-minute rate gives it, target
  `--rps-target` (default 80% of what one replica sustains: the loadtest's advice);
- queued: pairs queued per pod (the server's queued-pairs gauge averaged over a minute, as the
  shipped adapter rule reads it), target `--queued-target`
  (default: the target whose run costs the same replica-hours as the rps run, found by
  bisection, so the comparison is at equal cost).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pyplot import pyplot  # noqa: E402
from reranker_contract import QUEUE_WINDOW_SECONDS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SYNC_S = 15.0
TOLERANCE = 0.1
DT = 0.05  # simulation step (s)
# (seconds, clients, documents-per-request multiplier); the first 10 minutes settle each target
# at 50 clients and are not shown. In the second 80-client phase the requests are twice as large (a
# batch job re-ranking long candidate lists beside interactive traffic): same requests/s, twice
# times the work.
WARMUP_S = 600
PHASES = ((WARMUP_S + 300, 50, 1), (300, 80, 1), (300, 120, 1), (300, 80, 2), (300, 50, 1))
DEFAULT_BEHAVIOR = {
    "scaleUp": {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15},
            {"type": "Pods", "value": 4, "periodSeconds": 15},
        ],
    },
    "scaleDown": {
        "stabilizationWindowSeconds": 300,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
    },
}


@dataclass
class Request:
    client: int
    pairs: float
    sent: float
    left: float = 0.0


@dataclass
class Replica:
    ready_at: float
    queue: deque = field(default_factory=deque)
    busy_s: float = 0.0  # seconds spent serving in the current sync window
    finished: deque = field(default_factory=deque)  # completion times (for the 2-minute rate)
    queue_samples: deque = field(default_factory=deque)  # (time, queued pairs), one per second

    def queued_pairs(self) -> float:
        return sum(r.left for r in self.queue)


@dataclass
class Hpa:
    """The HPA controller's state: recommendations for stabilisation, scale events for policies."""

    min_replicas: int
    max_replicas: int
    behavior: dict
    recommendations: deque = field(default_factory=deque)  # (time, desired)
    events: deque = field(default_factory=deque)  # (time, replicas before, replicas after)

    def _policy_limit(self, direction: str, current: int, now: float) -> int:
        rules = self.behavior.get(direction) or DEFAULT_BEHAVIOR[direction]
        policies = rules.get("policies") or DEFAULT_BEHAVIOR[direction]["policies"]
        select = rules.get("selectPolicy", "Max")
        if select == "Disabled":
            return current
        limits = []
        for p in policies:
            period = p["periodSeconds"]
            # replicas at the start of the period: undo the changes made within it
            start = current
            for t, before, _after in reversed(self.events):
                if now - t < period:
                    start = before
            if p["type"] == "Percent":
                change = (
                    math.ceil(start * p["value"] / 100)
                    if direction == "scaleUp"
                    else math.floor(start * p["value"] / 100)
                )
            else:
                change = p["value"]
            limits.append(start + change if direction == "scaleUp" else start - change)
        pick = max if (select == "Max") == (direction == "scaleUp") else min
        return pick(limits)

    def decide(self, current: int, desired: int, now: float) -> int:
        self.recommendations.append((now, desired))
        up = (self.behavior.get("scaleUp") or {}).get("stabilizationWindowSeconds", 0)
        down = (self.behavior.get("scaleDown") or {}).get("stabilizationWindowSeconds", 300)
        horizon = max(up, down)
        while self.recommendations and now - self.recommendations[0][0] > horizon:
            self.recommendations.popleft()
        if desired > current:
            window = [d for t, d in self.recommendations if now - t <= up]
            target = min(window + [desired])
            target = min(target, self._policy_limit("scaleUp", current, now))
        elif desired < current:
            window = [d for t, d in self.recommendations if now - t <= down]
            target = max(window + [desired])
            target = max(target, self._policy_limit("scaleDown", current, now))
        else:
            target = current
        target = max(self.min_replicas, min(self.max_replicas, target))
        if target != current:
            self.events.append((now, current, target))
            while self.events and now - self.events[0][0] > 1800:
                self.events.popleft()
        return target


@dataclass
class Strategy:
    name: str
    target: float
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (finish time, latency)
    timeline: list[tuple[float, int, int, float]] = field(default_factory=list)


def metric_value(
    kind: str, replicas: list[Replica], now: float, mu: float, cpu_at_saturation: float
) -> float:
    """The per-pod average the HPA reads for `kind` over the ready replicas."""
    ready = [r for r in replicas if r.ready_at <= now]
    if not ready:
        return 0.0
    if kind == "cpu":  # utilisation % of the CPU request
        return sum(
            100 * (0.05 + cpu_at_saturation * min(1.0, r.busy_s / SYNC_S)) for r in ready
        ) / len(ready)
    if kind == "rps":  # Prometheus Adapter: rate over 2 minutes
        for r in ready:
            while r.finished and now - r.finished[0] > 120:
                r.finished.popleft()
        return sum(len(r.finished) / 120.0 for r in ready) / len(ready)
    # queued pairs per pod, averaged over the adapter rule's window (avg_over_time [QUEUE_WINDOW])
    return sum(
        sum(q for _t, q in r.queue_samples) / max(1, len(r.queue_samples)) for r in ready
    ) / len(ready)


def simulate(
    kind: str,
    target: float,
    *,
    mu: float,
    documents: int,
    think_s: float,
    startup_s: float,
    hpa: Hpa,
    cpu_at_saturation: float,
    seed: int,
) -> Strategy:
    rng = random.Random(seed)
    out = Strategy(kind, target)
    replicas = [Replica(ready_at=0.0) for _ in range(hpa.min_replicas)]
    total = sum(p[0] for p in PHASES)
    clients_now, scale, phase_end, phase = PHASES[0][1], PHASES[0][2], PHASES[0][0], 0
    wake = [rng.uniform(0, think_s) for _ in range(max(p[1] for p in PHASES))]
    active = [False] * len(wake)
    t, next_sync, next_sample, next_gauge = 0.0, SYNC_S, WARMUP_S, 0.0  # one sample per 30 s
    while t < total:
        if t >= phase_end and phase + 1 < len(PHASES):
            phase += 1
            phase_end += PHASES[phase][0]
            clients_now, scale = PHASES[phase][1], PHASES[phase][2]
        ready = [r for r in replicas if r.ready_at <= t]
        for c in range(clients_now):  # clients whose think time is over send a request
            if not active[c] and wake[c] <= t and ready:
                # documents per request: lognormal around the mean (3 to 1000), times the phase's scale
                pairs = min(
                    1000.0,
                    max(1.0, round(rng.lognormvariate(math.log(documents) - 0.5, 1.0) * scale)),
                )
                rng.choice(ready).queue.append(Request(c, pairs, t, pairs))
                active[c] = True
        for r in ready:  # each ready replica serves mu pairs/s, first come first served
            budget = mu * DT
            if r.queue:
                r.busy_s += DT
            while budget > 0 and r.queue:
                head = r.queue[0]
                step = min(budget, head.left)
                head.left -= step
                budget -= step
                if head.left <= 1e-9:
                    r.queue.popleft()
                    done = t + DT - budget / mu
                    out.latencies.append((done, done - head.sent))
                    r.finished.append(done)
                    active[head.client] = False
                    wake[head.client] = done + think_s
        if t >= next_gauge:  # Prometheus scrapes the queued-pairs gauge every second
            for r in ready:
                r.queue_samples.append((t, r.queued_pairs()))
                while r.queue_samples and t - r.queue_samples[0][0] > QUEUE_WINDOW_SECONDS:
                    r.queue_samples.popleft()
            next_gauge += 1.0
        if t >= next_sync:
            value = metric_value(kind, replicas, t, mu, cpu_at_saturation)
            current = len(replicas)
            ratio = value / target if target > 0 else 0.0
            desired = current if abs(ratio - 1.0) <= TOLERANCE else math.ceil(current * ratio)
            new = hpa.decide(current, max(1, desired), t)
            if new > current:
                replicas += [Replica(ready_at=t + startup_s) for _ in range(new - current)]
            elif new < current:  # the newest go first; their queued requests drain elsewhere
                for r in replicas[new:]:
                    ready_now = [x for x in replicas[:new] if x.ready_at <= t] or replicas[:new]
                    for req in r.queue:
                        rng.choice(ready_now).queue.append(req)
                replicas = replicas[:new]
            for r in replicas:
                r.busy_s = 0.0
            next_sync += SYNC_S
        if t >= next_sample and t >= WARMUP_S:
            window = [lat for done, lat in out.latencies if t - done <= 30.0]
            p95 = sorted(window)[int(0.95 * (len(window) - 1))] if window else float("nan")
            out.timeline.append((t - WARMUP_S, clients_now, len(replicas), p95))
            next_sample += 30.0
        t += DT
    return out


def cost(run: Strategy) -> float:
    """Replica-hours of the shown part of a run."""
    return sum(rep for _t, _c, rep, _p in run.timeline) * 30 / 3600


def p95_of(run: Strategy) -> float:
    lats = sorted(lat for done, lat in run.latencies if done >= WARMUP_S)
    return lats[int(0.95 * (len(lats) - 1))] if lats else float("nan")


def worst_of(run: Strategy) -> float:
    return max((p for *_x, p in run.timeline if not math.isnan(p)), default=float("nan"))


def _measured_pairs_per_replica(documents: int) -> float:
    """One replica's pairs/s: the real server on the tiny model under the load test."""
    import io
    import json
    import os
    import socket
    import subprocess
    import tempfile
    import time
    import urllib.request

    from reranker_devtools.tiny_models import UNTRAINED_BUILTINS, build_tiny_model
    from reranker_operator import cli

    work = Path(tempfile.mkdtemp(prefix="autoscale-sim-"))
    model = build_tiny_model("qwen3", work / "model")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(
        os.environ,
        MODEL_NAME=str(model),
        DEVICE="cpu",
        PORT=str(port),
        HOST="127.0.0.1",
        LOG_LEVEL="warning",
        SCORE_CHECK_BUILTINS=UNTRAINED_BUILTINS,  # random weights: no relevance check
    )
    exe = str(Path(sys.executable).with_name("reranker-server"))
    proc = subprocess.Popen([exe], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                if (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1).status
                    == 200
                ):
                    break
            except OSError:
                time.sleep(0.2)
        out = io.StringIO()
        url = f"http://127.0.0.1:{port}"
        cli.main(
            ["loadtest", url, "-c", "8", "-n", "48", "--documents", str(documents), "--json"],
            stdout=out,
        )
        return float(json.loads(out.getvalue())["pairs_per_s"])
    finally:
        proc.terminate()
        proc.wait(30)


def _rendered_hpa(resource: Path) -> dict | None:
    import yaml

    from reranker_operator.render.manifests import render_children

    cr = next(
        d
        for d in yaml.safe_load_all(resource.read_text())
        if d and d.get("kind") == "RerankerService"
    )
    return next((c for c in render_children(cr) if c["kind"] == "HorizontalPodAutoscaler"), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--resource", type=Path, default=REPO / "examples" / "qwen3-reranker-0.6b.yaml"
    )
    parser.add_argument("--pairs-per-replica", type=float, help="skip the measurement")
    parser.add_argument("--documents", type=int, default=32)
    parser.add_argument("--think-seconds", type=float, default=1.0)
    parser.add_argument("--startup-seconds", type=float, default=90.0)
    parser.add_argument("--cpu-at-saturation", type=float, default=0.45)
    parser.add_argument(
        "--queued-target", type=float, help="pairs queued per pod (default: the rps run's cost)"
    )
    parser.add_argument(
        "--rps-target", type=float, help="requests/s per pod (default 0.8 mu / documents)"
    )
    parser.add_argument("--max-replicas", type=int, help="override the rendered maxReplicas")
    parser.add_argument("--png", type=Path, default=REPO / "bench" / "results" / "autoscale.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    mu = args.pairs_per_replica
    if mu is None:
        print("measuring one replica (the real server, tiny model, loadtest) ...", file=sys.stderr)
        mu = _measured_pairs_per_replica(args.documents)
    hpa_obj = _rendered_hpa(args.resource) if args.resource else None
    spec = (hpa_obj or {}).get("spec", {})
    behavior = spec.get("behavior") or DEFAULT_BEHAVIOR
    min_r = int(spec.get("minReplicas", 1))
    max_r = args.max_replicas or int(spec.get("maxReplicas", 10))
    rps_target = args.rps_target or 0.8 * mu / args.documents
    cpu_target = next(
        (
            float(m["resource"]["target"]["averageUtilization"])
            for m in spec.get("metrics", [])
            if m["type"] == "Resource" and m["resource"]["name"] == "cpu"
        ),
        70.0,
    )
    common = dict(
        mu=mu,
        documents=args.documents,
        think_s=args.think_seconds,
        startup_s=args.startup_seconds,
        cpu_at_saturation=args.cpu_at_saturation,
        seed=args.seed,
    )

    def run(kind: str, target: float) -> Strategy:
        return simulate(kind, target, hpa=Hpa(min_r, max_r, behavior), **common)

    print(
        f"one replica: {mu:.1f} pairs/s ({mu / args.documents:.2f} requests/s of "
        f"{args.documents} pairs); replicas {min_r}..{max_r}",
        file=sys.stderr,
    )
    runs = [run("cpu", cpu_target), run("rps", rps_target)]
    queued_target = args.queued_target
    if queued_target is None:  # equal cost: bisect the target on replica-hours
        want, lo, hi = cost(runs[1]), 1.0, 20.0 * mu
        for _ in range(14):
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if cost(run("queued", mid)) > want else (lo, mid)
        queued_target = math.sqrt(lo * hi)
    runs.append(run("queued", queued_target))
    print(
        f"targets: cpu {cpu_target:g}% of the request, rps {rps_target:.3g}/pod, "
        f"queued {queued_target:.3g} pairs/pod"
    )
    # every target value's cost and tail, for the trade-off picture
    sweep = {
        "rps": [(f, run("rps", f * mu / args.documents)) for f in (0.5, 0.65, 0.8, 1.0, 1.2)],
        "queued": [(f, run("queued", f * mu)) for f in (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5)],
    }
    print("\ntrade-off (target -> replica-hours, p95, worst 30-s p95):")
    for kind, points in sweep.items():
        for f, r in points:
            unit = "x sustained requests/s" if kind == "rps" else "x one replica's pairs/s queued"
            print(
                f"  {kind:>6} {f:5.2f} {unit:<30} {cost(r):5.1f} h  p95 {p95_of(r):6.2f} s  "
                f"worst {worst_of(r):6.2f} s"
            )
    header = f"{'t (s)':>6} {'clients':>7} | " + " | ".join(
        f"{r.name:>6} replicas  p95 s" for r in runs
    )
    print(header)
    for rows in zip(*(r.timeline for r in runs)):
        t, clients = rows[0][0], rows[0][1]
        cells = " | ".join(f"{rep:>15}  {p95:5.1f}" for _t, _c, rep, p95 in rows)
        print(f"{t:6.0f} {clients:7d} | {cells}")
    print("\nsummary (after the warm-up):")
    for r in runs:
        print(
            f"  {r.name:>6}: p95 {p95_of(r):6.2f} s, worst 30-s p95 {worst_of(r):6.2f} s, "
            f"{cost(r):5.1f} replica-hours"
        )
    _plot(runs, sweep, args.png)
    return 0


def _plot(runs: list[Strategy], sweep: dict, png: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig = plt.figure(figsize=(14, 8))
    grid = fig.add_gridspec(3, 2, width_ratios=(3, 2))
    ax1 = fig.add_subplot(grid[0, 0])
    ax2 = fig.add_subplot(grid[1, 0], sharex=ax1)
    ax3 = fig.add_subplot(grid[2, 0], sharex=ax1)
    ax4 = fig.add_subplot(grid[:, 1])
    colors = {"cpu": "tab:blue", "rps": "tab:orange", "queued": "tab:green"}
    for kind, points in sweep.items():
        ax4.plot(
            [cost(r) for _f, r in points],
            [worst_of(r) for _f, r in points],
            "o-",
            color=colors[kind],
            label=f"{kind} (one point per target value)",
        )
    ax4.plot([cost(runs[0])], [worst_of(runs[0])], "s", color=colors["cpu"], label="cpu 70%")
    ax4.set_xlabel("replica-hours (25 minutes shown)")
    ax4.set_ylabel("worst 30-s p95 latency (s)")
    ax4.set_yscale("log")
    ax4.set_title("cost vs tail, every target value")
    ax4.legend()
    for r in runs:
        ts = [t / 60 for t, *_ in r.timeline]
        ax1.plot(
            ts,
            [rep for _t, _c, rep, _p in r.timeline],
            label=r.name,
            drawstyle="steps-post",
            color=colors[r.name],
        )
        ax2.plot(ts, [p for *_x, p in r.timeline], label=r.name, color=colors[r.name])
    first = runs[0].timeline
    ax3.plot([t / 60 for t, *_ in first], [c for _t, c, *_ in first], color="black")
    ax1.set_ylabel("replicas")
    ax2.set_ylabel("p95 latency (s, 30-s window)")
    ax3.set_ylabel("clients")
    ax3.set_xlabel("minutes")
    ax1.legend(title="HPA target")
    ax1.set_title("Which target keeps p95 flat (simulated HPA, measured replica, equal cost)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"picture: {png}")


if __name__ == "__main__":
    raise SystemExit(main())
