"""`reranker-operator`: render children offline, print the CRD, or run the operator.

reranker-operator render -f CR.yaml [-o yaml|json]
reranker-operator crd
reranker-operator diagnose NAME [-n NS] (--prometheus URL | --url SERVER_URL)
reranker-operator loadtest URL [-c N] [-n N | -d SECONDS] [--documents N] [--target-p95 S ...]
reranker-operator run [-n NS ...|--all-namespaces] [--liveness URL] [--standalone]
                      [--peering NAME [--priority N]] [--metrics-bind-address HOST:PORT]
                      [--verbose]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import yaml

from reranker_operator.api.constants import CRD_API_VERSION, CRD_KIND
from reranker_operator.api.spec import InvalidSpecError


class CliError(Exception):
    """A user error: printed as `error: ...`, exit status 1."""


def _read_documents(path: str, stdin: TextIO) -> list[Any]:
    try:
        if path == "-":
            text = stdin.read()
        else:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML: {exc}") from None


def _reranker_services(docs: list[Any], path: str) -> list[dict[str, Any]]:
    """The RerankerService documents of a file (other kinds, e.g. a Secret, are skipped)."""
    out = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise CliError(f"{path}: every document must be a mapping")
        if doc.get("kind") != CRD_KIND:
            continue
        if doc.get("apiVersion") != CRD_API_VERSION:
            raise CliError(
                f"{path}: apiVersion must be {CRD_API_VERSION}, got {doc.get('apiVersion')!r}"
            )
        out.append(doc)
    if not out:
        raise CliError(f"{path}: no {CRD_KIND} document found")
    return out


def render_command(path: str, output: str, stdout: TextIO, stdin: TextIO) -> None:
    """Print every child of every RerankerService in `path` (YAML stream or a JSON v1 List)."""
    from reranker_operator.render.manifests import render_children

    children: list[dict[str, Any]] = []
    for cr in _reranker_services(_read_documents(path, stdin), path):
        name = (cr.get("metadata") or {}).get("name", "?")
        try:
            children.extend(render_children(cr))
        except InvalidSpecError as exc:
            raise CliError(f"{path}: {CRD_KIND} {name}: {exc}") from None
    if output == "json":
        doc = {"apiVersion": "v1", "kind": "List", "items": children}
        stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        stdout.write(yaml.safe_dump_all(children, sort_keys=False, explicit_start=True))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reranker-operator", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="print the child manifests of a RerankerService file")
    render.add_argument(
        "-f", "--filename", required=True, help="RerankerService YAML ('-' = stdin)"
    )
    render.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    sub.add_parser("crd", help="print the RerankerService CustomResourceDefinition")
    from reranker_operator.tools.loadtest.command import add_arguments as loadtest_arguments

    loadtest = sub.add_parser("loadtest", help="load-test a reranker server and size replicas")
    loadtest_arguments(loadtest)
    from reranker_operator.tools.diagnose.command import add_arguments as diagnose_arguments

    diagnose = sub.add_parser(
        "diagnose", help="find a RerankerService's bottleneck from its metrics"
    )
    diagnose_arguments(diagnose)
    run = sub.add_parser("run", help="run the operator against the current kubeconfig/cluster")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        default=[],
        help="watch this namespace (repeatable)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true")
    run.add_argument(
        "--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz"
    )
    run.add_argument(
        "--standalone", action="store_true", help="no peering with other operator replicas"
    )
    run.add_argument("--peering", metavar="NAME", help="peering object name for leader election")
    run.add_argument(
        "--priority",
        type=int,
        default=None,
        help="kopf peering priority (default with --peering: random, so that replicas never tie)",
    )
    run.add_argument(
        "--metrics-bind-address",
        metavar="HOST:PORT",
        default=None,
        help="serve Prometheus metrics (/metrics) and readiness (/readyz) there, e.g. "
        "0.0.0.0:8081 (default: not served)",
    )
    run.add_argument("--verbose", "-v", action="store_true")
    return parser


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stdin: TextIO | None = None
) -> int:
    """Entry point of the `reranker-operator` console script; returns the exit status."""
    stdout = stdout or sys.stdout
    stdin = stdin or sys.stdin
    args = _parser().parse_args(argv)
    try:
        if args.command == "render":
            render_command(args.filename, args.output, stdout, stdin)
        elif args.command == "loadtest":
            from reranker_operator.tools.loadtest.command import main as loadtest_main

            try:
                return loadtest_main(args, stdout)
            except ValueError as exc:
                raise CliError(str(exc)) from None
        elif args.command == "diagnose":
            from reranker_operator.tools.diagnose.command import main as diagnose_main

            try:
                return diagnose_main(args, stdout)
            except (ValueError, OSError) as exc:
                raise CliError(str(exc)) from None
        elif args.command == "crd":
            from reranker_operator.api.crd import crd_yaml

            stdout.write(crd_yaml())
        else:
            if args.standalone and args.peering:
                raise CliError("--standalone and --peering exclude each other")
            if args.priority is not None and not args.peering:
                raise CliError("--priority needs --peering")
            if args.metrics_bind_address is not None:
                from reranker_operator.controller.metrics import parse_address

                try:
                    parse_address(args.metrics_bind_address)
                except ValueError as exc:
                    raise CliError(f"--metrics-bind-address: {exc}") from None
            if not args.namespaces and not args.all_namespaces:
                raise CliError("give -n/--namespace NAME (repeatable) or --all-namespaces")
            from reranker_operator.controller.runner import (
                run,  # lazy: kopf is imported only to run the operator
            )

            run(
                namespaces=list(args.namespaces),
                all_namespaces=args.all_namespaces,
                liveness=args.liveness,
                standalone=args.standalone,
                peering=args.peering,
                verbose=args.verbose,
                priority=args.priority,
                metrics_address=args.metrics_bind_address,
            )
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
