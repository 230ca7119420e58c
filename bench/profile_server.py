"""Profile one server under the benchmark load with py-spy (`pip install py-spy`).

`python bench/profile_server.py --load cross --server this [--requests 32]` starts the server,
records it with `py-spy record --format raw --threads --idle` while the load runs, and prints
the leaf functions and threads where samples fall. The raw stacks are kept under
bench/results/ for flamegraph tools.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench_run
from loadgen import run_load
from servers import running_server


def summarize(raw: Path, top: int = 25) -> str:
    """Share of samples per thread and per leaf frame in py-spy's collapsed-stack output."""
    leaves: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        threads[frames[0]] += n
        leaves[frames[-1]] += n
    lines = [f"{total} samples", "threads:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in threads.most_common(10)]
    lines.append("leaf frames:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in leaves.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", default="cross", choices=sorted(bench_run.LOADS))
    parser.add_argument("--server", default="this", help="this | naive | st-naive")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--server-arg", action="append", default=[])
    args = parser.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    bench_args = bench_run.parse_args(
        ["--loads", args.load, "--requests", str(args.requests), "--warmup", "4"]
    )
    spec = bench_run.LOADS[args.load]
    model_dir, requests, tokens, _flops = bench_run.prepare_load(spec, bench_args)
    out_dir = bench_run.BENCH_DIR / "results"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    raw = out_dir / f"profile-{stamp}-{args.load}-{args.server}.txt"
    kind = spec.servers[args.server]
    with running_server(
        kind, model_dir, out_dir / f"profile-{stamp}.log", args.server_arg if kind == "this" else []
    ) as url:
        asyncio.run(run_load(url, requests[:4], tokens[:4], concurrency=4, duration_s=600))
        pid = _server_pid(url)
        spy = subprocess.Popen(
            [
                pyspy,
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--threads",
                "--idle",
                "--rate",
                "50",
                "-o",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        time.sleep(1.0)
        result = asyncio.run(
            run_load(url, requests[4:], tokens[4:], concurrency=16, duration_s=600)
        )
        spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
        spy.wait(timeout=60)
    print(f"{result.completed} requests, {result.pairs / result.wall_s:.1f} pairs/s")
    print(summarize(raw))
    print(f"raw stacks: {raw}")


def _server_pid(url: str) -> int:
    """The pid listening on the URL's port (the server subprocess)."""
    port = url.rsplit(":", 1)[1]
    out = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
    )
    marker = "pid="
    start = out.stdout.index(marker) + len(marker)
    return int(out.stdout[start:].split(",", 1)[0])


if __name__ == "__main__":
    main()
