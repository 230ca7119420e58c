"""`reranker-server` command line: serve (default) and download."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from reranker_server.config import ConfigError, add_arguments, load_settings

COMMANDS = ("serve", "download")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its two subcommands."""
    parser = argparse.ArgumentParser(
        prog="reranker-server", description="Reranker inference server."
    )
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the HTTP server (default command)")
    add_arguments(serve)

    download = sub.add_parser(
        "download", help="fetch a model into a cache dir (or validate a local dir)"
    )
    download.add_argument(
        "--model", default=os.environ.get("MODEL_NAME"), help="hub id or local dir [env MODEL_NAME]"
    )
    download.add_argument(
        "--cache-dir", default=os.environ.get("CACHE_DIR"), help="target cache [env CACHE_DIR]"
    )
    download.add_argument(
        "--revision", default=os.environ.get("MODEL_REVISION"), help="[env MODEL_REVISION]"
    )

    return parser


def _download(args: argparse.Namespace) -> int:
    from reranker_server.models.loading import download_model

    if not args.model:
        print("error: --model (or MODEL_NAME) is required", file=sys.stderr)
        return 2
    try:
        path = download_model(
            args.model, cache_dir=args.cache_dir or None, revision=args.revision or None
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not settings.model:
        print("error: --model (or MODEL_NAME) is required", file=sys.stderr)
        return 2
    from reranker_server.app import run_server

    try:
        run_server(settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `reranker-server` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")
    args = build_parser().parse_args(argv)
    if args.command == "download":
        return _download(args)
    return _serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
