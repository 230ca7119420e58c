"""How much CPU the rest of the machine used while the benchmark ran."""

from __future__ import annotations

import os
import resource
import time


def _busy_seconds() -> float | None:
    """Busy CPU seconds of the whole machine since boot (/proc/stat), None where unavailable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process and its reaped children (the servers, once stopped)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class BackgroundCpu:
    """Measures other processes' share of the machine's CPU between `start()` and `stop()`."""

    def start(self) -> None:
        self._t0, self._busy0, self._own0 = time.monotonic(), _busy_seconds(), _own_seconds()

    def stop(self) -> dict:
        """{'background_cpu_fraction': busy CPU of other processes / (wall x CPUs), ...}."""
        wall = time.monotonic() - self._t0
        busy = _busy_seconds()
        own = _own_seconds() - self._own0
        cpus = os.cpu_count() or 1
        if busy is None or self._busy0 is None or wall <= 0:
            return {"background_cpu_fraction": None, "own_cpu_s": round(own, 1)}
        other = max(0.0, busy - self._busy0 - own)
        return {
            "background_cpu_fraction": round(other / (wall * cpus), 3),
            "own_cpu_s": round(own, 1),
            "machine_busy_cpu_s": round(busy - self._busy0, 1),
            "wall_s": round(wall, 1),
        }
