"""Scale benchmark of the operator: N RerankerServices at once against the emulated API.

The real operator (`reranker-operator run`, a subprocess) against reranker_devtools.devcluster,
which also acts as the Deployment controller (`auto_rollout`: every new Deployment spec is
rolled out to ready). Phases, each timed and counted (API requests and writes the operator made):

  create   N RerankerServices at once: until every child exists, until every status is Ready
  idle     nothing changes for --idle seconds: requests and writes per minute
  change   every spec changes at once: until every child and status has converged
  faults   the same while the API fails --faults requests (500s on patches and lists)
  outage   every request refused for --outage seconds while every spec changes: converged how
           long after the API is back
  restart  the operator restarted while the API fails --faults requests: until converged

    .venv/bin/python bench/operator_scale.py                 # N=200, about two minutes
    .venv/bin/python bench/operator_scale.py -n 50 --phases create,idle --json out.json

A progress line runs on stderr; the figures are printed at the end.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reranker_devtools.devcluster import DEPLOYMENTS, RERANKERS, DevCluster
from reranker_operator.controller.kube import USER_AGENT
from reranker_operator.render.kinds import CHILD_KINDS
from reranker_operator.render.manifests import render_children

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "qwen3-reranker-0.6b.yaml"
NS = "default"
PHASES = ("create", "idle", "change", "faults", "outage", "restart")
WRITES = {"create", "update", "patch", "delete", "deletecollection"}
QUIET = 3.0  # seconds without an operator write that count as settled


@dataclass
class Figures:
    """One phase's result."""

    phase: str
    seconds: float | None  # until converged (None: not within --timeout)
    requests: int
    writes: int
    notes: dict[str, Any] = field(default_factory=dict)


def manifest(i: int) -> dict[str, Any]:
    """RerankerService number i: the Qwen3 example with every monitoring child on."""
    cr = yaml.safe_load(EXAMPLE.read_text())
    cr["metadata"] = {"name": f"rr-{i:04d}", "namespace": NS}
    cr["spec"]["metrics"] = {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    }
    return cr


