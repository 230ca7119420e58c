"""The layout: each top-level code folder holds one package named like its import, found by
setuptools without a package-dir map, and a folder named `operator` shadows nothing."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {
    "operator": "reranker_operator",
    "server": "reranker_server",
    "contract": "reranker_contract",
    "templates": "reranker_templates",
    "devtools": "reranker_devtools",
}


def test_import_operator_from_the_repository_root_gets_the_standard_library() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    done = subprocess.run(
        [sys.executable, "-c", "import operator; print(operator.__file__)"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(done.stdout.strip()).resolve().parent == stdlib


@pytest.mark.parametrize("pyproject", ["pyproject.toml", "devtools/pyproject.toml"])
def test_no_package_dir_map(pyproject: str) -> None:
    setuptools = tomllib.loads((REPO / pyproject).read_text())["tool"]["setuptools"]
    assert "package-dir" not in setuptools
    assert list(setuptools["packages"]) == ["find"], "setuptools finds the packages, no list"


@pytest.mark.parametrize(("folder", "package"), sorted(FOLDERS.items()))
def test_each_folder_holds_its_package_and_imports_from_it(folder: str, package: str) -> None:
    top = REPO / folder
    assert not (top / "__init__.py").exists(), f"{folder}/ must not be a package itself"
    packages = sorted(p.name for p in top.iterdir() if (p / "__init__.py").exists())
    assert packages == [package]
    module = importlib.import_module(package)
    assert Path(module.__file__).resolve().parent == top / package
