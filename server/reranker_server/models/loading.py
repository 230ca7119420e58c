"""Loading options, device/dtype resolution, family detection and model download."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reranker_contract import ATTN_IMPLEMENTATIONS, CPU_BF16_MIN_SPEEDUP, DEFAULTS, ModelFamily
from reranker_server.models.families import architectures, registered


class ModelLoadError(ValueError):
    """The model cannot be loaded with the requested options; the message names the option."""


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model (mirrors the serve settings)."""

    model: str
    revision: str | None = None
    cache_dir: str | None = None
    served_model_name: str | None = None
    family: str = "auto"  # auto or a ModelFamily value
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    device: str = "auto"  # auto | cpu | cuda
    attn_implementation: str = ATTN_IMPLEMENTATIONS[0]  # one of ATTN_IMPLEMENTATIONS
    quantization: str = "none"  # none | 8bit | 4bit
    compile_kernels: bool = False  # the CPU packed decoder's elementwise chains, compiled
    max_length: int = DEFAULTS.max_sequence_length  # at most the model's limit
    default_instruction: str | None = None
    trust_remote_code: bool = False


def resolve_device(device: str) -> str:
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device: 'cuda' requested but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise ModelLoadError(f"device: must be auto, cpu or cuda; got {device!r}")
    return device


def choose_cpu_dtype(bf16_native: bool, speedup: float | None) -> tuple[str, str]:
    """`auto` on a CPU: bfloat16 where the CPU computes it natively (AVX512-BF16 or AMX) and
    it is measurably faster, else float32; with the reason."""
    if not bf16_native:
        return "float32", "auto: this CPU has no native bf16 matmul (AVX512-BF16/AMX)"
    if speedup is None or speedup < CPU_BF16_MIN_SPEEDUP:
        return (
            "float32",
            f"auto: bf16 matmul measured {speedup or 0:.2f}x fp32 here (< {CPU_BF16_MIN_SPEEDUP}x)",
        )
    return "bfloat16", f"auto: bf16 matmul measured {speedup:.1f}x fp32 on this CPU"


def choose_cuda_dtype(capability: tuple[int, int]) -> tuple[str, str]:
    """`auto` on a GPU: bfloat16 from compute capability 8.0 (Ampere) on, where it is native;
    float16 before (T4, V100 emulate bf16 slowly although torch reports it as supported)."""
    if capability >= (8, 0):
        return (
            "bfloat16",
            f"auto: compute capability {capability[0]}.{capability[1]} computes bf16 natively",
        )
    return "float16", f"auto: compute capability {capability[0]}.{capability[1]} has no native bf16"


def _cpu_bf16_speedup() -> tuple[bool, float | None]:
    import time

    import torch

    native = bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )
    if not native:
        return False, None
    times = {}
    for dt in (torch.float32, torch.bfloat16):
        a, b = torch.randn(768, 768, dtype=dt), torch.randn(768, 768, dtype=dt)
        a @ b
        start = time.perf_counter()
        for _ in range(8):
            a @ b
        times[dt] = time.perf_counter() - start
    return True, times[torch.float32] / max(times[torch.bfloat16], 1e-9)


def resolve_dtype_choice(dtype: str, device: str) -> tuple[Any, str]:
    """(torch dtype, why): `auto` decided from the device (see choose_cpu_dtype /
    choose_cuda_dtype); an explicit dtype is taken as given."""
    import torch

    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype == "auto":
        if device == "cpu":
            name, why = choose_cpu_dtype(*_cpu_bf16_speedup())
        else:
            name, why = choose_cuda_dtype(torch.cuda.get_device_capability())
        return table[name], why
    if dtype not in table:
        raise ModelLoadError(f"dtype: must be auto, float32, float16 or bfloat16; got {dtype!r}")
    return table[dtype], "as configured"


def resolve_dtype(dtype: str, device: str):
    """The torch dtype `dtype` means on `device` (see resolve_dtype_choice)."""
    return resolve_dtype_choice(dtype, device)[0]


def check_attn_implementation(name: str, device: str) -> str:
    """Validate the attention kernel; flash_attention_2 needs flash-attn and a GPU."""
    if name not in ATTN_IMPLEMENTATIONS:
        raise ModelLoadError(
            f"attn_implementation: must be one of {', '.join(ATTN_IMPLEMENTATIONS)}; got {name!r}"
        )
    if name == "flash_attention_2":
        if importlib.util.find_spec("flash_attn") is None:
            raise ModelLoadError(
                "attn_implementation: flash_attention_2 needs the flash-attn package (not installed)"
            )
        if device != "cuda":
            raise ModelLoadError("attn_implementation: flash_attention_2 needs device cuda")
    return name


def quantization_config(quantization: str, device: str, dtype) -> Any | None:
    """A BitsAndBytesConfig for 8bit/4bit, None for none; clear errors when unavailable."""
    if quantization == "none":
        return None
    if quantization not in ("8bit", "4bit"):
        raise ModelLoadError(f"quantization: must be none, 8bit or 4bit; got {quantization!r}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelLoadError(
            f"quantization: {quantization} needs the bitsandbytes package (not installed)"
        )
    if device != "cuda":
        raise ModelLoadError(f"quantization: {quantization} needs device cuda")
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_type="nf4"
    )


def hub_kwargs(opts: LoadOptions) -> dict[str, Any]:
    """from_pretrained keyword arguments for the source (revision, cache dir, remote code)."""
    kwargs: dict[str, Any] = {"trust_remote_code": opts.trust_remote_code}
    if opts.revision:
        kwargs["revision"] = opts.revision
    if opts.cache_dir:
        kwargs["cache_dir"] = opts.cache_dir
    return kwargs


def detect_family(config: Any, tokenizer: Any, override: str = "auto") -> ModelFamily:
    """The family `override` names, else the registered family that detects the model from its
    config and tokenizer (each family's module states how)."""
    families = registered()
    if override != "auto":
        if override not in families:
            raise ModelLoadError(
                f"model_family: must be auto, {' or '.join(families)}; got {override!r}"
            )
        return families[override].name
    found = next((f for f in families.values() if f.detects(config, tokenizer)), None)
    if found is None:
        raise ModelLoadError(
            f"model_family: cannot detect from architectures {architectures(config)}; "
            f"pass --model-family {'|'.join(families)}"
        )
    return found.name


def download_model(
    model: str, *, cache_dir: str | None = None, revision: str | None = None
) -> Path:
    """Fetch a hub model into `cache_dir` (HF_TOKEN honoured); a local dir is only validated."""
    local = Path(model)
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ValueError(f"model: local directory {model} has no config.json")
        return local
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            repo_id=model,
            revision=revision,
            cache_dir=cache_dir,
            token=os.environ.get("HF_TOKEN") or None,
        )
    )
