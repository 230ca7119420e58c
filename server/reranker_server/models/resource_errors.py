"""Errors that say the device ran out of something or failed, not that a model cannot take a
shortcut: a shortcut's fallback must not treat them as the model's property (and turn itself
off for good), and the engine may retry them smaller."""

from __future__ import annotations


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    return (bool(oom) and isinstance(exc, oom)) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def is_device_failure(exc: BaseException) -> bool:
    """Out of memory, or a CUDA / cuBLAS / cuDNN runtime error."""
    text = str(exc)
    return is_out_of_memory(exc) or (
        isinstance(exc, RuntimeError)
        and any(
            mark in text for mark in ("CUDA error", "CUBLAS_STATUS", "cuDNN error", "CUDNN_STATUS")
        )
    )
