"""The GPU run in one command (`make bench-gpu`): nothing is downloaded.

    .venv/bin/python bench/gpu.py            # on a CUDA machine; prints SKIP and exits 0 without one
    .venv/bin/python bench/gpu.py --dry-run  # the same steps on the CPU with tiny shapes (CI)

Steps: the environment (CUDA, GPU, compute capability, native bf16, flash-attn, bitsandbytes);
random-weight models with the real Qwen3-Reranker-0.6B shape (28 layers, hidden 1024, 16 query
and 8 KV heads) and a bge-reranker-base-sized encoder (12 layers, hidden 768); bf16/fp16 scores
against an fp32 reference on the same device (largest difference, top-3 agreement, all finite)
alone, in a mixed batch and on the prefix path, failing on any shortcut that turned itself off;
peak memory after the warm-up at the batch budget; a forced out-of-memory (a small memory
fraction) that the engine must survive by splitting; then the Qwen3 and BERT loads at
concurrency 1, 16 and 64 against the server: pairs/s, p50/p95, forwards per planned batch, cold
vs warm first request, and model FLOPs utilisation against the GPU's measured matmul peak.
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

QWEN3_06B = {
    "hidden_size": 1024,
    "num_layers": 28,
    "num_heads": 16,
    "num_kv_heads": 8,
    "head_dim": 128,
    "intermediate_size": 3072,
}
BGE_BASE = {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "intermediate_size": 3072}
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
    latencies.sort()
    pairs = sum(len(r.documents) for r in reqs)
    return {
        "pairs_per_s": pairs / wall,
        "p50_s": latencies[len(latencies) // 2],
        "p95_s": latencies[int(0.95 * (len(latencies) - 1))],
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
) -> dict:
    from reranker_server.engine import EngineConfig, build_engine
    from reranker_server.models import LoadOptions, load_backend

    backend = load_backend(LoadOptions(model=str(path), device=device, dtype=dtype))

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the CPU path with tiny shapes")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("SKIP: no CUDA device (bench/gpu.py --dry-run runs the same steps on the CPU)")
        return 0
    from reranker_devtools.tiny_models import build_cross_encoder, build_qwen3_reranker

    device = "cpu" if args.dry_run else "cuda"
    qshape, bshape = (TINY_QWEN3, TINY_BERT) if args.dry_run else (QWEN3_06B, BGE_BASE)
    concurrencies = [1, 2] if args.dry_run else [1, 16, 64]
    n, docs = (4, 8) if args.dry_run else (64, 32)
    dtypes = ["bfloat16"] if args.dry_run else ["bfloat16", "float16"]
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    print(f"{'DRY RUN (CPU, tiny shapes)' if args.dry_run else 'GPU run'}: {environment(device)}")
    qwen = build_qwen3_reranker(work / "qwen3", seed=1, **qshape)
    bert = build_cross_encoder(work / "bert", seed=1, **bshape)
    peaks = {
        dt: matmul_peak(device, getattr(torch, dt), 256 if args.dry_run else 8192)
        for dt in ["float32", *dtypes]
    }
    print(f"matmul peak GFLOP/s: { {k: round(v, 1) for k, v in peaks.items()} }")
    failures = []
    for name, path in (("qwen3", qwen), ("bert", bert)):
        parity = score_parity(path, device, dtypes)
        print(f"{name} half-precision vs fp32: {parity}")
        for dtype, result in parity.items():
            if not result["all_finite"] or result["shortcuts_off"]:
                failures.append(f"{name} {dtype}: {result}")
        for dtype in ["float32", *dtypes]:
            figures = engine_run(path, device, dtype, concurrencies, n, docs, peaks[dtype])
            print(f"{name} {dtype}: {figures}")
    oom = forced_oom(qwen, device)
    print(f"forced out of memory: {oom}")
    if device == "cuda" and not (oom["answered"] and oom["oom_retries"] > 0):
        failures.append(f"out of memory not recovered: {oom}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
