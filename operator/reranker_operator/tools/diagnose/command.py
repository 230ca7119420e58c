"""The `reranker-operator diagnose` command: arguments, the signals, the verdicts."""

from __future__ import annotations

import argparse
import json
import os
from typing import TextIO

from reranker_contract import DEFAULTS, FAMILIES
from reranker_operator.tools.diagnose import signals, verdicts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the RerankerService (its Service and metrics job)")
    parser.add_argument("-n", "--namespace", default="default")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prometheus", metavar="URL", help="read its series from Prometheus")
    source.add_argument(
        "--url",
        metavar="SERVER_URL",
        help="scrape one server's /metrics twice (e.g. after kubectl port-forward)",
    )
    parser.add_argument(
        "--interval", type=float, default=10.0, help="with --url: seconds between the two scrapes"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("RERANKER_API_KEY"),
        help="with --url: a key (or JWT) of the server, for the settings its /info shows only "
        "to a client when credentials are required [env RERANKER_API_KEY]",
    )
    parser.add_argument("--window", default="5m", help="with --prometheus: the window, e.g. 5m")
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=DEFAULTS.max_batch_size,
        help="with --prometheus: spec.server.maxBatchSize",
    )
    parser.add_argument(
        "--model-workers",
        type=int,
        default=1,
        help="with --prometheus: model workers per pod (1 on GPU)",
    )
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        help="with --prometheus: the model family (prefix reuse applies to Qwen3)",
    )
    parser.add_argument("--json", action="store_true")


def main(args: argparse.Namespace, stdout: TextIO) -> int:
    if args.url:
        sig = signals.from_server(args.url, interval_s=args.interval, api_key=args.api_key)
    else:
        if not args.window[:-1].replace(".", "", 1).isdigit() or args.window[-1] not in "smh":
            raise ValueError(f"--window: a duration such as 30s or 5m, got {args.window!r}")
        causal = signals.family_is_causal(args.family)
        sig = signals.from_prometheus(
            args.prometheus,
            args.name,
            args.namespace,
            window=args.window,
            max_batch_size=args.max_batch_size,
            model_workers=args.model_workers,
            causal=causal,
        )
    found = verdicts.diagnose(sig)
    if args.json:
        stdout.write(
            json.dumps(
                {"signals": sig.to_json(), "verdicts": [v.__dict__ for v in found]}, indent=2
            )
            + "\n"
        )
    else:
        stdout.write(verdicts.render(sig, found, f"{args.namespace}/{args.name}") + "\n")
    return 0
