"""Where does a forward's time go? Times our backend's encode/score_full outside the server.

`python bench/profile_backend.py --load cross [--batches 6]` loads the benchmark model through
`reranker_server.models.load_backend`, encodes the benchmark's requests and measures pairs/s of
score_full for several batch shapes and torch thread counts, sequentially and with two model
threads side by side. Numbers are only comparable within one invocation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

import run as bench_run
from reranker_server.contracts import RerankInput
from reranker_server.models import LoadOptions, load_backend


def timed(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", default="cross", choices=sorted(bench_run.LOADS))
    parser.add_argument("--batches", type=int, default=4, help="requests (batches) per timing")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--docs", type=int, default=32, help="documents per request")
    parser.add_argument(
        "--torch-profile", action="store_true", help="also print torch.profiler's top operators"
    )
    args = parser.parse_args()
    bench_args = bench_run.parse_args(
        ["--loads", args.load, "--requests", str(args.batches), "--docs", str(args.docs)]
    )
    model_dir, requests, _tokens, _flops = bench_run.prepare_load(
        bench_run.LOADS[args.load], bench_args
    )
    backend = load_backend(LoadOptions(model=str(model_dir), dtype=args.dtype, device="cpu"))
    inputs = [
        RerankInput(query=r.query, documents=r.documents, instruction=r.instruction)
        for r in requests[-args.batches :]
    ]
    t_enc = timed(lambda: [backend.encode(i) for i in inputs], args.repeats)
    encoded = [backend.encode(i) for i in inputs]
    pairs = sum(len(e.pairs) for e in encoded)
    print(f"model {model_dir.name} ({args.dtype}); {len(encoded)} requests, {pairs} pairs")
    print(f"encode: {1e3 * t_enc / len(inputs):.1f} ms/request")

    def per_request(method: str, e) -> None:
        if method == "score_full":  # one padded forward of whole sequences
            backend.score_mixed([e.prefix_ids] * len(e.pairs), e.pairs)
        else:  # one forward on the prefix's KV cache
            backend.score(e.prefix_ids, e.pairs, [list(range(len(e.pairs)))])

    def all_sorted(size: int) -> None:
        # every pair of every request, sorted by length, cut into batches of `size` (full path)
        seqs = sorted(
            ((e.prefix_ids, p) for e in encoded for p in e.pairs),
            key=lambda x: len(x[0]) + len(x[1].input_ids),
        )
        for k in range(0, len(seqs), size):
            chunk = seqs[k : k + size]
            backend.score_mixed([c[0] for c in chunk], [c[1] for c in chunk])

    def prefix_chunks(size: int) -> None:
        # each request's documents sorted by length and scored in chunks of `size`
        for e in encoded:
            docs = sorted(e.pairs, key=lambda p: len(p.input_ids))
            chunks = [list(range(k, min(k + size, len(docs)))) for k in range(0, len(docs), size)]
            backend.score(e.prefix_ids, docs, chunks)

    methods = ["score_full"] + (["score_with_prefix"] if backend.prefix_cache_in_force else [])
    for threads in (2, 1):
        torch.set_num_threads(threads)
        for method in methods:
            t = timed(lambda m=method: [per_request(m, e) for e in encoded], args.repeats)
            print(
                f"threads={threads} {method:17s} one batch per request, sequential: "
                f"{pairs / t:7.1f} pairs/s"
            )
        for size in (16, 32, 64):
            t = timed(lambda s=size: all_sorted(s), args.repeats)
            print(
                f"threads={threads} score_full length-sorted batches of {size:3d}, sequential: "
                f"{pairs / t:7.1f} pairs/s"
            )
        if backend.prefix_cache_in_force:
            for size in (8, 16):
                t = timed(lambda s=size: prefix_chunks(s), args.repeats)
                print(
                    f"threads={threads} prefix cache per request, length-sorted chunks of "
                    f"{size}: {pairs / t:7.1f} pairs/s"
                )
        if threads == 1:
            for method in methods:
                with ThreadPoolExecutor(2) as pool:

                    def both(m=method) -> None:
                        list(pool.map(lambda e: per_request(m, e), encoded))

                    t = timed(both, args.repeats)
                print(
                    f"threads=1 x 2 model threads {method:17s} one batch per request: "
                    f"{pairs / t:7.1f} pairs/s"
                )


if __name__ == "__main__":
    main()
