"""The machine's torch fp32 matmul peak: best of several large square matmuls."""

from __future__ import annotations

import time

import torch


def matmul_peak_gflops(size: int = 2048, repeats: int = 8, threads: int | None = None) -> float:
    """Best observed GFLOP/s of `size x size` fp32 matmuls on the CPU (2*n^3 FLOPs each).

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
        a = torch.randn(size, size, generator=gen, dtype=torch.float32)
        b = torch.randn(size, size, generator=gen, dtype=torch.float32)
        out = torch.empty(size, size, dtype=torch.float32)
        torch.matmul(a, b, out=out)  # warm-up: page in the buffers, pick the kernel
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - start)
        return 2.0 * size**3 / best / 1e9
    finally:
        torch.set_num_threads(previous)


def machine_peak_gflops(sizes: tuple[int, ...] = (2048, 3072, 4096), repeats: int = 5) -> dict:
    """The peak over several sizes (blocking makes some sizes faster than others)."""
    per_size = {size: matmul_peak_gflops(size, repeats) for size in sizes}
    return {
        "peak_gflops": max(per_size.values()),
        "per_size_gflops": {str(k): round(v, 1) for k, v in per_size.items()},
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    """Print the peak for a few sizes (`python bench/peak.py`)."""
    result = machine_peak_gflops()
    print(f"torch threads: {result['torch_threads']}")
    for size, gflops in result["per_size_gflops"].items():
        print(f"{size}x{size} fp32 matmul: {gflops} GFLOP/s")
    print(f"peak: {result['peak_gflops']:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
