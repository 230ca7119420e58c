"""The machine's torch matmul peak per dtype (fp32, bf16): best of several large square matmuls.

MFU is only meaningful against the peak of the dtype that ran: on a CPU with AVX512-BF16 or AMX
the bf16 peak is 2-10x the fp32 one, so a bf16 run measured against the fp32 peak reads >100%.
"""

from __future__ import annotations

import time

import torch


def matmul_peak_gflops(
    size: int = 2048, repeats: int = 8, threads: int | None = None, dtype: str = "float32"
) -> float:
    """Best observed GFLOP/s of `size x size` matmuls of DTYPE on the CPU (2*n^3 FLOPs each).

    `threads` sets torch's intra-op thread count for the measurement (None: torch's default,
    the same default the servers run with).
    """
    if size <= 0 or repeats <= 0:
        raise ValueError("size and repeats must be positive")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        kind = getattr(torch, dtype)
        a = torch.randn(size, size, generator=gen).to(kind)
        b = torch.randn(size, size, generator=gen).to(kind)
        out = torch.empty(size, size, dtype=kind)
        torch.matmul(a, b, out=out)  # warm-up: page in the buffers, pick the kernel
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - start)
        return 2.0 * size**3 / best / 1e9
    finally:
        torch.set_num_threads(previous)


def machine_peak_gflops(
    sizes: tuple[int, ...] = (2048, 3072, 4096), repeats: int = 5, dtype: str = "float32"
) -> dict:
    """The peak of DTYPE over several sizes (blocking makes some sizes faster than others)."""
    per_size = {size: matmul_peak_gflops(size, repeats, dtype=dtype) for size in sizes}
    return {
        "dtype": dtype,
        "peak_gflops": max(per_size.values()),
        "per_size_gflops": {str(k): round(v, 1) for k, v in per_size.items()},
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    """Print the fp32 and bf16 peaks for a few sizes (`python bench/peak.py`)."""
    from cpu_info import cpu_label

    print(f"CPU: {cpu_label()}; torch threads: {torch.get_num_threads()}")
    for dtype in ("float32", "bfloat16"):
        result = machine_peak_gflops(dtype=dtype)
        for size, gflops in result["per_size_gflops"].items():
            print(f"{size}x{size} {dtype} matmul: {gflops} GFLOP/s")
        print(f"{dtype} peak: {result['peak_gflops']:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