class Bench:
    """The cluster, the operator process and the counters of one run."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.cluster = DevCluster().start()
        self.cluster.auto_rollout("ready")  # the Deployment controller: every new spec rolls out
        self.kubeconfig = self.cluster.write_kubeconfig(work / "kubeconfig", namespace=NS)
        self.operator: subprocess.Popen[bytes] | None = None
        self.names = [f"rr-{i:04d}" for i in range(args.n)]
        sample = render_children(
            dict(manifest(0), metadata={"name": "x", "namespace": NS, "uid": "u"})
        )
        self.kinds = [k for k in CHILD_KINDS if k.kind in {c["kind"] for c in sample}]
        self.revision = "main"
        self.last: dict[str, Any] = {}  # the latest progress figures

    # --- the operator process

    def start_operator(self) -> None:
        env = dict(
            os.environ,
            KUBECONFIG=str(self.kubeconfig),
            RERANKER_RESYNC_SECONDS=str(self.args.resync),
        )
        log = (self.args.log or self.work / "operator.log").open("ab")
        self.operator = subprocess.Popen(
            [sys.executable, "-m", "reranker_operator.cli", "run", "-n", NS, "--standalone"],
            env=env,
            cwd=self.work,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop_operator(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            self.operator.terminate()
            try:
                self.operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.operator.kill()
                self.operator.wait()
        self.operator = None

    def close(self) -> None:
        self.stop_operator()
        self.cluster.stop()

    # --- what the cluster holds

    def calls(self) -> int:
        return len(self.cluster.emulator.calls)

    def counted(self, since: int) -> tuple[int, int]:
        """(requests, writes) the operator made since call number `since`."""
        mine = self.mine(since)
        return len(mine), sum(1 for c in mine if c.verb in WRITES)

    def mine(self, since: int) -> list[Any]:
        return [
            c for c in self.cluster.emulator.calls[since:] if c.user_agent.startswith(USER_AGENT)
        ]

    def writes_by_kind(self, since: int) -> dict[str, int]:
        """The operator's writes since call number `since`, by "verb resource"."""
        return dict(
            collections.Counter(
                f"{c.verb} {c.resource}" for c in self.mine(since) if c.verb in WRITES
            ).most_common()
        )

    def children(self) -> int:
        """How many of the expected children exist."""

        def ours(obj: Mapping[str, Any]) -> bool:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            return labels.get("app.kubernetes.io/managed-by") == "reranker-operator"

        return sum(
            sum(self.cluster.each(f"{kind.api_version}/{kind.plural}", NS, ours))
            for kind in self.kinds
        )

    def statuses(self) -> list[tuple[bool, bool]]:
        """(Ready, converged) of every RerankerService: converged = the status describes the
        current generation and the rollout is complete."""

        def read(cr: Mapping[str, Any]) -> tuple[bool, bool]:
            status = cr.get("status") or {}
            conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
            ready = conds.get("Ready") == "True"
            current = status.get("observedGeneration") == cr["metadata"].get("generation")
            return ready, ready and current and conds.get("Progressing") == "False"

        return self.cluster.each(RERANKERS, NS, read)

    def deployments_at_revision(self) -> int:
        def revision(d: Mapping[str, Any]) -> bool:
            env = d["spec"]["template"]["spec"]["containers"][0].get("env") or []
            return any(
                e.get("name") == "MODEL_REVISION" and e.get("value") == self.revision for e in env
            )

        return sum(self.cluster.each(DEPLOYMENTS, NS, revision))

    # --- waiting

    def wait(
        self, phase: str, done: Callable[[], dict[str, Any] | None], started: float
    ) -> float | None:
        """Poll until `done` returns figures saying so; seconds, or None after --timeout."""
        deadline = started + self.args.timeout
        while time.monotonic() < deadline:
            state = done()
            elapsed = time.monotonic() - started
            progress(
                f"[{phase}] {elapsed:6.1f} s  "
                + "  ".join(f"{k} {v}" for k, v in (state or self.last).items())
            )
            if state is not None and state.get("done"):
                return round(elapsed, 1)
            if state is not None:
                self.last = state
            time.sleep(self.args.poll)
        return None

    def converged(self) -> dict[str, Any]:
        """Figures of the current state; done when every child and status has converged."""
        statuses = self.statuses()
        at_revision = self.deployments_at_revision()
        done = (
            len(statuses) == self.args.n
            and all(c for _r, c in statuses)
            and at_revision == self.args.n
        )
        return {
            "converged": f"{sum(c for _r, c in statuses)}/{self.args.n}",
            "deployments": f"{at_revision}/{self.args.n}",
            "done": done,
        }

    def change_every_spec(self) -> None:
        self.revision = f"r{int(time.time() * 1000) % 100000}"
        for name in self.names:
            self.cluster.patch(
                RERANKERS, NS, name, {"spec": {"model": {"revision": self.revision}}}
            )

    def inject_faults(self, count: int) -> None:
        """`count` API errors spread over the calls a pass makes."""
        share = max(1, count // 4)
        for verb, ref, sub in (
            ("patch", "apps/v1/deployments", None),
            ("list", "apps/v1/deployments", None),
            ("list", "v1/services", None),
            ("patch", "rerankers.io/v1alpha1/rerankerservices", "status"),
        ):
            self.cluster.fail(verb, ref, status=500, times=share, subresource=sub)

    # --- the phases

    def create(self) -> Figures:
        since, started = self.calls(), time.monotonic()
        for i in range(self.args.n):
            self.cluster.create(manifest(i))
        expected = self.args.n * len(self.kinds)

        def all_children() -> dict[str, Any]:
            have = self.children()
            return {"children": f"{have}/{expected}", "done": have >= expected}

        children_s = self.wait("create", all_children, started)

        def all_ready() -> dict[str, Any]:
            ready = sum(r for r, _c in self.statuses())
            return {"ready": f"{ready}/{self.args.n}", "done": ready == self.args.n}

        ready_s = self.wait("create", all_ready, started)
        requests, writes = self.counted(since)
        return Figures(
            "create",
            ready_s,
            requests,
            writes,
            {"every child (s)": children_s, "children": expected},
        )

    def settle(self) -> None:
        """Until converged and the operator has written nothing for QUIET seconds (queued
        Events of the last phase posted)."""
        self.wait("settle", self.converged, time.monotonic())
        started = time.monotonic()
        while time.monotonic() - started < self.args.timeout:
            since = self.calls()
            time.sleep(QUIET)
            _requests, writes = self.counted(since)
            progress(f"[settle] converged; {writes} writes in the last {QUIET:g} s")
            if not writes:
                return

    def idle(self) -> Figures:
        self.settle()
        since, started = self.calls(), time.monotonic()
        while (elapsed := time.monotonic() - started) < self.args.idle:
            requests, writes = self.counted(since)
            progress(f"[idle] {elapsed:6.1f} s  requests {requests}  writes {writes}")
            time.sleep(self.args.poll)
        requests, writes = self.counted(since)
        per_minute = 60.0 / self.args.idle
        notes: dict[str, Any] = {
            "window (s)": self.args.idle,
            "requests/min": round(requests * per_minute),
            "writes/min": round(writes * per_minute),
        }
        if writes:
            notes["writes"] = self.writes_by_kind(since)
        return Figures("idle", None, requests, writes, notes)

    def change(self, faults: int = 0) -> Figures:
        self.settle()
        since, started = self.calls(), time.monotonic()
        if faults:
            self.inject_faults(faults)
        self.change_every_spec()
        seconds = self.wait("faults" if faults else "change", self.converged, started)
        requests, writes = self.counted(since)
        return Figures(
            "faults" if faults else "change",
            seconds,
            requests,
            writes,
            {"injected errors": faults} if faults else {},
        )

    def outage(self) -> Figures:
        self.settle()
        since = self.calls()
        with self.cluster.outage():
            self.change_every_spec()
            until = time.monotonic() + self.args.outage
            while time.monotonic() < until:
                progress(f"[outage] API down, {until - time.monotonic():4.1f} s left")
                time.sleep(self.args.poll)
        started = time.monotonic()
        seconds = self.wait("outage", self.converged, started)
        requests, writes = self.counted(since)
        return Figures("outage", seconds, requests, writes, {"outage (s)": self.args.outage})

    def restart(self) -> Figures:
        self.settle()
        self.stop_operator()
        self.change_every_spec()
        self.inject_faults(self.args.faults)
        since, started = self.calls(), time.monotonic()
        self.start_operator()
        seconds = self.wait("restart", self.converged, started)
        requests, writes = self.counted(since)
        return Figures("restart", seconds, requests, writes, {"injected errors": self.args.faults})


def progress(line: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + line[:160])
    else:
        sys.stderr.write(line[:160] + "\n")
    sys.stderr.flush()


def report(args: argparse.Namespace, bench: Bench, figures: list[Figures]) -> str:
    kinds = ", ".join(k.kind for k in bench.kinds)
    lines = [
        (
            f"operator_scale: {args.n} RerankerServices x {len(bench.kinds)} children "
            f"({kinds}), resync {args.resync:g} s"
        )
    ]
    for f in figures:
        took = (
            "-"
            if f.phase == "idle"
            else (
                f"{f.seconds:.1f} s" if f.seconds is not None else f"not within {args.timeout:g} s"
            )
        )
        notes = ", ".join(f"{k} {v}" for k, v in f.notes.items())
        lines.append(
            f"  {f.phase:8s} converged {took:>10s}   requests {f.requests:6d}   "
            f"writes {f.writes:6d}   {notes}"
        )
    return "\n".join(lines)


@contextmanager
def bench_run(args: argparse.Namespace) -> Iterator[Bench]:
    with tempfile.TemporaryDirectory(prefix="operator-scale-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            bench.start_operator()
            yield bench
        finally:
            bench.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", type=int, default=200, help="RerankerServices (default 200)")
    parser.add_argument(
        "--resync",
        type=float,
        default=15.0,
        help="the operator's RERANKER_RESYNC_SECONDS (default 15)",
    )
    parser.add_argument("--idle", type=float, default=30.0, help="idle window, s (default 30)")
    parser.add_argument(
        "--faults",
        type=int,
        default=40,
        help="API errors injected in the faults and restart phases (default 40)",
    )
    parser.add_argument("--outage", type=float, default=10.0, help="outage length, s (10)")
    parser.add_argument(
        "--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}"
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="per phase, s (180)")
    parser.add_argument("--poll", type=float, default=0.5, help="poll interval, s (0.5)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--log", type=Path, help="keep the operator's log here")
    args = parser.parse_args(argv)
    args.phases = [p for p in args.phases.split(",") if p]
    unknown = set(args.phases) - set(PHASES)
    if unknown or "create" not in args.phases:
        parser.error(f"--phases must include create and name only {','.join(PHASES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the operator on the way out
    figures: list[Figures] = []
    with bench_run(args) as bench:
        runs: dict[str, Callable[[], Figures]] = {
            "create": bench.create,
            "idle": bench.idle,
            "change": bench.change,
            "faults": lambda: bench.change(args.faults),
            "outage": bench.outage,
            "restart": bench.restart,
        }
        for phase in PHASES:
            if phase in args.phases:
                figures.append(runs[phase]())
        progress("")
        text = report(args, bench, figures)
    print(("\n" if sys.stderr.isatty() else "") + text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": {
                        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                    },
                    "figures": [asdict(f) for f in figures],
                },
                indent=2,
            )
        )
    return 0 if all(f.seconds is not None or f.phase == "idle" for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
