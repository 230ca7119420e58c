"""The operator Deployment's command line is one the real CLI accepts, and its peered replicas
can elect a worker (kopf pauses every replica on a priority tie)."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from deploy_helpers import kustomize_build

from reranker_operator import cli
from reranker_operator.controller import runner


def _operator_container() -> dict[str, Any]:
    [deployment] = [d for d in kustomize_build() if d["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_deployment_command_parses_with_the_real_cli() -> None:
    container = _operator_container()
    argv = container["command"] + container.get("args", [])
    assert argv[0] == "reranker-operator"
    args = cli._parser().parse_args(argv[1:])
    assert args.command == "run"
    assert args.all_namespaces is True and args.namespaces == []
    assert args.peering == "reranker-operator" and not args.standalone
    assert args.liveness == "http://0.0.0.0:8080/healthz"


def _kopf_run_kwargs(monkeypatch: pytest.MonkeyPatch, **run_args: Any) -> dict[str, Any]:
    """What `runner.run` hands to kopf.run (kopf itself is not started)."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(kopf, "run", lambda **kw: seen.update(kw))
    runner.run(
        **{
            "namespaces": [],
            "all_namespaces": True,
            "liveness": None,
            "standalone": False,
            "peering": None,
            "verbose": False,
            **run_args,
        }
    )
    return seen


def test_peered_replicas_get_distinct_priorities(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two replicas with equal priorities both pause ("Possibly conflicting operators with the
    same priority ... Pausing all operators, including self" in kopf's peering), so a peered
    replica must not run with the shared default priority."""
    first = _kopf_run_kwargs(monkeypatch, peering="reranker-operator")
    second = _kopf_run_kwargs(monkeypatch, peering="reranker-operator")
    assert first["peering_name"] == "reranker-operator" and not first["standalone"]
    priorities = [_effective_priority(first), _effective_priority(second)]
    assert priorities[0] != priorities[1], (
        f"two peered replicas run with the same kopf priority {priorities[0]}: they tie and both pause"
    )


def _effective_priority(kwargs: dict[str, Any]) -> int:
    """kopf.run's `priority` argument wins over `settings.peering.priority` (kopf's running.run)."""
    if kwargs.get("priority") is not None:
        return kwargs["priority"]
    return kwargs["settings"].peering.priority


def test_an_explicit_priority_is_passed_to_kopf(monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = _kopf_run_kwargs(monkeypatch, peering="reranker-operator", priority=7)
    assert _effective_priority(kwargs) == 7
    assert cli._parser().parse_args(["run", "-A", "--peering=x", "--priority=7"]).priority == 7


def test_priority_without_peering_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "-A", "--priority=7"]) == 1
    assert "--priority needs --peering" in capsys.readouterr().err
