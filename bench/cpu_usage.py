"""How much CPU the rest of the machine used while the benchmark ran."""

from __future__ import annotations

import os
import resource
import time


def machine_cpu_seconds(stat_path: str = "/proc/stat") -> tuple[float, float] | None:
    """(busy, steal): CPU seconds of the whole machine since boot (/proc/stat), None where
    unavailable. Busy is what this machine's processes and kernel ran; steal is the time the
    hypervisor gave this VM's vCPUs to its neighbours while they had work, apart from busy."""
    try:
        with open(stat_path) as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    fields += [0] * (8 - len(fields))
    idle, steal = fields[3] + fields[4], fields[7]  # idle + iowait; steal
    busy = sum(fields[:8]) - idle - steal  # user nice system irq softirq
    tick = os.sysconf("SC_CLK_TCK")
    return busy / tick, steal / tick


def _own_seconds() -> float:
    """CPU seconds of this process and its reaped children (the servers, once stopped)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class BackgroundCpu:
    """Measures other processes' share of the machine's CPU between `start()` and `stop()`, and
    the share the hypervisor's neighbours took (steal)."""

    def start(self) -> None:
        self._t0, self._cpu0, self._own0 = time.monotonic(), machine_cpu_seconds(), _own_seconds()

    def stop(self) -> dict:
        """{'background_cpu_fraction': busy CPU of other processes / (wall x CPUs),
        'steal_cpu_fraction': steal / (wall x CPUs), ...}."""
        wall = time.monotonic() - self._t0
        cpu = machine_cpu_seconds()
        own = _own_seconds() - self._own0
        cpus = os.cpu_count() or 1
        if cpu is None or self._cpu0 is None or wall <= 0:
            return {"background_cpu_fraction": None, "own_cpu_s": round(own, 1)}
        busy, steal = cpu[0] - self._cpu0[0], cpu[1] - self._cpu0[1]
        other = max(0.0, busy - own)
        return {
            "background_cpu_fraction": round(other / (wall * cpus), 3),
            "steal_cpu_fraction": round(steal / (wall * cpus), 3),
            "own_cpu_s": round(own, 1),
            "machine_busy_cpu_s": round(busy, 1),
            "wall_s": round(wall, 1),
        }
