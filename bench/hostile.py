"""Well-behaved clients' latency and the server's memory with and without hostile clients.

    .venv/bin/python bench/hostile.py                 # `make bench-hostile`, about five minutes
    .venv/bin/python bench/hostile.py --duration 4 --rounds 1 --slowloris 4   # a short run
    .venv/bin/python bench/hostile.py --per-client-limits   # only the second configuration
    .venv/bin/python bench/hostile.py --api-keys            # only the third
    .venv/bin/python bench/hostile.py --server-cpus 1 --client-cpus 0   # apart (2+ CPUs)

The real server (`reranker-server serve` in a subprocess, the default request timeout) on a tiny
random-weight Qwen3 reranker built offline, CPU, in three configurations, each on a server of its
own (`--configurations`):

- default: the default limits, no per-client ones; every client, well-behaved or hostile,
  reaches the server from 127.0.0.1, so they are all one client to it;
- per-client-limits: production behind an ingress. The server trusts 127.0.0.1 as its proxy
  (TRUSTED_PROXIES) and limits each client to `--limit-headroom` (3) x what one of the
  `--clients` well-behaved clients offers a minute, in requests and in pairs. Each well-behaved
  client sends its own X-Forwarded-For (10.0.0.1, 10.0.0.2, ...); each hostile client is one
  address (10.1.0.1, ...) that its requests carry as their LAST X-Forwarded-For line, after any
  the client sent, as an ingress appends the peer it saw: a spoofer's own lines name nobody;
- api-keys: the same, and API keys required (API_KEYS_FILE): each well-behaved client holds a key
  of its own, which names it to the limits; the spoofers hold none and guess (an address the
  server might believe is all a spoofer has, and where keys name the clients that leaves the
  address-keyed back-off on failed authentication); every other hostile client is a tenant with
  a key, and an allowance, of its own, so its bodies are read and its requests worked on.

First a calibration, on the default server: `--clients` closed-loop clients for `--calibrate`
seconds measure its capacity in requests/s. Then, per configuration, two runs, each `--duration`
seconds split into `--rounds` rounds taken in turn (clean, hostile, clean, ...) so a drift in
the machine's other load hits both alike, with the well-behaved load OPEN-LOOP at `--load` x
capacity (below saturation: a saturated server has no headroom to absorb anything, which is not
what issue 25 asks):

- clean: /v1/rerank requests of `--docs` short documents sent on a seeded Poisson schedule (the
  same schedule in a round's clean and hostile runs) whatever the answers; each latency runs
  from the scheduled send time, so a stalled server is not hidden (no coordinated omission);
- hostile: the same schedule while the hostile clients of bench/hostile_clients.py run in a
  process of their own at nice 19 (their own CPU must not crowd the server out of a small
  machine), paced: each request kind's clients at `--hostile-rate` attempts/s each, the big
  bodies written at most at `--hostile-mbps` MB/s together: 20 MB bodies, bodies just under
  MAX_REQUEST_BYTES, large requests abandoned after 50 ms, spoofed X-Forwarded-For, slowloris
  connections (open throughout) and malformed bodies.

With `--hostile-lead S`, the hostile clients start S seconds before each hostile round is
measured: the round sees an attack under way, its clients' per-client allowances drawn down to
their rates, rather than its start, where each has the minute's allowance it refilled while the
rounds without it ran.

With `--server-cpus` and `--client-cpus` (`taskset -c` lists), the server runs on CPUs of its
own and the clients (this process, the load generator and the hostile process) on others, as in
a cluster where the clients are other machines: their own CPU then takes nothing from the
server's, and what the hostile rounds cost is what the server did for the hostile clients.

With `--control`, each hostile round is followed by a control round: the well-behaved clients
alone, at the offered rate x the hostile round's server CPU / the clean round's (their load
raised until the server spends on them what it spent beside the hostile clients). Its p95
against the clean run's says what that much more CPU costs the well-behaved clients when it is
spent on clients of their own: if hostile/clean is no higher than control/clean, the hostile
clients cost no more than the work they got admitted.

Each p95 ratio comes with its 90% interval over resampled round pairs (`paired_rounds`): the
machine's speed drifts from round to round, so a ratio from a few rounds moves by tenths, and
the verdict says whether the whole interval is within the 1.2 target, beyond it, or spans it.

Per run: the well-behaved requests' offered and achieved rates (and their other answers, 429s
included), p50/p95 and pairs/s, the server's peak RSS (VmRSS every 100 ms) and RSS at the end,
its CPU seconds, the CPU other processes of the machine used and the steal (the hypervisor's
neighbours' share of this VM's vCPUs: a round with much of it ran on a slower machine), whether
/ready answered 200 at every poll (every 250 ms), and per hostile kind the answers it got with
its attempts/s and MB/s.
Exit status 1 if, in any configuration, any request got a 5xx, the server logged an error (a
500 to a client already gone is one) or /ready ever failed. Writes the configurations side by
side to bench/runs/hostile-<timestamp>.{json,md}; the servers' logs go to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import os
import random
import resource
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import httpx

import hostile_clients
import hostile_plot
import paired_rounds
from cpu_usage import machine_cpu_seconds

P95_TARGET = 1.20  # the well-behaved clients' p95 under attack / clean (issue 25)
WORDS = hostile_clients.WORDS
LIMIT_SETTINGS = (
    "max_request_bytes",
    "max_request_tokens",
    "max_queued_tokens",
    "max_client_batch_size",
    "max_concurrent_requests",
    "max_sequence_length",
    "header_timeout_seconds",
    "body_timeout_seconds",
    "request_timeout_seconds",
    "auth_failures_per_minute",
    "trusted_proxies",
    "rate_limit_requests_per_minute",
    "rate_limit_pairs_per_minute",
    "rate_limit_tokens_per_minute",
)


# --- the server process: memory, CPU, readiness ------------------------------------------------


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    """A `/proc/<pid>/status` figure in KiB (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def server_affinity(pid: int) -> str:
    """The CPUs the server's threads were allowed, together (`taskset -c` form)."""
    cpus: set[int] = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            cpus |= os.sched_getaffinity(int(tid))
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
    return cpu_list(cpus) or ""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (/proc/<pid>/stat), 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """VmRSS of a process every `interval_s`, on a thread of its own (the event loop's load
    cannot delay it)."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_kib(self.pid))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def poll_ready(url: str, stop: asyncio.Event, interval_s: float = 0.25) -> dict:
    """GET /ready every `interval_s` until `stop`: how many polls, which answers, the slowest."""
    answers: Counter[str] = Counter()
    slowest = 0.0
    async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:
        while not stop.is_set():
            sent = time.perf_counter()
            try:
                answers[str((await client.get("/ready")).status_code)] += 1
            except httpx.HTTPError as exc:
                answers[type(exc).__name__] += 1
            slowest = max(slowest, time.perf_counter() - sent)
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except TimeoutError:
                pass
    polls = sum(answers.values())
    return {
        "polls": polls,
        "answers": dict(answers),
        "always_200": polls > 0 and answers["200"] == polls,
        "slowest_s": round(slowest, 3),
    }


# --- the well-behaved clients -----------------------------------------------------------------


def well_behaved_bodies(docs: int, count: int = 32, seed: int = 0) -> list[dict]:
    """Seeded rerank bodies: a short query and `docs` documents of 10-30 words."""
    rng = random.Random(seed)

    def text(words: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(words))

    return [
        {"query": text(8), "documents": [text(rng.randint(10, 30)) for _ in range(docs)]}
        for _ in range(count)
    ]


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of `values`, None when empty."""
    return paired_rounds.percentile(values, q) if values else None


async def well_behaved(
    url: str, clients: int, docs: int, duration_s: float, headers: dict[str, str] | None = None
) -> dict:
    """`clients` closed-loop clients for `duration_s` (each request with `headers`): the
    latencies of their 200s, the prompt tokens the server reported for them, how many times each
    other answer came, the wall time."""
    bodies = well_behaved_bodies(docs)
    latencies: list[float] = []
    tokens: list[int] = []
    others: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120.0, limits=limits) as client:
        start = time.perf_counter()
        deadline = start + duration_s

        async def one(worker: int) -> None:
            i = worker
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    body = bodies[i % len(bodies)]
                    resp = await client.post("/v1/rerank", json=body, headers=headers)
                    status = str(resp.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                if status == "200":
                    latencies.append(time.perf_counter() - sent)
                    tokens.append(resp.json()["usage"]["prompt_tokens"])
                else:
                    others[status] += 1
                i += clients

        await asyncio.gather(*(one(w) for w in range(clients)))
        wall = time.perf_counter() - start
    return {
        "latencies_s": latencies,
        "tokens": tokens,
        "other_answers": dict(others),
        "wall_s": wall,
    }


def poisson_schedule(rate_rps: float, duration_s: float, seed: int) -> list[float]:
    """Send times (seconds from the start) of a seeded Poisson process of `rate_rps`."""
    rng = random.Random(seed)
    times, t = [], rng.expovariate(rate_rps)
    while t < duration_s:
        times.append(t)
        t += rng.expovariate(rate_rps)
    return times


async def open_loop(
    url: str,
    rate_rps: float,
    docs: int,
    duration_s: float,
    seed: int,
    client_headers: list[dict[str, str]] | None = None,
) -> dict:
    """Requests sent on a seeded Poisson schedule of `rate_rps` for `duration_s`, whatever the
    answers: the latencies of their 200s from the scheduled send time, how many times each other
    answer came, how late the sends themselves were, the schedule's length. With
    `client_headers` (one dict per client: its `X-Forwarded-For` as its ingress forwards it, its
    key), the requests are the clients' in turn, each with its client's headers."""
    bodies = well_behaved_bodies(docs)
    schedule = poisson_schedule(rate_rps, duration_s, seed)
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []  # (scheduled offset, latency) of each 200
    send_lags: list[float] = []
    others: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=120.0, limits=limits) as client:
        start = time.perf_counter()

        async def one(due: float, body: dict, headers: dict[str, str]) -> None:
            send_lags.append(time.perf_counter() - due)
            try:
                resp = await client.post("/v1/rerank", json=body, headers=headers)
                status = str(resp.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            if status == "200":
                latencies.append(time.perf_counter() - due)
                timeline.append((round(due - start, 4), round(latencies[-1], 4)))
            else:
                others[status] += 1

        tasks = []
        for i, offset in enumerate(schedule):
            due = start + offset
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            headers = client_headers[i % len(client_headers)] if client_headers else {}
            tasks.append(asyncio.ensure_future(one(due, bodies[i % len(bodies)], headers)))
        await asyncio.gather(*tasks)
    return {
        "latencies_s": latencies,
        "other_answers": dict(others),
        "wall_s": duration_s,
        "scheduled": len(schedule),
        "send_lags_s": send_lags,
        "timeline": sorted(timeline),
    }


# --- one round, and the runs made of them -------------------------------------------------------


def own_cpu_seconds() -> float:
    """CPU seconds of this process (the well-behaved clients, the pollers)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measured_round(
    url: str,
    pid: int,
    args: argparse.Namespace,
    hostile: subprocess.Popen | None,
    seed: int,
    client_headers: list[dict[str, str]] | None,
    rate_rps: float | None = None,
) -> dict:
    """One round: the well-behaved clients at `rate_rps` (default: the offered rate) beside the
    hostile process (already started, and waited for), the server's RSS and CPU, /ready, and
    the CPU the rest of the machine used."""
    stop = asyncio.Event()
    server0, own0, machine0 = cpu_seconds(pid), own_cpu_seconds(), machine_cpu_seconds()
    with RssSampler(pid) as rss:
        ready = asyncio.ensure_future(poll_ready(url, stop))
        rate = args.offered_rps if rate_rps is None else rate_rps
        duration = args.duration / args.rounds
        good = await open_loop(url, rate, args.docs, duration, seed, client_headers)
        if hostile is not None:
            await asyncio.to_thread(hostile.wait, args.duration + 120)
        await asyncio.sleep(args.settle)
        stop.set()
        readiness = await ready
    server_cpu = cpu_seconds(pid) - server0
    machine = machine_cpu_seconds()
    busy = steal = others = None
    if machine is not None and machine0 is not None:  # the hostile process's CPU is counted apart
        busy, steal = machine[0] - machine0[0], machine[1] - machine0[1]
        others = max(0.0, busy - server_cpu - (own_cpu_seconds() - own0))
    return {
        "good": good,
        "rss_kib": [s for s in rss.samples if s] or [0],
        "server_cpu_s": server_cpu,
        "machine_cpu_s": busy,
        "others_cpu_s": others,
        # CPU time the hypervisor gave this VM's vCPUs to its neighbours: a slower machine
        "steal_cpu_s": steal,
        "ready": readiness,
    }


def merged_run(rounds: list[dict], docs: int, hostile_cpu_s: float = 0.0) -> dict:
    """A run's figures over its rounds."""
    latencies = [x for r in rounds for x in r["good"]["latencies_s"]]
    others: Counter[str] = Counter()
    ready: Counter[str] = Counter()
    for r in rounds:
        others.update(r["good"]["other_answers"])
        ready.update(r["ready"]["answers"])
    wall = sum(r["good"]["wall_s"] for r in rounds)
    scheduled = sum(r["good"]["scheduled"] for r in rounds)
    lags = [x for r in rounds for x in r["good"]["send_lags_s"]]
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    other_cpu = [r["others_cpu_s"] for r in rounds]
    machine = [r["machine_cpu_s"] for r in rounds]
    steal = [r["steal_cpu_s"] for r in rounds]
    polls = sum(ready.values())
    return {
        "well_behaved": {
            "requests_scheduled": scheduled,
            "requests_ok": len(latencies),
            "other_answers": dict(others),
            "offered_rps": round(scheduled / wall, 2),
            "achieved_rps": round(len(latencies) / wall, 2),
            # how late the client sent, from its scheduled time (its own event loop's lag)
            "send_lag_p95_s": round(percentile(lags, 95) or 0.0, 4),
            "pairs_per_s": round(len(latencies) * docs / wall, 1),
            "p50_s": round(p50, 4) if p50 is not None else None,
            "p95_s": round(p95, 4) if p95 is not None else None,
            "wall_s": round(wall, 1),
            # a round that ran on a slower machine stands out here, and in each run alike
            "p95_s_per_round": [
                None if (q := percentile(r["good"]["latencies_s"], 95)) is None else round(q, 4)
                for r in rounds
            ],
            # per round: (scheduled offset s, latency s) of each 200, in schedule order
            "timelines": [r["good"]["timeline"] for r in rounds],
        },
        "server_rss_peak_mib": round(max(max(r["rss_kib"]) for r in rounds) / 1024, 1),
        "server_rss_first_round_peak_mib": round(max(rounds[0]["rss_kib"]) / 1024, 1),
        "server_rss_end_mib": round(rounds[-1]["rss_kib"][-1] / 1024, 1),
        "server_rss_samples": sum(len(r["rss_kib"]) for r in rounds),
        "server_cpu_s": round(sum(r["server_cpu_s"] for r in rounds), 1),
        "server_cpu_s_per_round": [round(r["server_cpu_s"], 1) for r in rounds],
        # the machine's busy CPU less the server, this process and the hostile process
        "other_processes_cpu_s": (
            None if None in other_cpu else round(max(0.0, sum(other_cpu) - hostile_cpu_s), 1)  # type: ignore[arg-type]
        ),
        "machine_cpu_s": None if None in machine else round(sum(machine), 1),  # type: ignore[arg-type]
        # the hypervisor's neighbours' share of this VM's vCPUs, per round and in all
        "steal_cpu_s": None if None in steal else round(sum(steal), 1),  # type: ignore[arg-type]
        "steal_cpu_s_per_round": None if None in steal else [round(x, 1) for x in steal],  # type: ignore[arg-type]
        "ready": {
            "polls": polls,
            "answers": dict(ready),
            "always_200": polls > 0 and ready["200"] == polls,
            "slowest_s": max(r["ready"]["slowest_s"] for r in rounds),
        },
    }


def run_hostile_process(
    url: str, args: argparse.Namespace, work: Path, n: int, clients: Clients
) -> subprocess.Popen:
    """Start the hostile clients for one round (each one address of `clients.hostile_network`,
    behind an ingress, and the tenants among them with their keys, when given); returns once
    they have started."""
    keys_file = work / "hostile-keys.json"
    if clients.hostile_keys is not None:
        keys_file.write_text(json.dumps(clients.hostile_keys))
    argv = [
        sys.executable,
        str(BENCH_DIR / "hostile_clients.py"),
        url,
        str(work / "settings.json"),
        str(work / f"hostile-{n}.json"),
        "--duration",
        str(args.duration / args.rounds + args.hostile_lead),
        "--slowloris",
        str(args.slowloris),
        "--only",
        ",".join(sorted(args.only)),
        "--rate",
        str(args.hostile_rate),
        "--mbps",
        str(args.hostile_mbps),
        *(("--forwarded-for", clients.hostile_network) if clients.hostile_network else ()),
        *(("--keys", str(keys_file)) if clients.hostile_keys is not None else ()),
    ]
    # a session of its own: its autogroup's priority is lowered too (hostile_clients.py)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "started" not in line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the hostile process did not start: {line!r}")
    return proc


def merged_hostile(parts: list[dict]) -> dict:
    """The hostile process's answers and CPU over the rounds."""
    answers: dict[str, Counter] = {}
    for part in parts:
        for kind, counts in part["answers"].items():
            answers.setdefault(kind, Counter()).update(counts)
    intensity = {
        kind: {
            "clients": figures["clients"],
            **{
                key: round(sum(p["intensity"][kind][key] for p in parts) / len(parts), 2)
                for key in ("attempts_per_s", "mb_per_s")
            },
        }
        for kind, figures in parts[0]["intensity"].items()
    }
    return {
        "answers": {k: dict(sorted(v.items())) for k, v in sorted(answers.items())},
        "intensity": intensity,
        "rate_per_client": parts[0]["rate_per_client"],
        "big_body_mbps_cap": parts[0]["big_body_mbps_cap"],
        "big_body_connection_mbps_cap": parts[0]["big_body_connection_mbps_cap"],
        "forwarded_for": parts[0]["forwarded_for"],
        "client_addresses": parts[0]["client_addresses"],
        "credentials": parts[0].get("credentials", {}),
        "nice": parts[0]["nice"],
        "autogroup": parts[0].get("autogroup"),
        "cpu_s": round(sum(p["cpu_s"] for p in parts), 1),
    }


def cpu_model() -> str:
    """lscpu's "Model name" (/proc/cpuinfo's where lscpu is missing)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in text.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    from cpu_info import cpu_name

    return cpu_name()


def server_log_errors(log_path: Path) -> dict[str, int]:
    """How many times each ERROR/CRITICAL line and each traceback's exception came in the
    server's log: a 500 answered to a client already gone is still one, though no client sees it."""
    found: Counter[str] = Counter()
    previous = ""
    for line in log_path.read_text(errors="replace").splitlines():
        if " ERROR " in line or " CRITICAL " in line:
            found[line.split(" ", 2)[-1][:120]] += 1
        elif previous.startswith("  ") and line and not line.startswith((" ", "Traceback")):
            found["exception: " + line.split(":", 1)[0][:120]] += 1
        previous = line
    return dict(found)


def p95_against(clean: dict, run: dict) -> float | None:
    """The well-behaved p95 of `run` / that of `clean` (None where either has none)."""
    p95_clean, p95_run = clean["well_behaved"]["p95_s"], run["well_behaved"]["p95_s"]
    return round(p95_run / p95_clean, 3) if p95_clean and p95_run else None


def p95_interval_against(clean: dict, run: dict) -> list[float] | None:
    """The 90% interval of `p95_against` over resampled round pairs (`paired_rounds`)."""

    def rounds(r: dict) -> list[list[float]]:
        return [[latency for _, latency in tl] for tl in r["well_behaved"]["timelines"]]

    interval = paired_rounds.p95_ratio_interval(rounds(clean), rounds(run))
    return list(interval) if interval is not None else None


def verdict(interval: list[float] | None) -> str:
    """What the interval says of the target: met, missed, or not told apart from it."""
    if interval is None:
        return "no interval (one round)"
    if interval[1] <= P95_TARGET:
        return "met: the whole interval is within it"
    if interval[0] > P95_TARGET:
        return "missed: the whole interval is beyond it"
    return f"undecided: the interval spans {P95_TARGET}"


def summarize(
    clean: dict, hostile: dict, hostile_proc: dict, log_errors: dict, control: dict | None = None
) -> dict:
    """The ratios and the checks (with `control`, its p95 and server CPU against the clean and
    the hostile runs')."""
    answers: Counter[str] = Counter()
    for per_kind in hostile_proc["answers"].values():
        answers.update(per_kind)
    codes = {k: v for k, v in answers.items() if k.isdigit()}
    good_5xx = sum(
        v
        for run in (clean, hostile)
        for k, v in run["well_behaved"]["other_answers"].items()
        if k.startswith("5")
    )
    p95_ratio = p95_against(clean, hostile)
    interval = p95_interval_against(clean, hostile)
    pairs_clean = clean["well_behaved"]["pairs_per_s"]
    classes = {c: sum(v for k, v in codes.items() if k[0] == c[0]) for c in ("2xx", "4xx", "5xx")}
    return {
        "p95_ratio": p95_ratio,
        "p95_within_target": p95_ratio is not None and p95_ratio <= P95_TARGET,
        # over resampled round pairs: how far the ratio moves with the machine's drift
        "p95_ratio_interval90": interval,
        "p95_target_verdict": verdict(interval),
        "pairs_per_s_ratio": (
            round(hostile["well_behaved"]["pairs_per_s"] / pairs_clean, 3) if pairs_clean else None
        ),
        # against the first clean round's peak: later clean rounds follow hostile ones
        "rss_peak_growth_mib": round(
            hostile["server_rss_peak_mib"] - clean["server_rss_first_round_peak_mib"], 1
        ),
        "hostile_answers": dict(sorted(answers.items())),
        "hostile_status_classes": classes,
        "server_errors": classes["5xx"] + good_5xx,
        "server_log_errors": log_errors,
        "ready_always_200": clean["ready"]["always_200"] and hostile["ready"]["always_200"],
        **(control_figures(clean, hostile, control) if control is not None else {}),
    }


def control_figures(clean: dict, hostile: dict, control: dict) -> dict:
    """The control run against the clean one (p95) and the hostile one (the server's CPU: how
    closely the raised well-behaved load matched what the hostile clients cost)."""
    return {
        "control_p95_ratio": p95_against(clean, control),
        "control_p95_ratio_interval90": p95_interval_against(clean, control),
        "control_offered_rps": control["well_behaved"]["offered_rps"],
        "control_server_cpu_vs_hostile": (
            round(control["server_cpu_s"] / hostile["server_cpu_s"], 3)
            if hostile["server_cpu_s"]
            else None
        ),
        "control_ready_always_200": control["ready"]["always_200"],
        "control_5xx": sum(
            v for k, v in control["well_behaved"]["other_answers"].items() if k.startswith("5")
        ),
    }


# --- the configurations -------------------------------------------------------------------------

DEFAULT, PER_CLIENT, API_KEYS = "default", "per-client-limits", "api-keys"
CONFIGURATIONS = (DEFAULT, PER_CLIENT, API_KEYS)
INGRESS = "127.0.0.1"  # the bench's own address: the trusted proxy of the per-client runs
WELL_BEHAVED_NETWORK = "10.0.0.0/16"  # each well-behaved client one address of it, in order
HOSTILE_NETWORK = "10.1.0.0/16"  # each hostile client one address of it, in order
# api-keys: the hostile kinds whose clients hold no key. A spoofer's attack is an identity the
# server might believe; where keys name the clients, what is left to it is the address-keyed
# back-off on failed authentication. Every other hostile client is a tenant with a key (and an
# allowance) of its own, so its bodies are read and its requests worked on.
OUTSIDER_KINDS = frozenset({"xff_spoofed"})


@dataclass(frozen=True)
class Clients:
    """Who the well-behaved and the hostile clients are to a configuration's server."""

    addresses: list[str] | None = None  # well-behaved: one X-Forwarded-For per client
    keys: list[str] | None = None  # well-behaved: one API key per client
    hostile_network: str | None = None  # each hostile client one address of it
    hostile_keys: dict[str, list[str]] | None = None  # per kind, its tenants' keys
    warm_up_key: str | None = None  # the bench's own, for warming up and reading /info

    def headers(self) -> list[dict[str, str]] | None:
        """Each well-behaved client's headers, None where they send none."""
        if self.addresses is None and self.keys is None:
            return None
        count = len(self.addresses or self.keys or [])
        return [
            {
                **({"X-Forwarded-For": self.addresses[i]} if self.addresses else {}),
                **({"Authorization": f"Bearer {self.keys[i]}"} if self.keys else {}),
            }
            for i in range(count)
        ]

    def own_headers(self) -> dict[str, str] | None:
        """The bench's own headers (warming up, reading /info), from 127.0.0.1 itself: a
        client of its own."""
        return {"Authorization": f"Bearer {self.warm_up_key}"} if self.warm_up_key else None


def well_behaved_addresses(clients: int) -> list[str]:
    network = ipaddress.ip_network(WELL_BEHAVED_NETWORK)
    return [str(network[i + 1]) for i in range(clients)]


def api_keys_clients(args: argparse.Namespace, keys_file: Path) -> Clients:
    """The api-keys configuration's clients, their keys written to `keys_file` (one a line, as
    API_KEYS_FILE reads them): one per well-behaved client, one per hostile tenant, the bench's
    own."""
    mix = hostile_clients.HostileMix(kinds=args.only, slowloris=args.slowloris)
    tenants = {
        kind: [f"tenant-{kind}-{i}-{secrets.token_hex(8)}" for i in range(n)]
        for kind, n in mix.clients_per_kind().items()
        if kind not in OUTSIDER_KINDS and kind != "slowloris"
    }
    keys = [f"client-{i}-{secrets.token_hex(8)}" for i in range(args.clients)]
    own = f"bench-{secrets.token_hex(8)}"
    every = [*keys, *(key for kind_keys in tenants.values() for key in kind_keys), own]
    keys_file.write_text("".join(f"{key}\n" for key in every))
    return Clients(well_behaved_addresses(args.clients), keys, HOSTILE_NETWORK, tenants, own)


def per_client_limits(calibration: dict, args: argparse.Namespace) -> dict:
    """Per-client limits `--limit-headroom` x what one well-behaved client offers a minute (the
    offered rate shared by `--clients` clients, `--docs` pairs a request)."""
    client_rpm = calibration["offered_rps"] / args.clients * 60
    requests = math.ceil(args.limit_headroom * client_rpm)
    return {
        "well_behaved_clients": args.clients,
        "client_offer_requests_per_minute": round(client_rpm, 1),
        "client_offer_pairs_per_minute": round(client_rpm * args.docs, 1),
        "headroom": args.limit_headroom,
        "requests_per_minute": requests,
        "pairs_per_minute": requests * args.docs,
        "client_offer_tokens_per_minute": round(client_rpm * calibration["tokens_per_request"]),
        "tokens_per_minute": math.ceil(
            args.limit_headroom * client_rpm * calibration["tokens_per_request"]
        ),
    }


def server_limits(url: str, work: Path, headers: dict[str, str] | None = None) -> dict:
    """The limits the server runs with (/info, read with `headers`: a key where the server wants
    one), its settings written for the hostile clients."""
    from reranker_contract import DEFAULTS

    info = httpx.get(url + "/info", headers=headers, timeout=30).json()
    (work / "settings.json").write_text(json.dumps(info["settings"]))
    limits = {k: info["settings"][k] for k in LIMIT_SETTINGS}
    limits["max_header_bytes"] = DEFAULTS.max_header_bytes
    print("limits in force: " + ", ".join(f"{k}={v}" for k, v in limits.items()), flush=True)
    return limits


def warm_up(url: str, args: argparse.Namespace, headers: dict[str, str] | None = None) -> None:
    asyncio.run(well_behaved(url, args.clients, args.docs, min(3.0, args.duration), headers))


def measured_configuration(
    name: str,
    url: str,
    pid: int,
    args: argparse.Namespace,
    work: Path,
    limits: dict,
    clients: Clients,
) -> dict:
    """One configuration's clean and hostile rounds in turn on a running server (`url`, `pid`),
    and with `--control` a control round after each hostile one."""
    clean_rounds, hostile_rounds, hostile_parts, control_rounds = [], [], [], []
    headers = clients.headers()
    for n in range(args.rounds):
        print(f"[{name}] round {n + 1}/{args.rounds}: clean ...", flush=True)
        seed = args.seed + n
        clean_rounds.append(asyncio.run(measured_round(url, pid, args, None, seed, headers)))
        print(
            f"[{name}] round {n + 1}/{args.rounds}: hostile (own process, nice "
            f"{hostile_clients.NICE}) ...",
            flush=True,
        )
        proc = run_hostile_process(url, args, work, n, clients)
        time.sleep(args.hostile_lead)  # the attack under way: allowances drawn down to their rate
        hostile_rounds.append(asyncio.run(measured_round(url, pid, args, proc, seed, headers)))
        if proc.returncode != 0:
            raise RuntimeError(f"the hostile process exited {proc.returncode}")
        hostile_parts.append(json.loads((work / f"hostile-{n}.json").read_text()))
        if args.control:
            rate = control_rate(args.offered_rps, clean_rounds[-1], hostile_rounds[-1])
            print(
                f"[{name}] round {n + 1}/{args.rounds}: control (well-behaved clients alone at "
                f"{rate} requests/s: the hostile round's server CPU) ...",
                flush=True,
            )
            control_rounds.append(
                asyncio.run(measured_round(url, pid, args, None, seed, headers, rate))
            )
    vmhwm = rss_kib(pid, "VmHWM")
    affinity = server_affinity(pid)
    hostile_proc = merged_hostile(hostile_parts)
    clean = merged_run(clean_rounds, args.docs)
    hostile = merged_run(hostile_rounds, args.docs, hostile_proc["cpu_s"])
    control = merged_run(control_rounds, args.docs) if control_rounds else None
    log_errors = server_log_errors(work / "server.log")
    runs = {"clean": clean, "hostile": hostile, **({"control": control} if control else {})}
    return {
        "limits": limits,
        "well_behaved_addresses": clients.addresses,
        "well_behaved_keys": len(clients.keys) if clients.keys else 0,
        "runs": runs,
        "hostile_process": hostile_proc,
        "server_vmhwm_mib": round(vmhwm / 1024, 1),
        "server_cpus": affinity,
        "summary": summarize(clean, hostile, hostile_proc, log_errors, control),
    }


def control_rate(offered_rps: float, clean_round: dict, hostile_round: dict) -> float:
    """The well-behaved rate at which the server would spend, on well-behaved clients alone, the
    CPU it spent in the hostile round: the offered rate x hostile / clean server CPU (never
    below the offered rate). The server's CPU grows about linearly with the rate below
    saturation, which the control run's own CPU shows (`control_server_cpu_vs_hostile`)."""
    clean_cpu, hostile_cpu = clean_round["server_cpu_s"], hostile_round["server_cpu_s"]
    scale = hostile_cpu / clean_cpu if clean_cpu > 0 else 1.0
    return round(offered_rps * max(1.0, scale), 2)


# --- the report ---------------------------------------------------------------------------------


def address_range(addresses: list[str]) -> str:
    return f"{addresses[0]}-{addresses[-1]}" if len(addresses) > 1 else addresses[0]


def configuration_lines(result: dict) -> list[str]:
    """What each configuration is."""
    lines = []
    if DEFAULT in result["configurations"]:
        lines.append(
            f"- {DEFAULT}: the server's defaults, no per-client limits; every client, "
            "well-behaved or hostile, reaches it from 127.0.0.1: one client to it."
        )
    if PER_CLIENT in result["configurations"]:
        config, per = result["configurations"][PER_CLIENT], result["per_client_limits"]
        hostile_addresses = sorted(
            (a for kind in config["hostile_process"]["client_addresses"].values() for a in kind),
            key=lambda a: tuple(int(x) for x in a.split(".")),
        )
        lines.append(
            f"- {PER_CLIENT}: production behind an ingress: TRUSTED_PROXIES={INGRESS}, "
            f"RATE_LIMIT_REQUESTS_PER_MINUTE={per['requests_per_minute']}, "
            f"RATE_LIMIT_PAIRS_PER_MINUTE={per['pairs_per_minute']}, "
            f"RATE_LIMIT_TOKENS_PER_MINUTE={per.get('tokens_per_minute', 0)} "
            f"({per['headroom']:g} x what one of the {per['well_behaved_clients']} well-behaved "
            f"clients offers: {per['client_offer_requests_per_minute']} requests, "
            f"{per['client_offer_pairs_per_minute']} pairs, "
            f"{per.get('client_offer_tokens_per_minute', '-')} tokens a minute). "
            "Each well-behaved client "
            f"sends its own X-Forwarded-For ({address_range(config['well_behaved_addresses'])}); "
            "each hostile client is one address "
            f"({address_range(hostile_addresses) if hostile_addresses else '-'}) appended as the "
            "LAST X-Forwarded-For line after any the client sent, as HAProxy or nginx append the "
            "peer they saw: the spoofers' own lines name nobody (a proxy forwarding them "
            "unchanged would let one spoofer pick a new identity each request, evading every "
            "per-client limit). Slowloris connections never finish their headers."
        )
    if API_KEYS in result["configurations"]:
        config = result["configurations"][API_KEYS]
        credentials = config["hostile_process"].get("credentials", {})
        tenants = sorted(k for k, held in credentials.items() if "key" in held)
        outsiders = sorted(k for k, held in credentials.items() if "key" not in held)
        lines.append(
            f"- {API_KEYS}: the same ingress and per-client limits, and API keys required "
            f"(API_KEYS_FILE): each of the {config.get('well_behaved_keys', 0)} well-behaved "
            "clients holds a key of its own, which names it to the limits; the hostile clients "
            f"of {', '.join(tenants) or '-'} are tenants, each with a key and an allowance of "
            f"its own (their bodies are read and their requests worked on); those of "
            f"{', '.join(outsiders) or '-'} hold none and guess one (what a spoofer can still "
            "attack is the address-keyed back-off on failed authentication)."
        )
    return lines


def interval_text(interval: list[float] | None) -> str:
    """An interval as `low-high`, `-` where there is none."""
    return f"{interval[0]}-{interval[1]}" if interval else "-"


def markdown(result: dict) -> str:
    """The short summary written beside the JSON and printed."""
    env, cfg, cal = result["environment"], result["settings"], result["calibration"]
    configs: dict[str, dict] = result["configurations"]
    first = next(iter(configs.values()))["hostile_process"]
    lines = [
        f"# Hostile clients ({result['timestamp']})",
        "",
        f"CPU: {env['cpu']} ({env['cpus']} CPUs); load average before/after: "
        f"{env['loadavg_before']} / {env['loadavg_after']}; model: {env['model']}; "
        f"the server on CPUs {env.get('server_cpus', 'all')}, the clients on CPUs "
        f"{env.get('client_cpus', 'all')}.",
        f"Capacity: {cal['capacity_rps']} requests/s ({cfg['clients']} closed-loop clients x "
        f"{cfg['docs']} documents for {cal['duration_s']:g} s, p95 {cal['p95_s']} s, on the "
        f"default server). Well-behaved load: open-loop, seeded Poisson, offered {cfg['load']:g} "
        f"x capacity = {cal['offered_rps']} requests/s, latency from the scheduled send time. "
        f"Each run {cfg['duration']:g} s in {cfg['rounds']} round(s), clean and hostile in turn, "
        "on a server of its own per configuration.",
        f"Hostile clients: a process of their own at nice {first['nice']} (autogroup: "
        f"{first['autogroup']}), paced at {first['rate_per_client']:g} attempts/s per client, "
        f"big bodies written at most at {first['big_body_mbps_cap']:g} MB/s together "
        f"({first['big_body_connection_mbps_cap']:g} MB/s a connection), writing stopped once "
        "the server answered; "
        + (
            f"started {cfg['hostile_lead']:g} s before each hostile round is measured (an attack "
            "under way: allowances drawn down to their rates; their answers include those "
            "seconds)."
            if cfg.get("hostile_lead")
            else "started with each hostile round (the attack's start: allowances full)."
        ),
        "",
        "Configurations:",
        "",
        *configuration_lines(result),
        "",
    ]
    for name, config in configs.items():
        limits = ", ".join(f"{k}={v}" for k, v in config["limits"].items())
        lines.append(f"Limits in force ({name}): {limits}")
        lines.append("")
    lines += [
        "| configuration | run | offered req/s | achieved req/s | ok requests | other answers "
        "| pairs/s | p50 s | p95 s | send lag p95 s | server peak RSS MiB | RSS at end MiB "
        "| server CPU s | other processes' CPU s | steal CPU s | /ready polls, all 200 |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, config in configs.items():
        for run_name, run in config["runs"].items():
            good = run["well_behaved"]
            lines.append(
                f"| {name} | {run_name} | {good['offered_rps']} | {good['achieved_rps']} "
                f"| {good['requests_ok']} | {good['other_answers'] or '-'} | "
                f"{good['pairs_per_s']} | {good['p50_s']} | {good['p95_s']} | "
                f"{good['send_lag_p95_s']} | "
                f"{run['server_rss_peak_mib']} | {run['server_rss_end_mib']} | "
                f"{run['server_cpu_s']} | {run['other_processes_cpu_s']} | "
                f"{run.get('steal_cpu_s', '-')} | {run['ready']['polls']}, {run['ready']['always_200']} |"
            )
    lines.append("")
    for name, config in configs.items():
        s, runs = config["summary"], config["runs"]
        target = "PASS" if s["p95_within_target"] else "FAIL"
        lines += [
            f"- {name}: well-behaved p95 hostile/clean: {s['p95_ratio']} (target <= "
            f"{P95_TARGET}: {target}; 90% interval over resampled round pairs "
            f"{interval_text(s.get('p95_ratio_interval90'))}, "
            f"{s.get('p95_target_verdict', '-')}); pairs/s hostile/clean: {s['pairs_per_s_ratio']}; "
            f"server peak RSS under attack {runs['hostile']['server_rss_peak_mib']} MiB, "
            f"{s['rss_peak_growth_mib']} MiB over the first clean round's peak "
            f"({runs['clean']['server_rss_first_round_peak_mib']} MiB) (VmHWM at the end "
            f"{config['server_vmhwm_mib']} MiB); hostile answers by class: "
            f"{s['hostile_status_classes']}; 5xx anywhere: {s['server_errors']}; /ready 200 "
            f"throughout: {s['ready_always_200']}; errors in the server's log: "
            f"{s['server_log_errors'] or 'none'}; the hostile process's CPU: "
            f"{config['hostile_process']['cpu_s']} s",
        ]
        if "control_p95_ratio" in s:
            lines.append(
                f"  - control: the well-behaved clients alone at {s['control_offered_rps']} "
                "requests/s, raised by the hostile round's extra server CPU (the control run "
                f"used {s['control_server_cpu_vs_hostile']} x the hostile run's server CPU): "
                f"p95 control/clean {s['control_p95_ratio']} "
                f"({interval_text(s.get('control_p95_ratio_interval90'))}) against "
                f"hostile/clean {s['p95_ratio']}; 5xx {s['control_5xx']}; /ready 200 throughout: "
                f"{s['control_ready_always_200']}. What the hostile clients' admitted work costs "
                "the well-behaved ones, next to what the same CPU spent on clients of their own "
                "costs them."
            )
    rounds = len(next(iter(configs.values()))["runs"]["clean"]["well_behaved"]["p95_s_per_round"])
    lines += [
        "",
        "Per round (round i of each run ran in turn, on about the same machine): well-behaved p95 "
        "s, and the server's CPU s.",
        "",
        "| configuration | run | " + " | ".join(str(n + 1) for n in range(rounds)) + " |",
        "|---|---|" + "---:|" * rounds,
    ]
    for name, config in configs.items():
        for run_name, run in config["runs"].items():
            p95s = run["well_behaved"]["p95_s_per_round"]
            cells = [f"{p} ({c})" for p, c in zip(p95s, run["server_cpu_s_per_round"])]
            lines.append(f"| {name} | {run_name} | " + " | ".join(cells) + " |")
    names = list(configs)
    lines += [
        "",
        "| hostile kind | clients | "
        + " | ".join(f"attempts/s ({n}) | MB/s written ({n})" for n in names)
        + " |",
        "|---|---:|" + "---:|---:|" * len(names),
    ]
    for kind, f in first["intensity"].items():
        cells = []
        for n in names:
            g = configs[n]["hostile_process"]["intensity"][kind]
            attempts = "open throughout" if kind == "slowloris" else g["attempts_per_s"]
            cells.append(f"{attempts} | {g['mb_per_s']}")
        lines.append(f"| {kind} | {f['clients']} | " + " | ".join(cells) + " |")
    kinds = sorted({k for c in configs.values() for k in c["hostile_process"]["answers"]})
    lines += [
        "",
        "| hostile kind | " + " | ".join(f"answers ({n})" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for kind in kinds:
        cells = [str(configs[n]["hostile_process"]["answers"].get(kind, "-")) for n in names]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_configurations(text: str) -> tuple[str, ...]:
    """`--configurations`' comma-separated names, each one of CONFIGURATIONS."""
    names = tuple(dict.fromkeys(n for n in text.split(",") if n))
    if not names or not set(names) <= set(CONFIGURATIONS):
        raise argparse.ArgumentTypeError(
            f"unknown configuration in {text!r}; choose from {', '.join(CONFIGURATIONS)}"
        )
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per run (30)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per run, in turn (2)")
    parser.add_argument(
        "--clients", type=int, default=8, help="closed-loop clients measuring capacity (8)"
    )
    parser.add_argument(
        "--calibrate", type=float, default=6.0, help="seconds measuring capacity (6)"
    )
    parser.add_argument(
        "--load", type=float, default=0.6, help="offered well-behaved rate / capacity (0.6)"
    )
    parser.add_argument("--seed", type=int, default=0, help="the Poisson schedules' seed (0)")
    parser.add_argument(
        "--hostile-rate",
        type=float,
        default=hostile_clients.HostileMix.rate_per_client,
        help="attempts/s of each hostile client of a request kind (2)",
    )
    parser.add_argument(
        "--hostile-mbps",
        type=float,
        default=hostile_clients.HostileMix.big_body_mbps,
        help="MB/s the big hostile bodies are written at, together (20)",
    )
    parser.add_argument(
        "--hostile-lead",
        type=float,
        default=0.0,
        help="seconds the hostile clients run before each hostile round is measured (0: the "
        "round sees the attack's start, the hostile clients' allowances full from the rounds "
        "without them; 30: an attack under way, their allowances drawn down to their rates)",
    )
    parser.add_argument("--docs", type=int, default=16, help="documents per request (16)")
    parser.add_argument(
        "--slowloris",
        type=int,
        default=hostile_clients.HostileMix.slowloris,
        help="slowloris connections",
    )
    parser.add_argument(
        "--only",
        type=hostile_clients.parse_kinds,
        default=hostile_clients.KINDS,
        help="comma-separated hostile kinds (default all): "
        + ", ".join(sorted(hostile_clients.KINDS)),
    )
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after a round (2)")
    parser.add_argument(
        "--control",
        action="store_true",
        help="after each hostile round, a control round: the well-behaved clients alone at the "
        "rate that costs the server the hostile round's CPU",
    )
    parser.add_argument(
        "--configurations",
        type=parse_configurations,
        default=CONFIGURATIONS,
        help=f"comma-separated, run in this order (default: {','.join(CONFIGURATIONS)})",
    )
    for only in (PER_CLIENT, API_KEYS):  # --per-client-limits, --api-keys
        parser.add_argument(
            f"--{only}",
            dest="configurations",
            action="store_const",
            const=(only,),
            help=f"only the {only} configuration",
        )
    parser.add_argument(
        "--limit-headroom",
        type=float,
        default=3.0,
        help="per-client limits / one well-behaved client's offer (3)",
    )
    for side, example in (("server", "1"), ("client", "0")):  # --server-cpus, --client-cpus
        parser.add_argument(
            f"--{side}-cpus",
            type=parse_cpus,
            default=None,
            help=f"CPUs the {side}s may run on, as taskset -c takes them (e.g. {example}; "
            "default: every CPU). The server's auto thread counts follow its CPUs; the clients "
            "are this process, the load generator, and the hostile process",
        )
    parser.add_argument("--model", type=Path, default=None, help="model dir (default: built)")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "reranker-bench")
    parser.add_argument("--out-dir", type=Path, default=BENCH_DIR / "runs")
    parser.add_argument(
        "--log-dir", type=Path, default=None, help="server log (default bench/results/...)"
    )
    args = parser.parse_args(argv)
    positive = (args.rounds, args.duration, args.clients, args.docs, args.calibrate, args.load)
    if args.hostile_lead < 0:
        parser.error("--hostile-lead must not be negative")
    if min(positive) <= 0 or args.hostile_rate <= 0 or args.hostile_mbps <= 0:
        parser.error(
            "--rounds, --duration, --clients, --docs, --calibrate, --load, --hostile-rate and "
            "--hostile-mbps must be positive"
        )
    if args.limit_headroom < 1:
        parser.error("--limit-headroom must be at least 1")
    available = os.sched_getaffinity(0)
    for side in ("server", "client"):
        cpus = getattr(args, f"{side}_cpus")
        if cpus is not None and not cpus <= available:
            parser.error(f"--{side}-cpus: CPUs {cpu_list(cpus - available)} are not this machine's")
    return args


def parse_cpus(text: str) -> frozenset[int]:
    """A `taskset -c` CPU list ("1", "0,2", "2-7") as the set of its CPUs."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()) or int(last or first) < int(first):
            raise argparse.ArgumentTypeError(f"not a CPU list: {text!r} (e.g. 1, 0,2 or 2-7)")
        cpus.update(range(int(first), int(last or first) + 1))
    return frozenset(cpus)


def cpu_list(cpus: frozenset[int] | set[int] | None) -> str | None:
    """The CPUs as `taskset -c` takes them, in order (None: every CPU)."""
    return None if cpus is None else ",".join(str(c) for c in sorted(cpus))


def calibrate(url: str, args: argparse.Namespace) -> dict:
    """The server's capacity: requests/s of `--clients` closed-loop clients for `--calibrate`
    seconds, and the open-loop rate offered from it."""
    run = asyncio.run(well_behaved(url, args.clients, args.docs, args.calibrate))
    capacity = len(run["latencies_s"]) / run["wall_s"]
    if not capacity:
        raise RuntimeError(f"no request succeeded while measuring capacity: {run['other_answers']}")
    p95 = percentile(run["latencies_s"], 95)
    return {
        "duration_s": args.calibrate,
        "clients": args.clients,
        "capacity_rps": round(capacity, 2),
        "p95_s": round(p95, 4) if p95 is not None else None,
        "offered_rps": round(args.load * capacity, 2),
        "tokens_per_request": round(sum(run["tokens"]) / len(run["tokens"]), 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Calibrate on the default server; run each configuration's clean and hostile rounds on a
    server of its own; write and print the report."""
    args = parse_args(argv)
    if args.client_cpus is not None:  # this process's threads, and every process it starts
        os.sched_setaffinity(0, args.client_cpus)
    import models
    from reranker_contract import DEFAULTS
    from servers import running_server

    timestamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    work = args.log_dir or BENCH_DIR / "results" / f"hostile-{timestamp}-logs"
    cpu = cpu_model()
    print(f"CPU: {cpu} ({os.cpu_count()} CPUs)", flush=True)
    model_dir = args.model or models.prepare_qwen3(args.cache_dir)
    print(f"model: {model_dir.name}; starting the server ...", flush=True)
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    # the default request timeout (servers.py raises it for saturated throughput runs)
    extra = ["--request-timeout-seconds", str(DEFAULTS.request_timeout_seconds)]
    configs: dict[str, dict] = {}
    (work / DEFAULT).mkdir(parents=True, exist_ok=True)
    server_cpus = cpu_list(args.server_cpus)
    default_log = work / DEFAULT / "server.log"
    with running_server("this", model_dir, default_log, extra=extra, cpus=server_cpus) as server:
        limits = server_limits(server.url, work / DEFAULT)
        warm_up(server.url, args)
        calibration = calibrate(server.url, args)
        args.offered_rps = calibration["offered_rps"]
        print(
            f"capacity: {calibration['capacity_rps']} requests/s closed-loop; offering "
            f"{args.load:g} x = {args.offered_rps} requests/s open-loop",
            flush=True,
        )
        if DEFAULT in args.configurations:
            configs[DEFAULT] = measured_configuration(
                DEFAULT, server.url, server.proc.pid, args, work / DEFAULT, limits, Clients()
            )
    per_client = per_client_limits(calibration, args)
    flags = [
        *("--trusted-proxies", INGRESS),
        *("--rate-limit-requests-per-minute", str(per_client["requests_per_minute"])),
        *("--rate-limit-pairs-per-minute", str(per_client["pairs_per_minute"])),
        *("--rate-limit-tokens-per-minute", str(per_client["tokens_per_minute"])),
    ]
    for name in (PER_CLIENT, API_KEYS):
        if name not in args.configurations:
            continue
        print(
            f"[{name}] trusted proxy {INGRESS}; per client "
            f"{per_client['requests_per_minute']} requests, {per_client['pairs_per_minute']} "
            f"pairs and {per_client['tokens_per_minute']} tokens a minute "
            f"({args.limit_headroom:g} x one well-behaved client's offer)"
            + ("; API keys required" if name == API_KEYS else ""),
            flush=True,
        )
        (work / name).mkdir(parents=True, exist_ok=True)
        clients = Clients(well_behaved_addresses(args.clients), None, HOSTILE_NETWORK)
        own_flags = list(flags)
        if name == API_KEYS:
            keys_file = work / name / "api-keys.txt"
            clients = api_keys_clients(args, keys_file)
            own_flags += ["--api-keys-file", str(keys_file)]
        log = work / name / "server.log"
        with running_server(
            "this", model_dir, log, extra=extra + own_flags, cpus=server_cpus
        ) as server:
            limits = server_limits(server.url, work / name, clients.own_headers())
            warm_up(server.url, args, clients.own_headers())
            configs[name] = measured_configuration(
                name, server.url, server.proc.pid, args, work / name, limits, clients
            )
    settings = {
        k: str(v) if isinstance(v, Path) else sorted(v) if isinstance(v, frozenset) else v
        for k, v in vars(args).items()
    }
    env = {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "server_cpus": server_cpus or "all",
        "client_cpus": cpu_list(args.client_cpus) or "all",
        "model": model_dir.name,
        "loadavg_before": loadavg_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    result = {
        "timestamp": timestamp,
        "environment": env,
        "settings": settings,
        "calibration": calibration,
        "per_client_limits": per_client,
        "configurations": configs,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"hostile-{timestamp}"
    Path(f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    png = hostile_plot.plot(result, Path(f"{stem}.png"))
    text = markdown(result)
    if png is not None:
        text += f"\n![well-behaved latency, clean and hostile]({png.name})\n"
    Path(f"{stem}.md").write_text(text)
    print("\n" + text)
    print(f"written: {stem}.json, {stem}.md" + (f", {png.name}" if png else ""))
    ok = all(
        not s["server_errors"] and not s["server_log_errors"] and s["ready_always_200"]
        for s in (config["summary"] for config in configs.values())
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
