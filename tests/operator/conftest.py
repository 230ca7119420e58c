"""Fixtures: an emulated Kubernetes API (DevCluster) and the real operator (kopf) against it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from reranker_devtools.devcluster import DevCluster
from reranker_operator.controller.handlers import Controller, OperatorConfig
from reranker_operator.controller.runner import build

RESYNC_SECONDS = 0.3


@pytest.fixture
def cluster_options(request: pytest.FixtureRequest) -> dict:
    """DevCluster options; parametrize indirectly, e.g. with {"unserved": ["ServiceMonitor"]}."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def cluster(
    cluster_options: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[DevCluster]:
    """A running emulator; KUBECONFIG points at it (for kopf, our client and kubectl)."""
    with DevCluster(**cluster_options) as dev:
        kubeconfig = dev.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        dev.kubeconfig = kubeconfig  # type: ignore[attr-defined]
        yield dev
        dump_if_failed(request, dev)


@pytest.fixture
def operator_args(request: pytest.FixtureRequest) -> list[str]:
    """Extra `kopf run` arguments; parametrize indirectly."""
    return list(getattr(request, "param", []))


@pytest.fixture
def operator(cluster: DevCluster, operator_args: list[str]) -> Iterator[Controller]:
    """The operator, with a short resync interval, running in a thread; always stopped."""
    config = OperatorConfig(
        resync_seconds=RESYNC_SECONDS,
        discovery_ttl_seconds=0.2,
        retry_seconds=0.5,
        kubeconfig=str(cluster.kubeconfig),
    )
    registry, settings, controller = build(config)
    settings.watching.reconnect_backoff = 0.2
    args = ["run", "--standalone", "-n", "default", *operator_args]
    with KopfRunner(args, registry=registry, settings=settings, timeout=30):
        yield controller


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Remember each phase's report on the item (for the failure dump below)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def dump_if_failed(request: pytest.FixtureRequest, cluster: DevCluster) -> None:
    """With RERANKER_TEST_DUMP=dir, write the emulator's objects and calls when a test failed."""
    target = os.environ.get("RERANKER_TEST_DUMP")
    report = getattr(request.node, "report_call", None)
    if not target or report is None or not report.failed:
        return
    objects = {
        f"{k[0].plural}/{k[1]}/{k[2]}": (None if v.deleted else v.raw)
        for k, v in cluster.emulator.objects.items()
    }
    path = Path(target) / f"{request.node.name}.json"
    path.write_text(
        json.dumps(
            {"objects": objects, "calls": [str(c) for c in cluster.calls]}, indent=1, default=str
        )
    )
