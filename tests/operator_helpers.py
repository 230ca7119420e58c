"""Polling waits and small readers shared by the operator tests (no timed assertions)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from reranker_devtools.devcluster import ApiCall, DevCluster
from reranker_operator.controller.kube import USER_AGENT
from reranker_operator.controller.reconcile import instance_selector
from reranker_operator.render.kinds import CHILD_KINDS

T = TypeVar("T")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# kopf and our passes share one session, so every operator call carries our user agent.
OPERATOR_AGENTS = (USER_AGENT,)
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def wait_for(probe: Callable[[], T], what: str, timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll `probe` until it returns a truthy value; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def example(name: str) -> dict[str, Any]:
    """An example manifest from examples/."""
    return yaml.safe_load((EXAMPLES / name).read_text())


def with_all_monitoring(manifest: dict[str, Any]) -> dict[str, Any]:
    """`manifest` with its ServiceMonitor, PrometheusRule and dashboard turned on."""
    manifest["spec"]["metrics"] = {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    }
    return manifest


def condition(obj: Mapping[str, Any] | None, type_: str) -> dict[str, Any] | None:
    """One condition of an object's status, or None."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def operator_calls(cluster: DevCluster) -> list[ApiCall]:
    """Every API call the operator (kopf and our client) made so far."""
    return [c for c in cluster.calls if c.user_agent.startswith(OPERATOR_AGENTS)]


def writes(calls: Iterable[ApiCall]) -> list[ApiCall]:
    return [c for c in calls if c.verb in WRITE_VERBS]


def children(cluster: DevCluster, name: str, kinds: Iterable[str] = ()) -> dict[str, dict]:
    """Live children of a RerankerService by "Kind/name", found by our labels."""
    out = {}
    for kind in CHILD_KINDS:
        if kinds and kind.kind not in kinds:
            continue
        ref = f"{kind.api_version}/{kind.plural}"
        for obj in cluster.list(ref, "default", instance_selector(name)):
            out[f"{kind.kind}/{obj['metadata']['name']}"] = obj
    return out
