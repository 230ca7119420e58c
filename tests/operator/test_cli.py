"""`reranker-operator render|crd|run` command line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from render_helpers import EXAMPLES, REPO
from reranker_operator.api.crd import load_crd
from reranker_operator.cli import _parser, main
from reranker_operator.render.manifests import render_children


def run_cli(argv: list[str], stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    code = main(argv, stdout=out, stdin=io.StringIO(stdin))
    return code, out.getvalue()


@pytest.mark.parametrize(
    "name",
    [
        "qwen3-reranker-0.6b.yaml",
        "qwen3-reranker-8b.yaml",
        "bge-reranker-cpu.yaml",
        "ingress-with-api-key.yaml",
    ],
)
def test_render_yaml_stream_equals_render_children(name: str) -> None:
    path = EXAMPLES / name
    code, text = run_cli(["render", "-f", str(path)])
    assert code == 0
    assert text.startswith("---")
    cr = yaml.safe_load(path.read_text())
    assert list(yaml.safe_load_all(text)) == render_children(cr)


def test_render_json_list() -> None:
    path = EXAMPLES / "qwen3-reranker-0.6b.yaml"
    code, text = run_cli(["render", "-f", str(path), "-o", "json"])
    assert code == 0
    doc = json.loads(text)
    assert doc["kind"] == "List" and doc["apiVersion"] == "v1"
    assert doc["items"] == render_children(yaml.safe_load(path.read_text()))
    kinds = [i["kind"] for i in doc["items"]]
    # no PersistentVolumeClaim: the example's cache is a claim per pod
    assert kinds == [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
    ]


def test_render_stdin_skips_other_kinds() -> None:
    secret = (EXAMPLES / "ingress-with-api-key.secret.yaml").read_text()
    cr = (EXAMPLES / "bge-reranker-cpu.yaml").read_text()
    code, text = run_cli(["render", "-f", "-"], stdin=secret + "\n---\n" + cr)
    assert code == 0
    assert [d["kind"] for d in yaml.safe_load_all(text)] == [
        "Deployment",
        "Service",
        "NetworkPolicy",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            (
                "apiVersion: rerankers.io/v1alpha1\nkind: RerankerService\nmetadata: {name: x}\n"
                "spec: {model: {name: m}, autoscaling: {minReplicas: 5, maxReplicas: 2}}\n"
            ),
            "spec.autoscaling.maxReplicas",
        ),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "no RerankerService"),
        (
            "apiVersion: rerankers.io/v2\nkind: RerankerService\nmetadata: {name: x}\nspec: {}\n",
            "apiVersion must be rerankers.io/v1alpha1",
        ),
        ("spec: [unclosed\n", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
    ],
)
def test_render_errors_exit_1(tmp_path: Path, capsys, content: str, message: str) -> None:
    path = tmp_path / "cr.yaml"
    path.write_text(content)
    code, text = run_cli(["render", "-f", str(path)])
    assert code == 1 and text == ""
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_render_missing_file(tmp_path: Path, capsys) -> None:
    code, _ = run_cli(["render", "-f", str(tmp_path / "nope.yaml")])
    assert code == 1 and "cannot read" in capsys.readouterr().err


def test_crd_command_prints_the_crd() -> None:
    code, text = run_cli(["crd"])
    assert code == 0 and yaml.safe_load(text) == load_crd()
    assert text == (REPO / "crds" / "rerankerservices.yaml").read_text()


def test_run_flags() -> None:
    args = _parser().parse_args(
        [
            "run",
            "-n",
            "a",
            "--namespace",
            "b",
            "--liveness",
            "http://0.0.0.0:8080/healthz",
            "--peering",
            "p",
            "-v",
        ]
    )
    assert (
        args.namespaces,
        args.all_namespaces,
        args.liveness,
        args.standalone,
        args.peering,
        args.verbose,
    ) == (["a", "b"], False, "http://0.0.0.0:8080/healthz", False, "p", True)
    assert _parser().parse_args(["run", "--all-namespaces"]).all_namespaces
    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "-n", "a", "--all-namespaces"])


def test_run_rejects_standalone_with_peering(capsys) -> None:
    code, _ = run_cli(["run", "-n", "a", "--standalone", "--peering", "p"])
    assert code == 1 and "exclude" in capsys.readouterr().err


def test_run_needs_a_namespace_scope(capsys) -> None:
    code, _ = run_cli(["run", "--standalone"])
    assert code == 1 and "--all-namespaces" in capsys.readouterr().err


@pytest.mark.parametrize("address", ["8081", "host:port", "0.0.0.0"])
def test_run_rejects_a_malformed_metrics_address(capsys, address: str) -> None:
    code, _ = run_cli(["run", "-A", "--metrics-bind-address", address])
    assert code == 1 and "--metrics-bind-address" in capsys.readouterr().err


def test_console_script_renders_example() -> None:
    script = Path(sys.executable).parent / "reranker-operator"
    if not script.exists():
        pytest.skip("console script not installed")
    path = EXAMPLES / "bge-reranker-cpu.yaml"
    out = subprocess.run(
        [str(script), "render", "-f", str(path)], capture_output=True, text=True, check=True
    )
    assert list(yaml.safe_load_all(out.stdout)) == render_children(yaml.safe_load(path.read_text()))
