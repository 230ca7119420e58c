"""Compare the installed distributions with the lock: what `make test-latest` ran on.

    python -m reranker_devtools.drift constraints/lock.txt [--out FILE]

Prints every locked distribution whose installed version differs from its pin (and any
installed distribution the lock lacks), then the versions of the libraries whose internals the
code relies on. Exit status 0: it is a report, the test run that follows is the verdict.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import sys
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

# Libraries whose internals the code uses (pyproject.toml bounds them): always reported.
WATCHED = ("torch", "transformers", "tokenizers", "kopf", "kmock", "kubernetes", "fastapi")
INSTALLERS = {"pip", "setuptools", "wheel"}  # the venv's own tools, never locked


def read_lock(path: Path) -> dict[str, str]:
    """{canonical name: pinned version} of the `name==version` lines of a compiled lock file."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        spec = next(iter(req.specifier), None)
        if spec is not None and spec.operator == "==":
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def installed() -> dict[str, str]:
    """{canonical name: version} of this interpreter's installed distributions."""
    return {canonicalize_name(d.metadata["Name"]): d.version for d in md.distributions()}


def _release(version: str) -> str:
    """A version without its local label: 2.13.0+cpu is the locked 2.13.0."""
    return version.split("+", 1)[0]


def report(pins: dict[str, str], have: dict[str, str]) -> list[str]:
    """Lines of the drift report."""
    changed = sorted(n for n in pins if n in have and _release(have[n]) != _release(pins[n]))
    extra = sorted(
        n for n in have if n not in pins and n not in INSTALLERS and not n.startswith("reranker-")
    )
    lines = [f"drift against the lock: {len(changed)} changed, {len(extra)} not in the lock"]
    lines += [f"  {n:32} {pins[n]:>14} -> {have[n]}" for n in changed]
    lines += [f"  {n:32} {'(not locked)':>14}    {have[n]}" for n in extra]
    lines.append("libraries whose internals the code uses:")
    for name in WATCHED:
        mark = "" if _release(have.get(name, "-")) == _release(pins.get(name, "-")) else "  (drift)"
        lines.append(
            f"  {name:32} lock {pins.get(name, '-'):>10}   used {have.get(name, '-')}{mark}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", type=Path)
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    text = "\n".join(report(read_lock(args.lock), installed())) + "\n"
    sys.stdout.write(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
