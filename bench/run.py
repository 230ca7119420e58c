"""Benchmark this server against the naive baselines on the same model and the same load.

`python bench/run.py [--loads qwen3,cross] [--requests N] [--duration S] [--rounds R] [--quick]`

For each load, the servers run as subprocesses on the same model and the same seeded requests,
but only one is under load at a time: each gets warm-up requests (excluded), then the measured
phase (bounded by a request count and a time limit) is split into rounds in which the servers
take turns, so slow drifts in the machine's background load hit them alike. Finally a few
requests are sent one at a time to every server and their scores compared. Results go to
bench/results/<timestamp>.json/.md and bench/LATEST.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import httpx

import models
import report
from cpu_info import cpu_environment, cpu_label
from cpu_usage import BackgroundCpu
from loadgen import LoadResult, fetch_scores, merge_results, run_load
from peak import machine_peak_gflops
from reranker_contract import Metric
from servers import NAIVE_MODES, running_server
from texts import BenchRequest, make_requests


@dataclass(frozen=True)
class LoadSpec:
    """One benchmark load: a model and the requests sent to it."""

    name: str
    description: str
    servers: dict[str, str]  # report name -> server kind (servers.server_command)
    query_tokens: int
    instruction_tokens: int  # 0: no instruction field
    shape: dict | None = None  # the model's shape (None: tiny Qwen3 / the MiniLM cross-encoder)
    # a real-shape model is 10-100x slower per pair: fewer clients and documents, a longer
    # measured phase (each None: the command line's value); --concurrency etc. still win
    scale: LoadScale | None = None

    @property
    def causal(self) -> bool:
        """A Qwen3 yes/no reranker (else a BERT cross-encoder)."""
        return self.name.startswith("qwen3")


@dataclass(frozen=True)
class LoadScale:
    """A load's own defaults for its clients, documents, warm-up requests and measured time."""

    concurrency: int
    docs: int
    warmup: int
    duration: float


