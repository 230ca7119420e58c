"""The CPU every figure was measured on: its model, count and the ISA extensions that decide
matmul speed (a figure without its CPU is not reported)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# the extensions that change which kernels torch/oneDNN can run, slowest to fastest
MATMUL_ISA = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (or what platform knows)."""
    for line in _cpuinfo():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def cpu_isa() -> list[str]:
    """The matmul-relevant ISA extensions this CPU reports, in MATMUL_ISA's order."""
    for line in _cpuinfo():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return [name for name in MATMUL_ISA if name in flags]
    return []


def torch_cpu_capability() -> str:
    """The vector ISA torch dispatches its own kernels to (AVX2, AVX512, ...)."""
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except AttributeError:  # older torch
        return "unknown"


def cpu_environment() -> dict:
    """The CPU facts a report carries with every figure."""
    return {
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "isa": cpu_isa(),
        "torch_cpu_capability": torch_cpu_capability(),
        "amx": "amx_bf16" in cpu_isa(),
    }


def cpu_label(env: dict | None = None) -> str:
    """One line naming the CPU: 'AMD EPYC, 2 CPUs, ISA avx2 fma avx512f ... (torch AVX512)'."""
    env = env or cpu_environment()
    isa = " ".join(env.get("isa") or []) or "unknown"
    return (
        f"{env['cpu']}, {env['cpus']} CPUs, ISA {isa} "
        f"(torch kernels: {env.get('torch_cpu_capability', 'unknown')}"
        f"{'; AMX' if env.get('amx') else '; no AMX'})"
    )
