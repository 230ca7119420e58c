"""The `reranker-operator loadtest` command: arguments, the run (or the ramp), the report."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TextIO

from reranker_operator.tools.loadtest import metrics, report, runner, sizing
from reranker_operator.tools.loadtest.workload import API_PATHS, Workload


def _range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    try:
        low, high = int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or MIN-MAX, got {text!r}") from None
    return low, high


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the server or Service, e.g. http://localhost:8080")
    parser.add_argument(
        "--api",
        choices=tuple(API_PATHS),
        default="v1",
        help="API shape: v1/v2 (Cohere), tei (/rerank), rank (/v1/rank)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("RERANKER_API_KEY"),
        help="bearer token [env RERANKER_API_KEY]",
    )
    parser.add_argument("-c", "--concurrency", type=int, default=16, help="clients (default 16)")
    parser.add_argument(
        "-n",
        "--requests",
        type=int,
        help=f"requests to send (default {runner.DEFAULT_REQUESTS} unless --duration)",
    )
    parser.add_argument("-d", "--duration", type=float, help="seconds to run")
    parser.add_argument("--documents", type=int, default=32, help="documents per request")
    parser.add_argument(
        "--doc-words",
        type=_range,
        default=(30, 150),
        help="words per document, N or MIN-MAX (a word is 1.2-1.5 tokens)",
    )
    parser.add_argument("--query-words", type=int, default=12)
    parser.add_argument(
        "--instruction-words", type=int, default=0, help="0: no instruction (the model's default)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--target-p95",
        type=float,
        metavar="SECONDS",
        help="ramp concurrency to find the load one replica sustains within it",
    )
    parser.add_argument(
        "--peak-pairs-per-second",
        type=float,
        metavar="N",
        help="with --target-p95: the replicas and autoscaling this peak needs",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=256,
        help="with --target-p95: the highest concurrency tried",
    )
    parser.add_argument(
        "--step-requests",
        type=int,
        help="with --target-p95: requests per step (default 4 x concurrency, >= 20)",
    )


def _one_run(
    args: argparse.Namespace,
    workload: Workload,
    concurrency: int,
    bounds: runner.Bounds,
    progress: TextIO | None,
    first: int = 0,
) -> report.Summary:
    before = metrics.scrape(args.url)
    result = runner.run_sync(
        args.url,
        workload,
        concurrency=concurrency,
        bounds=bounds,
        api_key=args.api_key,
        timeout_s=args.timeout,
        progress=progress,
        first_index=first,
    )
    return report.summarize(result, metrics.delta(before, metrics.scrape(args.url)))


def main(args: argparse.Namespace, stdout: TextIO) -> int:
    """Run the load test described by `args`; the exit status is 0 unless nothing succeeded."""
    workload = Workload(
        documents=args.documents,
        doc_words=args.doc_words,
        query_words=args.query_words,
        instruction_words=args.instruction_words,
        api=args.api,
        seed=args.seed,
    )
    progress = None if args.json else sys.stderr
    if args.peak_pairs_per_second is not None and args.target_p95 is None:
        raise ValueError("--peak-pairs-per-second needs --target-p95")
    if args.target_p95 is None:
        bounds = runner.Bounds(requests=args.requests, duration_s=args.duration)
        summary = _one_run(args, workload, args.concurrency, bounds, progress)
        stdout.write(
            (json.dumps(summary.to_json(), indent=2) if args.json else report.render_text(summary))
            + "\n"
        )
        return 0 if summary.ok else 1
    offset = 0

    def step(concurrency: int) -> report.Summary:
        nonlocal offset
        n = args.step_requests or max(20, 4 * concurrency)
        if progress is not None:
            progress.write(f"concurrency {concurrency}: {n} requests\n")
        summary = _one_run(
            args, workload, concurrency, runner.Bounds(requests=n), progress, first=offset
        )
        offset += n
        return summary

    steps = sizing.ramp(step, args.target_p95, max_concurrency=args.max_concurrency)
    result = sizing.size(steps, args.target_p95, args.peak_pairs_per_second)
    stdout.write(
        (json.dumps(result.to_json(), indent=2) if args.json else sizing.render_text(result)) + "\n"
    )
    return 0 if result.sustained is not None else 1
