"""`reranker-server` command line: serve (default), download, make-tiny-model."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from reranker_server.config import ConfigError, add_arguments, load_settings

COMMANDS = ("serve", "download", "make-tiny-model")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its three subcommands."""
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

    tiny = sub.add_parser(
        "make-tiny-model", help="build a tiny random model offline (tests, demos)"
    )
    tiny.add_argument("--family", required=True, choices=("qwen3", "cross-encoder"))
    tiny.add_argument("--out", required=True, help="output directory")
    tiny.add_argument("--hidden-size", type=int, default=64)
    tiny.add_argument("--layers", type=int, default=2)
    tiny.add_argument("--seed", type=int, default=0)
    return parser


def _make_tiny(args: argparse.Namespace) -> int:
    from reranker_server.tiny_models import build_cross_encoder, build_qwen3_reranker

    if args.hidden_size < 8 or args.layers < 1:
        print("error: --hidden-size must be >= 8 and --layers >= 1", file=sys.stderr)
        return 2
    if args.family == "qwen3":
        heads = max(1, args.hidden_size // 16)
        out = build_qwen3_reranker(
            args.out,
            hidden_size=args.hidden_size,
            num_layers=args.layers,
            num_heads=heads,
            num_kv_heads=1 if heads % 2 else max(1, heads // 2),
            head_dim=16,
            seed=args.seed,
        )
    else:
        heads = 4 if args.hidden_size % 4 == 0 else 1
        out = build_cross_encoder(
            args.out,
            hidden_size=args.hidden_size,
            num_layers=args.layers,
            num_heads=heads,
            seed=args.seed,
        )
    print(out)
    return 0


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

    run_server(settings)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `reranker-server` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")
    args = build_parser().parse_args(argv)
    if args.command == "make-tiny-model":
        return _make_tiny(args)
    if args.command == "download":
        return _download(args)
    return _serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
