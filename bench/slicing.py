"""Small requests' latency behind one large request, its batches whole or sliced.

    .venv/bin/python bench/slicing.py                 # about two minutes
    .venv/bin/python bench/slicing.py --repeats 1 --small 10   # a short run

The engine (`reranker_server.engine`, in this process, no HTTP) on the bench's tiny random
Qwen3 reranker, CPU, float32. Each run sends one large request (`--large-docs` documents of
~150 words: more tokens than `max_batch_tokens`), then `--small` small requests (8 documents of
~30 words) `--gap` seconds apart, and measures each small request's latency and when all the
work was done. Runs are taken in turn per model-worker count (1 and 2):

- whole: `large_slice_tokens` = `max_batch_tokens`: a batch holding the large request's pairs
  runs at the full batch budget (what the engine did before slicing);
- sliced: the default `large_slice_tokens` (2048): while small requests arrive, such a batch is
  cut to that many tokens, so a small request waits for a slice, not a whole batch.

Prints the CPU and a table; writes bench/runs/slicing-<timestamp>.{json,md,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import models
from cpu_info import cpu_environment, cpu_label
from pyplot import pyplot
from reranker_server.contracts import RerankInput
from reranker_server.engine import EngineConfig, build_engine
from reranker_server.models import LoadOptions, load_backend
from texts import WORDS

MODES = ("whole", "sliced")


def requests(args: argparse.Namespace) -> tuple[RerankInput, list[RerankInput]]:
    """The large request and the small ones (seeded)."""
    rng = random.Random(args.seed)

    def text(words: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(words))

    large = RerankInput(
        query="which city is the capital", documents=[text(150) for _ in range(args.large_docs)]
    )
    smalls = [
        RerankInput(query=f"question {i}", documents=[text(30) for _ in range(8)])
        for i in range(args.small)
    ]
    return large, smalls


async def one_run(backend, mode: str, workers: int, args: argparse.Namespace) -> dict:
    """One large request and the small ones behind it: their latencies, the time to finish."""
    budget = EngineConfig().max_batch_tokens
    slice_tokens = budget if mode == "whole" else EngineConfig().large_slice_tokens
    engine = build_engine(
        backend, EngineConfig(model_workers=workers, large_slice_tokens=slice_tokens)
    )
    await engine.start()
    large, smalls = requests(args)
    await engine.rerank(smalls[0])  # first forwards and shortcut checks, outside the figures
    latencies: list[float] = []

    async def small(inp: RerankInput) -> None:
        start = time.perf_counter()
        await engine.rerank(inp)
        latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    big = asyncio.create_task(engine.rerank(large))
    tasks = []
    for inp in smalls:
        tasks.append(asyncio.create_task(small(inp)))
        await asyncio.sleep(args.gap)
    await asyncio.gather(*tasks)
    large_out = await big
    total = time.perf_counter() - started
    await engine.stop()
    latencies.sort()
    return {
        "mode": mode,
        "model_workers": workers,
        "large_slice_tokens": slice_tokens,
        "large_prompt_tokens": large_out.prompt_tokens,
        "small_p50_s": statistics.median(latencies),
        "small_p95_s": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        "small_max_s": latencies[-1],
        "all_done_s": total,
    }


def summary(runs: list[dict]) -> list[dict]:
    """Per (workers, mode): the median of each figure over the repeats."""
    rows = []
    for workers in sorted({r["model_workers"] for r in runs}):
        for mode in MODES:
            mine = [r for r in runs if r["model_workers"] == workers and r["mode"] == mode]
            if not mine:
                continue
            row = {"model_workers": workers, "mode": mode, "runs": len(mine)}
            for key in ("small_p50_s", "small_p95_s", "small_max_s", "all_done_s"):
                row[key] = statistics.median(r[key] for r in mine)
                row[key + "_each"] = [r[key] for r in mine]
            rows.append(row)
    return rows


def markdown(result: dict) -> str:
    lines = [
        f"# Small requests behind a large one, batches whole or sliced ({result['stamp']})",
        "",
        f"CPU: {result['cpu_label']}. Model: {result['model']} (float32). "
        f"{result['settings']['large_docs']} large documents ({result['large_prompt_tokens']} "
        f"prompt tokens), then {result['settings']['small']} small requests of 8 documents "
        f"{result['settings']['gap']} s apart; {result['settings']['repeats']} run(s) per row, "
        "taken in turn; medians (each run in brackets).",
        "",
        "| model workers | large request's batches | small p50 s | small p95 s | small max s "
        "| all done s |",
        "|---:|---|---:|---:|---:|---:|",
    ]

    def cell(row: dict, key: str) -> str:
        each = ", ".join(f"{v:.3f}" for v in row[key + "_each"])
        return f"{row[key]:.3f} ({each})"

    for row in result["rows"]:
        slice_note = "whole (max_batch_tokens)" if row["mode"] == "whole" else "sliced (2048)"
        lines.append(
            f"| {row['model_workers']} | {slice_note} | {cell(row, 'small_p50_s')} | "
            f"{cell(row, 'small_p95_s')} | {cell(row, 'small_max_s')} | "
            f"{cell(row, 'all_done_s')} |"
        )
    lines += ["", f"![small requests' p95]({result['stamp_name']}.png)", ""]
    return "\n".join(lines)


def plot(result: dict, png: Path) -> Path | None:
    """Bars of the small requests' p95 and the time to finish, per workers and mode."""
    plt = pyplot()
    if plt is None:
        return None
    rows = result["rows"]
    labels = [f"{r['model_workers']} worker(s)\n{r['mode']}" for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    colors = ["tab:red" if r["mode"] == "whole" else "tab:green" for r in rows]
    left.bar(labels, [1e3 * r["small_p95_s"] for r in rows], color=colors)
    left.set_ylabel("small requests' p95 (ms)")
    right.bar(labels, [r["all_done_s"] for r in rows], color=colors)
    right.set_ylabel("all work done (s)")
    fig.suptitle(f"One large request and small ones behind it ({result['cpu']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs per row, in turn (2)")
    parser.add_argument("--small", type=int, default=40, help="small requests per run (40)")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between them (0.05)")
    parser.add_argument("--large-docs", type=int, default=300, help="large documents (300)")
    parser.add_argument("--workers", default="1,2", help="model worker counts (1,2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "reranker-bench")
    parser.add_argument("--out-dir", type=Path, default=BENCH_DIR / "runs")
    args = parser.parse_args(argv)
    args.worker_counts = [int(w) for w in args.workers.split(",")]
    if min(args.repeats, args.small, args.large_docs, *args.worker_counts) < 1 or args.gap < 0:
        parser.error("--repeats, --small, --large-docs and --workers must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = cpu_environment()
    print(f"CPU: {cpu_label(env)}", flush=True)
    model_dir = models.prepare_qwen3(args.cache_dir)
    backend = load_backend(LoadOptions(model=str(model_dir), device="cpu", dtype="float32"))
    runs = []
    for workers in args.worker_counts:
        for repeat in range(args.repeats):
            for mode in MODES:
                run = asyncio.run(one_run(backend, mode, workers, args))
                runs.append(run)
                print(
                    f"workers {workers} {mode:6s} run {repeat + 1}/{args.repeats}: small p95 "
                    f"{1e3 * run['small_p95_s']:.0f} ms, max {1e3 * run['small_max_s']:.0f} ms; "
                    f"all done in {run['all_done_s']:.2f} s",
                    flush=True,
                )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = f"slicing-{stamp}"
    result = {
        "stamp": stamp,
        "stamp_name": name,
        "cpu": env["cpu"],
        "cpu_label": cpu_label(env),
        "environment": env,
        "model": model_dir.name,
        "large_prompt_tokens": runs[0]["large_prompt_tokens"],
        "settings": {k: v for k, v in vars(args).items() if k not in ("cache_dir", "out_dir")},
        "runs": runs,
        "rows": summary(runs),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{name}.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (args.out_dir / f"{name}.md").write_text(text)
    plot(result, args.out_dir / f"{name}.png")
    print(text)
    print(f"wrote {args.out_dir / name}.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
