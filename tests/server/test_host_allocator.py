"""The malloc settings keep a forward's large, short-lived tensors from being mapped and faulted
in afresh each time: counted as the kernel's minor page faults in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from reranker_server import host_allocator

CYCLES = 40
PROBE = f"""
import json, resource, sys
import torch
from reranker_server import host_allocator
if sys.argv[1] == "tuned":
    print(host_allocator.tune_for_tensors(), file=sys.stderr)
torch.manual_seed(0)
x = torch.randn(1000, 1024)
up, down = torch.randn(6144, 1024) * 0.03, torch.randn(1024, 3072) * 0.03
def cycle():  # a decoder MLP on 1,000 tokens: 4-24 MiB activations, alive briefly
    global x
    gate, value = torch.nn.functional.linear(x, up).split(3072, dim=-1)
    x = x + torch.nn.functional.linear(torch.nn.functional.silu(gate) * value, down)
    x = x / x.norm(dim=-1, keepdim=True)
def run():  # on a worker thread (its own malloc arena), as the engine's forwards run
    global faults
    cycle()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range({CYCLES}):
        cycle()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
import threading
worker = threading.Thread(target=run)
worker.start()
worker.join()
print(json.dumps(faults))
"""


def _faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k not in host_allocator.USER_VARIABLES}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tuned_processes_reuse_large_blocks_without_page_faults():
    default, tuned = _faults("default"), _faults("tuned")
    # glibc's defaults give activations back and fault them in again, every cycle
    assert default >= CYCLES * 1000, default
    # tuned: most are reused from the heap (measured 69,000 faults against 22,000)
    assert tuned * 2 <= default, (tuned, default)


def test_the_users_own_malloc_settings_win(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert "set by the user (MALLOC_MMAP_THRESHOLD_)" in host_allocator.tune_for_tensors()
