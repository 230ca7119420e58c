"""The GPU run in one command (`make bench-gpu`): nothing is downloaded.

    .venv/bin/python bench/gpu.py [--out bench/runs]  # on a CUDA machine; SKIP and exit 0 without
    .venv/bin/python bench/gpu.py --dry-run  # the same steps on the CPU with tiny shapes (CI)
    bash bench/gpu_device.sh                 # on a lent machine without our packages (see there)

Steps: the environment (CUDA, GPU, compute capability, native bf16, flash-attn, bitsandbytes);
random-weight models with Qwen3-Reranker-0.6B's real layer shapes (28 layers, hidden 1024, 16
query and 8 KV heads), Qwen3-Reranker-8B's (hidden 4096, 32 x 128 heads, MLP 12288) at 4 of
its 36 layers, and bge-reranker-base's encoder (12 layers, hidden 768); the matmul peak of each
dtype; bf16/fp16 scores against an fp32 reference on the same device (largest difference, top-3
agreement, all finite) alone, in a mixed batch and on the prefix path, failing on any shortcut
that turned itself off; peak memory after the warm-up at the batch budget; then each model
through the engine at concurrency 1, 16 and 64 in fp32, bf16 and fp16 (pairs/s, p50/p95,
forwards per planned batch, cold vs warm first request, MFU against the peak of the row's
dtype), the same in bf16 with every layer torch.compile'd (kept only where it pays), and the
baselines one request at a time in bf16: a naive transformers forward (both kinds) and
sentence-transformers' CrossEncoder (the encoder); finally a forced out-of-memory (a small
memory fraction) that the engine must survive by splitting. `--out DIR` writes
gpu-<timestamp>.json and .md there.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from models import CROSS_BASE_SHAPE as BGE_BASE
from models import QWEN3_06B_SHAPE as QWEN3_06B
from report import percentile

TINY_QWEN3 = {
    "hidden_size": 64,
    "num_layers": 2,
    "num_heads": 4,
    "num_kv_heads": 2,
    "head_dim": 16,
    "intermediate_size": 128,
}
TINY_BERT = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128}


def environment(device: str) -> dict:
    env = {
        "torch": torch.__version__,
        "device": device,
        "flash_attn": importlib.util.find_spec("flash_attn") is not None,
        "bitsandbytes": importlib.util.find_spec("bitsandbytes") is not None,
    }
    if device == "cuda":
        cap = torch.cuda.get_device_capability()
        props = torch.cuda.get_device_properties(0)
        env.update(
            cuda=torch.version.cuda,
            gpu=props.name,
            compute_capability=f"{cap[0]}.{cap[1]}",
            bf16_native=cap >= (8, 0),
            memory_gib=round(props.total_memory / 2**30, 1),
        )
    return env


def matmul_peak(device: str, dtype: torch.dtype, n: int) -> float:
    a, b = (
        torch.randn(n, n, device=device, dtype=dtype),
        torch.randn(n, n, device=device, dtype=dtype),
    )
    for _ in range(3):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    start, reps = time.perf_counter(), 10
    for _ in range(reps):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def requests(count: int, docs: int, seed: int = 0) -> list:
    import random

    from reranker_server.contracts import RerankInput

    rng = random.Random(seed)
    words = "the of and to in capital city river country paris france berlin water model".split()

    def text(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    return [
        RerankInput(query=text(12), documents=[text(rng.randint(20, 120)) for _ in range(docs)])
        for _ in range(count)
    ]


def _sig(raw: list[float]) -> list[float]:
    return [1 / (1 + math.exp(-x)) for x in raw]


def score_alone(backend, req) -> list[float]:
    enc = backend.encode(req)
    return [_sig(backend.score_mixed([enc.prefix_ids], [p]).raw_scores)[0] for p in enc.pairs]


def score_batch(backend, req) -> list[float]:
    enc = backend.encode(req)
    return _sig(backend.score_mixed([enc.prefix_ids] * len(enc.pairs), enc.pairs).raw_scores)


def score_prefix(backend, req) -> list[float]:
    enc = backend.encode(req)
    return _sig(backend.score(enc.prefix_ids, enc.pairs, [list(range(len(enc.pairs)))]).raw_scores)


def score_parity(path: Path, device: str, dtypes: list[str]) -> dict:
    """Half-precision scores against fp32 on the same device: alone, mixed batch, prefix path."""
    from reranker_server.models import LoadOptions, load_backend

    ref = load_backend(LoadOptions(model=str(path), device=device, dtype="float32"))
    reqs = requests(4, 8, seed=3)
    out = {}
    for dtype in dtypes:
        half = load_backend(LoadOptions(model=str(path), device=device, dtype=dtype))
        worst, changed, finite = 0.0, 0, True
        for req in reqs:
            want = score_batch(ref, req)
            for got in (score_alone(half, req), score_batch(half, req), score_prefix(half, req)):
                finite &= all(math.isfinite(x) for x in got)
                worst = max(worst, max(abs(a - b) for a, b in zip(got, want)))
                top = lambda xs: sorted(range(len(xs)), key=lambda i: -xs[i])[:3]  # noqa: E731
                changed += top(got) != top(want)
        off = [
            s.name
            for s in half.shortcuts()
            if not s.in_force and s.reason and "not one" not in s.reason
        ]
        out[dtype] = {
            "max_abs_diff": worst,
            "top3_changed": changed,
            "checked": 3 * len(reqs),
            "all_finite": finite,
            "shortcuts_off": off,
        }
    return out


async def _load(engine, reqs, concurrency: int) -> dict:
    latencies: list[float] = []
    queue = list(reqs)

    async def client() -> None:
        while queue:
            req = queue.pop()
            start = time.perf_counter()
            await engine.rerank(req)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    pairs = sum(len(r.documents) for r in reqs)
    return {
        "pairs_per_s": pairs / wall,
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "wall_s": wall,
    }


def engine_run(
    path: Path,
    device: str,
    dtype: str,
    concurrencies: list[int],
    n: int,
    docs: int,
    peak_gflops: float,
    compile_model: bool = False,
) -> dict:
    from reranker_server.engine import EngineConfig, build_engine
    from reranker_server.models import LoadOptions, load_backend

    backend = load_backend(LoadOptions(model=str(path), device=device, dtype=dtype))
    if compile_model and not compile_layers(backend):
        raise RuntimeError("no transformer layers found to compile")

    async def main() -> dict:
        engine = build_engine(backend, EngineConfig(max_batch_size=32, max_batch_tokens=16384))
        await engine.start()
        records = []
        engine.add_batch_listener(records.append)
        result = {}
        try:
            cold = time.perf_counter()
            await engine.rerank(requests(1, docs, seed=9)[0])
            result["cold_first_request_s"] = time.perf_counter() - cold
            warm = time.perf_counter()
            await engine.rerank(requests(1, docs, seed=9)[0])
            result["warm_request_s"] = time.perf_counter() - warm
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            await engine.warm_up()
            if device == "cuda":
                result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
            for c in concurrencies:
                records.clear()
                figures = await _load(engine, requests(n, docs, seed=c), c)
                flops = sum(f.flops for r in records for f in r.forwards)
                figures["forwards_per_batch"] = sum(len(r.forwards) for r in records) / max(
                    1, len(records)
                )
                figures["mfu"] = flops / figures["wall_s"] / 1e9 / peak_gflops
                result[f"concurrency_{c}"] = figures
        finally:
            await engine.stop()
        return result

    return asyncio.run(main())


def forced_oom(path: Path, device: str) -> dict:
    """Too little memory for the batch: the engine must split it and still answer."""
    from prometheus_client import REGISTRY

    from reranker_server.engine import EngineConfig, build_engine
    from reranker_server.models import LoadOptions, load_backend

    backend = load_backend(LoadOptions(model=str(path), device=device, dtype="float32"))
    before = REGISTRY.get_sample_value("reranker_oom_retries_total") or 0.0

    async def main() -> bool:
        engine = build_engine(backend, EngineConfig())
        await engine.start()
        try:
            out = await engine.rerank(requests(1, 64, seed=5)[0])
            return len(out.scores) == 64
        finally:
            await engine.stop()

    if device == "cuda":  # leave the weights' memory plus a sliver
        used = torch.cuda.memory_allocated() / torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, used + 0.002))
    try:
        answered = asyncio.run(main())
    finally:
        if device == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0)
    retries = (REGISTRY.get_sample_value("reranker_oom_retries_total") or 0.0) - before
    return {"answered": answered, "oom_retries": retries}


def compile_layers(backend) -> int:
    """torch.compile every transformer layer of BACKEND's model in place (dynamic shapes: the
    batches vary); the layers compiled. A row of its own: compile is kept only where it pays."""
    count = 0
    for attr in ("base", "model"):
        root = getattr(backend, attr, None)
        if not isinstance(root, torch.nn.Module):
            continue
        for module in root.modules():
            if isinstance(module, torch.nn.ModuleList) and len(module) and module is not root:
                for layer in module:
                    layer.forward = torch.compile(layer.forward, dynamic=True)
                    count += 1
        break
    return count


def baseline_run(
    kind: str, path: Path, device: str, dtype: str, n: int, docs: int, peak_gflops: float
) -> dict:
    """A baseline scoring one request at a time, each one padded forward (what the published
    guides serve): `naive` (transformers forward) or `st` (sentence-transformers' CrossEncoder)."""
    from transformers import AutoTokenizer

    import models
    import naive_server

    flop_model, head = models.flop_model(path)
    causal = head > 0  # only a causal LM's head runs at every position
    make = {
        ("naive", True): naive_server.qwen3_scorer,
        ("naive", False): naive_server.cross_scorer,
        ("st", False): naive_server.st_cross_scorer,
    }[(kind, causal)]
    scorer = make(str(path), getattr(torch, dtype), device=device)
    tokenizer = AutoTokenizer.from_pretrained(path)
    reqs = requests(n, docs, seed=11)
    scorer(reqs[0].query, reqs[0].documents, None)  # warm-up
    latencies, flops = [], 0.0
    start = time.perf_counter()
    for req in reqs:
        t = time.perf_counter()
        scorer(req.query, req.documents, None)
        if device == "cuda":
            torch.cuda.synchronize()
        latencies.append(time.perf_counter() - t)
        lengths = models.sequence_lengths(tokenizer, causal, req.query, req.documents)
        flops += flop_model.sequences(lengths) + head * sum(lengths)
    wall = time.perf_counter() - start
    return {
        "pairs_per_s": n * docs / wall,
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "mfu": flops / wall / 1e9 / peak_gflops,
    }


def markdown(run: dict) -> str:
    """The GPU run as a Markdown report (bench/runs/gpu-<timestamp>.md)."""
    env = run["environment"]
    lines = [
        f"# GPU benchmark ({run['timestamp']})",
        "",
        f"**Device: {env.get('gpu', env['device'])}** (CUDA {env.get('cuda', '-')}, compute "
        f"capability {env.get('compute_capability', '-')}), torch {env['torch']}. Matmul peaks "
        f"(GFLOP/s, measured): {run['peaks']}. MFU is against the peak of the row's dtype.",
        "",
        "| model | row | concurrency | pairs/s | p50 s | p95 s | MFU % |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for model, rows in run["models"].items():
        for row, figures in rows.items():
            if not isinstance(figures, dict):
                lines.append(f"| {model} | {row} | - | {figures} | | | |")
                continue
            levels = {k: v for k, v in figures.items() if k.startswith("concurrency_")}
            for level, f in (levels or {"concurrency_1": figures}).items():
                if not isinstance(f, dict) or "pairs_per_s" not in f:
                    continue
                lines.append(
                    f"| {model} | {row} | {level.split('_')[1]} | {f['pairs_per_s']:.1f} | "
                    f"{f['p50_s']:.3f} | {f['p95_s']:.3f} | {100 * f['mfu']:.1f} |"
                )
    lines += ["", f"Score parity (half precision vs fp32 on the device): {run['parity']}", ""]
    lines += [f"Forced out of memory: {run['oom']}", f"Result: {run['result']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the CPU path with tiny shapes")
    parser.add_argument(
        "--out", type=Path, default=None, help="also write gpu-<timestamp>.json/.md here"
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("SKIP: no CUDA device (bench/gpu.py --dry-run runs the same steps on the CPU)")
        return 0
    from models import QWEN3_8B_SCALED_SHAPE
    from reranker_devtools.tiny_models import build_cross_encoder, build_qwen3_reranker

    device = "cpu" if args.dry_run else "cuda"
    shapes = (  # the dry run: one model of each kind (the 8B rows run the 0.6B's code)
        {"qwen3-0.6b": TINY_QWEN3, "bge-base": TINY_BERT}
        if args.dry_run
        else {
            "qwen3-0.6b": QWEN3_06B,
            "qwen3-8b-scaled": QWEN3_8B_SCALED_SHAPE,
            "bge-base": BGE_BASE,
        }
    )
    concurrencies = [1, 2] if args.dry_run else [1, 16, 64]
    n, docs = (4, 8) if args.dry_run else (64, 32)
    dtypes = ["bfloat16"] if args.dry_run else ["bfloat16", "float16"]
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    env = environment(device)
    print(f"{'DRY RUN (CPU, tiny shapes)' if args.dry_run else 'GPU run'}: {env}", flush=True)
    paths = {
        name: (build_qwen3_reranker if name.startswith("qwen3") else build_cross_encoder)(
            work / name, seed=1, **shape
        )
        for name, shape in shapes.items()
    }
    peaks = {
        dt: matmul_peak(device, getattr(torch, dt), 256 if args.dry_run else 8192)
        for dt in ["float32", *dtypes]
    }
    print(f"matmul peak GFLOP/s: { {k: round(v, 1) for k, v in peaks.items()} }", flush=True)
    failures: list[str] = []
    results: dict[str, dict] = {}
    parities: dict[str, dict] = {}
    for name, path in paths.items():
        rows = results.setdefault(name, {})
        if name != "qwen3-8b-scaled":  # same layers as 0.6B's, scaled: its speed is the point
            parity = score_parity(path, device, dtypes)
            parities[name] = parity
            print(f"{name} half-precision vs fp32: {parity}", flush=True)
            for dtype, result in parity.items():
                if not result["all_finite"] or result["shortcuts_off"]:
                    failures.append(f"{name} {dtype}: {result}")
        for dtype in ["float32", *dtypes]:
            rows[f"this {dtype}"] = engine_run(
                path, device, dtype, concurrencies, n, docs, peaks[dtype]
            )
            print(f"{name} this {dtype}: {rows[f'this {dtype}']}", flush=True)
        compile_here = not args.no_compile and not (args.dry_run and name != "qwen3-0.6b")
        if compile_here:  # compile where it pays: measured beside eager, never assumed
            try:
                rows["this bfloat16+compile"] = engine_run(
                    path, device, "bfloat16", concurrencies, n, docs, peaks["bfloat16"], True
                )
            except Exception as exc:  # noqa: BLE001 - a compile failure is a finding, not a crash
                rows["this bfloat16+compile"] = f"failed: {type(exc).__name__}: {exc}"[:300]
            print(f"{name} this bfloat16+compile: {rows['this bfloat16+compile']}", flush=True)
        kinds = ["naive"] if name.startswith("qwen3") else ["naive", "st"]
        for kind in kinds:
            if kind == "st" and importlib.util.find_spec("sentence_transformers") is None:
                rows["st bfloat16"] = "skipped: sentence-transformers is not installed"
                continue
            rows[f"{kind} bfloat16"] = baseline_run(
                kind, path, device, "bfloat16", max(2, n // 4), docs, peaks["bfloat16"]
            )
            print(f"{name} {kind} bfloat16: {rows[f'{kind} bfloat16']}", flush=True)
    oom = forced_oom(paths["qwen3-0.6b"], device)
    print(f"forced out of memory: {oom}")
    if device == "cuda" and not (oom["answered"] and oom["oom_retries"] > 0):
        failures.append(f"out of memory not recovered: {oom}")
    result = "FAILED: " + "; ".join(failures) if failures else "OK"
    if args.out is not None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        run = {
            "timestamp": stamp,
            "environment": env,
            "peaks": {k: round(v, 1) for k, v in peaks.items()},
            "models": results,
            "parity": parities,
            "oom": oom,
            "result": result,
        }
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"gpu-{stamp}.json").write_text(json.dumps(run, indent=2, default=str) + "\n")
        (args.out / f"gpu-{stamp}.md").write_text(markdown(run))
        print(f"wrote {args.out}/gpu-{stamp}.json and .md")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
