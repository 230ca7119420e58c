"""bench/cpu_usage.py: the machine's busy CPU and the hypervisor's steal, read from a
/proc/stat line worked out by hand."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import cpu_usage  # noqa: E402


def test_steal_is_counted_apart_from_busy(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  300 10 40 5000 7 2 3 200 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    tick = os.sysconf("SC_CLK_TCK")
    busy, steal = cpu_usage.machine_cpu_seconds(str(stat))
    assert busy == pytest.approx((300 + 10 + 40 + 2 + 3) / tick)
    assert steal == pytest.approx(200 / tick)


def test_a_kernel_without_a_steal_field_has_none(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  300 10 40 5000\n")
    busy, steal = cpu_usage.machine_cpu_seconds(str(stat))
    assert busy == pytest.approx(350 / os.sysconf("SC_CLK_TCK")) and steal == 0


def test_no_stat_file_gives_none(tmp_path: Path) -> None:
    assert cpu_usage.machine_cpu_seconds(str(tmp_path / "missing")) is None


def test_this_machine_reads() -> None:
    busy, steal = cpu_usage.machine_cpu_seconds()
    assert busy > 0 and steal >= 0
