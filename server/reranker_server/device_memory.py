"""The memory of the device the model runs on, as the CUDA driver sees it (cudaMemGetInfo):
total and free for the whole device, whatever process holds it. On a MIG slice that is the
slice; on a time-shared GPU it is the whole GPU, the other pods' memory included. So
`free` is the headroom this replica leaves on its device. On a CPU there is no such reading,
and every figure is None with the reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from reranker_contract import Metric

MemGetInfo = Callable[[int], tuple[int, int]]  # device index -> (free, total), torch's order


@dataclass(frozen=True)
class DeviceMemory:
    """One reading of a device's memory; the byte figures are None where there is none."""

    device: str
    total_bytes: int | None
    free_bytes: int | None
    note: str  # where the figures come from, or why there are none

    @property
    def used_bytes(self) -> int | None:
        if self.total_bytes is None or self.free_bytes is None:
            return None
        return self.total_bytes - self.free_bytes

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "used_bytes": self.used_bytes}


def read(device: str, index: int, mem_get_info: MemGetInfo) -> DeviceMemory:
    """The reading of CUDA device `index` (named `device`) through `mem_get_info`."""
    free, total = mem_get_info(index)
    return DeviceMemory(device, int(total), int(free), "cudaMemGetInfo (the whole device)")


def none(device: str | None, why: str) -> DeviceMemory:
    return DeviceMemory(device or "none", None, None, why)


def current(device: str | None) -> DeviceMemory:
    """The reading of the device the server runs on (`backend.device`, e.g. "cuda:0", "cpu")."""
    if device is None:
        return none(device, "no model loaded yet")
    if not device.startswith("cuda"):
        return none(device, f"the model runs on {device}: no device memory to read")
    import torch

    if not torch.cuda.is_available():
        return none(device, "CUDA is not available to this process")
    index = torch.device(device).index
    return read(
        device, torch.cuda.current_device() if index is None else index, torch.cuda.mem_get_info
    )


class DeviceMemoryCollector:
    """reranker_device_memory_bytes{kind=total|used|free} of the server's device, read at scrape
    time; no samples on a CPU (and none before the model has created its CUDA context)."""

    def __init__(self) -> None:
        self.device: str | None = None  # set once the model is loaded

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        family = GaugeMetricFamily(
            Metric.DEVICE_MEMORY,
            "Memory of the model's device as the CUDA driver sees it (free: headroom left)",
            labels=["kind"],
        )
        reading = self._reading()
        if reading is not None and reading.total_bytes is not None:
            family.add_metric(["total"], reading.total_bytes)
            family.add_metric(["used"], reading.used_bytes)
            family.add_metric(["free"], reading.free_bytes)
        yield family

    def _reading(self) -> DeviceMemory | None:
        if self.device is None or not self.device.startswith("cuda"):
            return None
        import torch

        if not torch.cuda.is_initialized():  # never create a context just to be scraped
            return None
        return current(self.device)