QWEN3_SERVERS = {
    "this": "this",
    "this-compiled": "this-compiled",
    "naive": "naive-qwen3",
    "vllm": "vllm",
    "vllm-allcores": "vllm-allcores",
    "front": "vllm-front",
}
CROSS_SERVERS = {
    "this": "this",
    "naive": "naive-cross",
    "st-naive": "st-naive",
    "vllm": "vllm-cross",
    "vllm-allcores": "vllm-cross-allcores",
    "infinity": "infinity",
}
REAL_SHAPE_SCALE = LoadScale(concurrency=4, docs=8, warmup=4, duration=180.0)
LOADS = {
    "qwen3": LoadSpec(
        "qwen3",
        "Qwen3-architecture causal reranker (hidden 256, 4 layers), random weights; "
        "~150-token instruction+query, documents of 30-200 tokens",
        QWEN3_SERVERS,
        query_tokens=20,
        instruction_tokens=130,
    ),
    "qwen3-wide": LoadSpec(
        "qwen3-wide",
        "Qwen3-architecture causal reranker (hidden 512, 8 layers), random "
        "weights; the same requests as qwen3",
        QWEN3_SERVERS,
        query_tokens=20,
        instruction_tokens=130,
        shape=models.QWEN3_WIDE_SHAPE,
    ),
    "cross": LoadSpec(
        "cross",
        "BERT cross-encoder with the real all-MiniLM-L6-v2 encoder and a seeded head; "
        "short query, documents of 30-200 tokens",
        CROSS_SERVERS,
        query_tokens=12,
        instruction_tokens=0,
    ),
    "qwen3-0.6b": LoadSpec(
        "qwen3-0.6b",
        "Qwen3-Reranker-0.6B's real layer shapes (hidden 1024, 28 layers, 16 x 128 query heads, "
        "8 KV heads, MLP 3072), random weights, tiny vocabulary; the same kind of requests as qwen3",
        {k: v for k, v in QWEN3_SERVERS.items() if k != "naive"},  # naive: minutes per request
        query_tokens=20,
        instruction_tokens=130,
        shape=models.QWEN3_06B_SHAPE,
        scale=REAL_SHAPE_SCALE,
    ),
    "cross-base": LoadSpec(
        "cross-base",
        "BERT cross-encoder at bge-reranker-base's encoder shapes (12 layers, hidden 768, 12 "
        "heads, MLP 3072), random weights, tiny vocabulary; short query, documents of 30-200 "
        "tokens",
        {name: kind for name, kind in CROSS_SERVERS.items() if name != "naive"},
        query_tokens=12,
        instruction_tokens=0,
        shape=models.CROSS_BASE_SHAPE,
        scale=REAL_SHAPE_SCALE,
    ),
}
DEFAULT_LOADS = ("qwen3", "qwen3-wide", "cross", "qwen3-0.6b", "cross-base")
SERVER_NAMES = (
    "this",
    "this-compiled",
    "naive",
    "st-naive",
    "vllm",
    "vllm-allcores",
    "front",
    "infinity",
)  # each also as NAME-bf16 (--dtypes)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with --quick or full defaults filled in and every value checked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--loads",
        default=",".join(DEFAULT_LOADS),
        help=f"comma-separated: {', '.join(LOADS)} (default {','.join(DEFAULT_LOADS)})",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="measured requests per server, all rounds (default 192; --quick 24)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="time limit of a server's measured phase, all rounds, in seconds "
        "(default 60, real-shape loads 180; --quick 10)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="warm-up requests per server, excluded (default 16, real-shape loads 4; --quick 4)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="measured phase split into this many rounds in which the servers "
        "take turns (default 3; --quick 1)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="concurrent clients (default 16, real-shape loads 4)",
    )
    parser.add_argument(
        "--docs",
        type=int,
        default=None,
        help="documents per request (default 32, real-shape loads 8; --quick 16)",
    )
    parser.add_argument(
        "--check-requests",
        type=int,
        default=8,
        help="requests whose scores are compared between servers",
    )
    parser.add_argument(
        "--servers",
        default=",".join(SERVER_NAMES),
        help="comma-separated subset of: this, this-compiled (COMPILE_KERNELS, Qwen3 loads), "
        "naive, st-naive (cross load "
        "only), vllm (make vllm-venv), vllm-allcores (vLLM with no core reserved for its "
        "scheduler: VLLM_CPU_NUM_OF_RESERVED_CPU=0), front (this server in front of its own vLLM, Qwen3 "
        "loads), infinity (cross load only, make infinity-venv)",
    )
    parser.add_argument(
        "--dtypes",
        default="float32,bfloat16",
        help="comma-separated: float32, bfloat16 (every server in each; bf16 "
        "rows are named NAME-bf16 and compared with fp32)",
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run (~1-2 minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "reranker-bench",
        help="where the benchmark models are built",
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra flag for reranker-server serve (repeatable), e.g. "
        "--server-arg=--max-batch-tokens=8192",
    )
    parser.add_argument("--no-latest", action="store_true", help="do not overwrite bench/LATEST.md")
    args = parser.parse_args(argv)
    # what the user gave explicitly wins over a load's own scale (load_args)
    args.explicit = [
        name for name in ("concurrency", "docs", "warmup", "duration") if getattr(args, name)
    ]
    defaults = (24, 10.0, 4, 16, 1, 16) if args.quick else (192, 60.0, 16, 32, 3, 16)
    names = ("requests", "duration", "warmup", "docs", "rounds", "concurrency")
    for name, default in zip(names, defaults):
        if getattr(args, name) is None:
            setattr(args, name, default)
    loads = [name.strip() for name in args.loads.split(",") if name.strip()]
    unknown = [name for name in loads if name not in LOADS]
    if unknown or not loads:
        parser.error(f"--loads: unknown {unknown}; choose from {sorted(LOADS)}")
    args.loads = loads
    args.servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    bad = [name for name in args.servers if name not in SERVER_NAMES]
    if bad or not args.servers:
        parser.error(f"--servers: unknown {bad}; choose from {', '.join(SERVER_NAMES)}")
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if not args.dtypes or any(d not in ("float32", "bfloat16") for d in args.dtypes):
        parser.error(f"--dtypes: float32 and/or bfloat16, got {args.dtypes}")
    for name in ("requests", "concurrency", "docs", "check_requests", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0 or args.duration <= 0:
        parser.error("--warmup must be >= 0 and --duration > 0")
    return args


FLOPS, REUSED = str(Metric.MODEL_FLOPS_TOTAL), str(Metric.PREFIX_TOKENS_SAVED_TOTAL)
# vLLM's automatic prefix caching (`--enable-prefix-caching`): prompt tokens it found cached
VLLM_HITS = "vllm:prefix_cache_hits_total"


def load_args(spec: LoadSpec, args: argparse.Namespace) -> argparse.Namespace:
    """ARGS with SPEC's own scale where the command line left the value to its default (--quick
    shrinks it further: a sixth of the time, half the documents, one warm-up request)."""
    if spec.scale is None:
        return args
    out = argparse.Namespace(**vars(args))
    for name in ("concurrency", "docs", "warmup", "duration"):
        if name not in args.explicit:
            value = getattr(spec.scale, name)
            if args.quick:
                value = {"duration": value / 6, "docs": max(1, value // 2), "warmup": 1}.get(
                    name, value
                )
            setattr(out, name, value)
    return out


def server_counters(url: str) -> dict[str, float]:
    """A server's counters of its work: this server's FLOPs computed and prompt tokens reused,
    vLLM's prefix-cache hits (empty for a server with neither)."""
    import urllib.request

    from reranker_operator.tools.promtext import parse_totals

    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
            return parse_totals(answer.read().decode(), (FLOPS, REUSED, VLLM_HITS))
    except OSError:
        return {}


def account_work(
    result: LoadResult, before: dict[str, float], after: dict[str, float], flop_model
) -> None:
    """Replace RESULT's estimate (every token recomputed) by what the server says it did: this
    server's own FLOP and reuse counters; for vLLM, its prefix-cache hits, whose tokens skip
    every layer's projections and MLP (their attention among themselves, a few percent, stays
    counted, so vLLM's figure is an upper bound)."""
    if FLOPS in after and FLOPS in before:
        result.flops = after[FLOPS] - before[FLOPS]
        result.prefix_tokens_reused = int(after[REUSED] - before[REUSED])
    elif VLLM_HITS in after and VLLM_HITS in before:
        hits = int(after[VLLM_HITS] - before[VLLM_HITS])
        result.prefix_tokens_reused = hits
        result.flops -= flop_model.linear([hits])


def prepare_load(
    spec: LoadSpec, args: argparse.Namespace
) -> tuple[Path, list[BenchRequest], list[int], list[float]]:
    """Build the model and the seeded requests; per request the token count of its full
    sequences and the model FLOPs a server that recomputes every one of them spends."""
    from transformers import AutoTokenizer

    args.cache_dir.mkdir(parents=True, exist_ok=True)
    if spec.causal:
        model_dir = models.prepare_qwen3(args.cache_dir, shape=spec.shape, seed=args.seed)
    elif spec.shape is not None:
        model_dir = models.prepare_cross_encoder(args.cache_dir, spec.shape, seed=args.seed)
    else:
        model_dir = models.prepare_minilm_cross_encoder(args.cache_dir, seed=args.seed)
    tok = AutoTokenizer.from_pretrained(model_dir)

    backend = getattr(tok, "backend_tokenizer", None)  # the Rust tokenizer: far less overhead
    if backend is not None:  # a copy: tokenizer.json may carry fixed padding/truncation
        from tokenizers import Tokenizer

        backend = Tokenizer.from_str(backend.to_str())
        backend.no_padding()
        backend.no_truncation()

    def count(text: str) -> int:
        if backend is not None:
            return len(backend.encode(text, add_special_tokens=False).ids)
        return len(tok(text, add_special_tokens=False)["input_ids"])

    requests = make_requests(
        args.warmup + args.requests,
        docs_per_request=args.docs,
        doc_tokens=(30, 200),
        query_tokens=spec.query_tokens,
        instruction_tokens=spec.instruction_tokens,
        count=count,
        seed=args.seed,
        distinct=args.warmup + args.requests,
    )
    tokens, flops = [], []
    flop_model, _ = models.flop_model(model_dir)
    for req in requests:
        lengths = models.sequence_lengths(
            tok, spec.causal, req.query, list(req.documents), req.instruction
        )
        tokens.append(sum(lengths))
        flops.append(flop_model.sequences(lengths))  # every layer over every token
    return model_dir, requests, tokens, flops


@dataclass(frozen=True)
class Phases:
    """A load's model and its requests split into warm-up, measured (with token and FLOP counts)
    and the agreement checks."""

    model_dir: Path
    warm: list[BenchRequest]
    warm_tokens: list[int]
    measured: list[BenchRequest]
    measured_tokens: list[int]
    measured_flops: list[float]
    checks: list[BenchRequest]


def measure_servers(
    spec: LoadSpec,
    args: argparse.Namespace,
    runs: list[tuple[str, str, str]],
    phases: Phases,
    log_dir: Path,
    failed: dict[str, str],
    results: dict[str, list[LoadResult]],
    scores: dict[str, list[list[float]]],
) -> None:
    """Start RUNS (report name, server kind, dtype) side by side, warm each, measure them in
    interleaved rounds, then fetch their scores of the check requests; fills FAILED, RESULTS and
    SCORES."""
    warm, warm_tokens, checks = phases.warm, phases.warm_tokens, phases.checks
    measured, measured_tokens = phases.measured, phases.measured_tokens
    measured_flops, model_dir = phases.measured_flops, phases.model_dir
    flop_model, head_per_token = models.flop_model(model_dir)
    kinds = {name: kind for name, kind, _ in runs}
    with ExitStack() as stack:
        running = {}
        for name, kind, dtype in runs:  # all started up front, paused while others are measured
            print(
                f"-- {spec.name}/{name}: starting {kind} ({dtype}), {len(warm)} warm-up requests",
                flush=True,
            )
            extra = args.server_arg if kind == "this" else []
            try:
                server = stack.enter_context(
                    running_server(
                        kind, model_dir, log_dir / f"{spec.name}-{name}.log", extra, dtype=dtype
                    )
                )
                if warm:
                    asyncio.run(
                        run_load(
                            server.url,
                            warm,
                            warm_tokens,
                            concurrency=args.concurrency,
                            duration_s=600.0,
                        )
                    )
                server.pause()
                running[name] = server
            except (RuntimeError, OSError, httpx.HTTPError) as exc:
                failed[name] = f"{type(exc).__name__}: {exc}"
                print(f"   FAILED: {failed[name].splitlines()[0]}", flush=True)
        per_round = -(-len(measured) // args.rounds)
        for k in range(args.rounds):
            reqs = measured[k * per_round : (k + 1) * per_round]
            toks = measured_tokens[k * per_round : (k + 1) * per_round]
            fls = measured_flops[k * per_round : (k + 1) * per_round]
            order = (
                list(running)[k % max(1, len(running)) :]
                + list(running)[: k % max(1, len(running))]
            )
            for name in order:  # servers alternate, so slow drifts of machine load even out
                server = running[name]
                if server.proc.poll() is not None:
                    continue  # it died in an earlier round: said once below
                server.resume()
                before = server_counters(server.url)
                result = asyncio.run(
                    run_load(
                        server.url,
                        reqs,
                        toks,
                        flops=fls,
                        concurrency=args.concurrency,
                        duration_s=args.duration / args.rounds,
                    )
                )
                after = server_counters(server.url)
                server.pause()
                if kinds[name] in NAIVE_MODES:  # `model(**inputs).logits`: the LM head everywhere
                    result.flops += head_per_token * result.tokens
                account_work(result, before, after, flop_model)
                results.setdefault(name, []).append(result)
                if server.proc.poll() is not None:
                    failed[name] = (
                        f"exited with {server.proc.returncode} in round {k + 1} "
                        "(-9: killed, by the kernel's OOM killer where memory ran out)"
                    )
                    print(f"   FAILED: {name} {failed[name]}", flush=True)
                print(
                    f"   round {k + 1}/{args.rounds} {name:10s}: {result.completed} requests "
                    f"({result.errors} errors) in {result.wall_s:.1f}s, "
                    f"{result.pairs / max(result.wall_s, 1e-9):.1f} pairs/s",
                    flush=True,
                )
        for name, server in running.items():
            if server.proc.poll() is not None:
                continue
            server.resume()
            try:
                scores[name] = asyncio.run(fetch_scores(server.url, checks))
            except httpx.HTTPError as exc:
                failed[name] = f"agreement check: {type(exc).__name__}: {exc}"
            server.pause()


def bench_load(
    spec: LoadSpec, args: argparse.Namespace, peaks: dict[str, float], log_dir: Path
) -> dict:
    """Run every server of one load; their summaries (MFU against PEAKS of the row's dtype) and
    score agreement."""
    args = load_args(spec, args)
    print(
        f"\n== load {spec.name}: preparing model and {args.warmup + args.requests} requests",
        flush=True,
    )
    model_dir, requests, tokens, flops = prepare_load(spec, args)
    params = models.matmul_params(model_dir)
    warm, measured = requests[: args.warmup], requests[args.warmup :]
    warm_tokens, measured_tokens = tokens[: args.warmup], tokens[args.warmup :]
    measured_flops = flops[args.warmup :]
    checks = measured[: args.check_requests]
    failed: dict[str, str] = {}
    results: dict[str, list[LoadResult]] = {}
    scores: dict[str, list[list[float]]] = {}
    phases = Phases(model_dir, warm, warm_tokens, measured, measured_tokens, measured_flops, checks)
    for dtype in args.dtypes:  # one dtype at a time: every server at once can run out of memory
        runs = [
            (name if dtype == "float32" else f"{name}-bf16", kind, dtype)
            for name, kind in spec.servers.items()
            if name in args.servers
        ]
        measure_servers(spec, args, runs, phases, log_dir, failed, results, scores)
    summaries = {}
    for name, rounds in results.items():
        dtype = "bfloat16" if name.endswith("-bf16") else "float32"
        summaries[name] = report.summarize(merge_results(rounds), params, peaks[dtype])
        summaries[name]["dtype"] = dtype
        summaries[name]["rounds_pairs_per_s"] = [
            r.pairs / r.wall_s if r.wall_s > 0 else 0.0 for r in rounds
        ]
        s = summaries[name]
        print(
            f"-- {spec.name}/{name}: {s['pairs_per_s']:.1f} pairs/s, p50 {s['p50_s']:.2f}s, "
            f"p95 {s['p95_s']:.2f}s, {s['model_gflops']:.1f} model GFLOP/s",
            flush=True,
        )
    agreement, bf16_cost = {}, {}
    names = list(scores)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if first.endswith("-bf16") != second.endswith("-bf16"):
                fp32, bf16 = (first, second) if second.endswith("-bf16") else (second, first)
                if bf16 == f"{fp32}-bf16":  # what bf16 costs one server in scores
                    bf16_cost[f"{bf16} vs {fp32}"] = report.compare_scores(
                        scores[fp32], scores[bf16]
                    )
                continue
            agreement[f"{first} vs {second}"] = report.compare_scores(scores[first], scores[second])
    return {
        "description": spec.description,
        "model": model_dir.name,
        "model_dir": str(model_dir),
        "matmul_params": params,
        "concurrency": args.concurrency,
        "docs_per_request": args.docs,
        "warmup": args.warmup,
        "duration_s": args.duration,
        "servers": summaries,
        "failed": failed,
        "agreement": agreement,
        "bf16_cost": bf16_cost,
        "check_scores": scores,
    }


def mem_available_gib() -> float | None:
    """MemAvailable from /proc/meminfo: memory held elsewhere (a stray paused server) makes the
    kernel evict the servers' memory-mapped weights, which a report must be able to show."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def apply_peaks(loads: dict, peaks: dict[str, float]) -> None:
    """Every row's MFU against the peak of its own dtype (PEAKS: dtype -> GFLOP/s)."""
    for load in loads.values():
        for summary in load["servers"].values():
            summary["fraction_of_peak"] = summary["model_gflops"] / peaks[summary["dtype"]]


def measure_peaks(dtypes: list[str], quick: bool) -> dict[str, dict]:
    """The matmul peak of every dtype that runs (MFU is against the row's own dtype)."""
    sizes = {"sizes": (2048, 3072), "repeats": 3} if quick else {"repeats": 5}
    out = {}
    for dtype in dtypes:
        print(f"measuring {dtype} matmul peak ...", flush=True)
        out[dtype] = machine_peak_gflops(dtype=dtype, **sizes)
        print(f"peak {out[dtype]['peak_gflops']:.1f} GFLOP/s {out[dtype]['per_size_gflops']}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure the peak, run every load, write and print the report."""
    args = parse_args(argv)
    import torch

    # SIGTERM unwinds like Ctrl-C, so every started server is resumed and stopped: killed
    # outright, the bench left its paused (SIGSTOPped) vLLM workers behind holding ~9 GB, and
    # the next run measured under that memory pressure
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    timestamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    results_dir = BENCH_DIR / "results"
    env = {
        **cpu_environment(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "mem_available_gib_before": mem_available_gib(),
    }
    print(f"CPU: {cpu_label(env)}", flush=True)
    background = BackgroundCpu()
    background.start()
    peaks = measure_peaks(args.dtypes, args.quick)
    loads = {
        name: bench_load(
            LOADS[name],
            args,
            {dtype: p["peak_gflops"] for dtype, p in peaks.items()},
            results_dir / f"{timestamp}-logs",
        )
        for name in args.loads
    }
    env["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    env.update(background.stop())
    # Background load only ever lowers a measured peak: take the better of before and after,
    # and express every load against it.
    for dtype, after in measure_peaks(args.dtypes, args.quick).items():
        peak = peaks[dtype]
        peak["before_gflops"], peak["after_gflops"] = peak["peak_gflops"], after["peak_gflops"]
        if after["peak_gflops"] > peak["peak_gflops"]:
            peak.update(peak_gflops=after["peak_gflops"], per_size_gflops=after["per_size_gflops"])
    apply_peaks(loads, {dtype: p["peak_gflops"] for dtype, p in peaks.items()})
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    run = {
        "timestamp": timestamp,
        "environment": env,
        "peaks": peaks,
        "settings": settings,
        "loads": loads,
        "targets": report.targets(loads),
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{timestamp}.json").write_text(json.dumps(run, indent=2) + "\n")
    text = report.markdown(run)
    (results_dir / f"{timestamp}.md").write_text(text)
    if not args.no_latest:
        (BENCH_DIR / "LATEST.md").write_text(text)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
