"""The README stays true: its first commands, CI's command, and the spec fields it lists."""

from __future__ import annotations

import re
from pathlib import Path

from reranker_operator.api.crd import load_crd, openapi_schema

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_first_commands_are_demo_and_test() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def test_makefile_defines_both_targets() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: ", makefile, re.M)
    assert re.search(r"^test: ", makefile, re.M)


def test_readme_lists_exactly_the_crd_spec_fields() -> None:
    section = README.split("The spec's sections", 1)[1].split("Every field,", 1)[0]
    listed: set[str] = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            listed |= set(re.findall(r"`([A-Za-z]+)`", row.split("|")[1]))
    spec = openapi_schema(load_crd())["properties"]["spec"]["properties"]
    assert listed == set(spec), (sorted(set(spec) - listed), sorted(listed - set(spec)))


def test_readme_links_resolve() -> None:
    for target in re.findall(r"\]\(((?:docs|examples)/[^)#]+)\)", README):
        assert (ROOT / target).exists(), target
