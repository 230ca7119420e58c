"""The processor model a pod scores on: part of the score check's setup, so a pod on another
GPU or CPU model is compared with the record at the `device` tolerance, not the restart one."""

from __future__ import annotations

from pathlib import Path


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name (Linux), None where it cannot be read."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() or None
    except OSError:
        return None
    return None


def processor_model(device: str | None) -> str | None:
    """'cuda: <GPU name>' for a CUDA device, 'cpu: <CPU model>' for the CPU, None where the
    pod cannot know (the front of vLLM, whose device is the engine process)."""
    if device is None:
        return None
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index or 0
        return f"cuda: {torch.cuda.get_device_name(index)}"
    if device == "cpu":
        model = cpu_model()
        return f"cpu: {model}" if model else None
    return None
