"""The formatter owns formatting: the tree is as `make fmt` (ruff format + import sorting) leaves
it, and the only exceptions are `# fmt: off` blocks that say why on the line before."""

from __future__ import annotations

import re
import subprocess
import sys
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRAGMA = re.compile(r"#\s*fmt:\s*(skip|off|on)\b")


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_formatter_leaves_the_tree_as_it_is() -> None:
    done = _ruff("format", "--check", "--diff", ".")
    assert done.returncode == 0, f"run `make fmt`:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"


def test_imports_are_sorted() -> None:
    done = _ruff("check", "--output-format", "concise", ".")
    assert done.returncode == 0, f"run `make fmt`:\n{done.stdout[-4000:]}"


def _python_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return [REPO / name for name in listed]


def _comments(path: Path) -> dict[int, str]:
    """Line number (1-based) -> the comment on it (strings that look like comments are not)."""
    with path.open("rb") as source:
        return {
            token.start[0]: token.string
            for token in tokenize.tokenize(source.readline)
            if token.type == tokenize.COMMENT
        }


def test_no_line_escapes_the_formatter_without_a_reason() -> None:
    unexplained = []
    for path in _python_files():
        comments = _comments(path)
        for number, comment in comments.items():
            match = PRAGMA.search(comment)
            if match is None:
                continue
            where = f"{path.relative_to(REPO)}:{number}"
            if match.group(1) == "skip":
                unexplained.append(f"{where}: fmt skip (use a `fmt: off` block with a reason)")
            elif match.group(1) == "off":
                reason = comments.get(number - 1, "")
                if not reason or PRAGMA.search(reason):
                    unexplained.append(f"{where}: `fmt: off` without a reason on the line before")
    assert not unexplained, "\n".join(unexplained)
