"""The Controller's pass discipline against the emulated API: a burst of child events
coalesces, and our status patch's answer is the freshest body."""

from __future__ import annotations

import asyncio
from pathlib import Path

from operator_helpers import example
from reranker_devtools.devcluster import RERANKERS, DevCluster
from reranker_operator.controller.handlers import Controller, OperatorConfig


def test_a_burst_of_child_events_is_one_or_two_passes(tmp_path: Path) -> None:
    with DevCluster() as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        cr = cluster.create(example("bge-reranker-cpu.yaml"))
        key = ("default", cr["metadata"]["name"])
        index = {key: [cr]}  # what kopf's index of RerankerServices holds
        event = {
            "kind": "Deployment",
            "metadata": {"namespace": "default", "name": key[1], "resourceVersion": "x"},
        }

        async def scenario() -> Controller:
            events: list[tuple] = []
            ctl = Controller(
                OperatorConfig(kubeconfig=str(kubeconfig)),
                post_event=lambda body, **kw: events.append((body, kw)),
            )
            try:
                await ctl.run_pass(key, index, cr)  # the first pass creates the children
                before = ctl.passes
                await asyncio.gather(*(ctl.kick(key, index, event) for _ in range(10)))
                assert 1 <= ctl.passes - before <= 2  # the burst: one pass, plus one queued
                # The status patch's answer is newer than the index's body: used next.
                assert int(ctl.written[key]["metadata"]["resourceVersion"]) > int(
                    cr["metadata"]["resourceVersion"]
                )
                assert [kw["reason"] for _body, kw in events] == ["DeploymentProgressing"]
            finally:
                await ctl.client.close()
            return ctl

        ctl = asyncio.run(scenario())
        assert cluster.get(RERANKERS, "default", key[1])["status"]["observedGeneration"] == 1
        assert ctl.failures == 0
